"""The HubSpot sandbox over real HTTPS, driven by hubspot-api-client and httpx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import (  # module level: FastAPI resolves string annotations
    FastAPI,
    Request,
)
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
    PublicObjectId,
)
from hubspot.crm.associations.v4.schema import PublicAssociationDefinitionCreateRequest
from hubspot.crm.deals import Filter, FilterGroup, PublicObjectSearchRequest
from hubspot.crm.objects import ApiException as ObjectsApiException
from hubspot.crm.objects import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate
from hubspot.crm.schemas import (
    ObjectSchemaEgg,
    ObjectTypeDefinitionLabels,
    ObjectTypePropertyCreate,
)

from sandbox.hubspot import (
    ALL_SCOPES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    PORTAL_ID,
    HubSpotSandbox,
    demo_seed,
    sign_v3,
)
from sandbox.server import serve
from tests.conftest import Clock

DEMO = Path(__file__).resolve().parent.parent / "demo"


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def portal(tls, clock):
    """A fresh sandbox on HTTPS: (sandbox, base url)."""
    box = HubSpotSandbox(clock=clock, search_window=50)
    server = box.start(tls)
    yield box, server.url
    server._server.force_exit = True
    server.stop()


def client(tls, url: str, token: str) -> HubSpot:
    return HubSpot(access_token=token, host=url, ssl_ca_cert=str(tls.ca_path))


@pytest.fixture
def hs(portal, tls):
    box, url = portal
    return client(tls, url, box.issue_token())


def http(tls) -> httpx.Client:
    import ssl

    return httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_path)))


def upsert_input(key: str, **props: str) -> SimplePublicObjectBatchInputUpsert:
    return SimplePublicObjectBatchInputUpsert(id_property="coachloop_key", id=key,
                                              properties=props)


def add_key_property(hs: HubSpot, object_type: str = "deals") -> None:
    hs.crm.properties.groups_api.create(object_type, PropertyGroupCreate(
        name="coachloop", label="Coachloop"))
    hs.crm.properties.core_api.create(object_type, PropertyCreate(
        name="coachloop_key", label="Coachloop key", type="string", field_type="text",
        group_name="coachloop", has_unique_value=True))


def test_oauth_code_exchange_refresh_and_token_info(portal, tls):
    box, url = portal
    redirect = "https://coachloop.example/callback"
    with http(tls) as web:
        reply = web.get(f"{url}/oauth/authorize", params={
            "client_id": DEFAULT_CLIENT_ID, "redirect_uri": redirect, "state": "xyz",
            "scope": "oauth crm.objects.deals.read",
            "optional_scope": "crm.objects.deals.write not.a.scope"})
        assert reply.status_code == 302
        query = parse_qs(urlparse(reply.headers["location"]).query)
        assert query["state"] == ["xyz"]
        bad = web.get(f"{url}/oauth/authorize", params={
            "client_id": DEFAULT_CLIENT_ID, "redirect_uri": redirect, "scope": "oauth nope"})
        assert bad.status_code == 400
    hs = client(tls, url, "")
    tokens = hs.oauth.tokens_api.create(
        grant_type="authorization_code", code=query["code"][0], redirect_uri=redirect,
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    assert tokens.token_type == "bearer" and tokens.expires_in == 1800
    with pytest.raises(Exception) as reused:  # codes are single-use
        hs.oauth.tokens_api.create(
            grant_type="authorization_code", code=query["code"][0], redirect_uri=redirect,
            client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    body = json.loads(reused.value.body)
    assert reused.value.status == 400 and body["status"] == "BAD_AUTH_CODE"
    assert body["error"] == "invalid_grant"
    info = hs.oauth.access_tokens_api.get(tokens.access_token)
    assert info.hub_id == PORTAL_ID
    assert info.scopes == ["oauth", "crm.objects.deals.read", "crm.objects.deals.write"]
    refreshed = hs.oauth.tokens_api.create(
        grant_type="refresh_token", refresh_token=tokens.refresh_token,
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    assert refreshed.refresh_token == tokens.refresh_token  # not rotated
    assert refreshed.access_token != tokens.access_token
    with pytest.raises(Exception) as wrong:
        hs.oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token=tokens.refresh_token,
            client_id=DEFAULT_CLIENT_ID, client_secret="wrong")
    assert json.loads(wrong.value.body)["status"] == "BAD_CLIENT_SECRET"
    hs.oauth.refresh_tokens_api.archive(tokens.refresh_token)
    with pytest.raises(Exception) as gone:
        hs.oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token=tokens.refresh_token,
            client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    assert json.loads(gone.value.body)["status"] == "BAD_REFRESH_TOKEN"
    assert box.requests["POST /oauth/v1/token"] == 5


def test_expired_revoked_and_missing_scope(portal, tls):
    box, url = portal
    token = box.issue_token(scopes=("crm.objects.contacts.read",))
    hs = client(tls, url, token)
    with pytest.raises(ObjectsApiException) as denied:
        hs.crm.objects.basic_api.get_page("deals")
    body = json.loads(denied.value.body)
    assert denied.value.status == 403 and body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.deals.read"]
    assert hs.crm.objects.basic_api.get_page("contacts").results == []
    box.expire_tokens()
    with pytest.raises(ObjectsApiException) as expired:
        hs.crm.objects.basic_api.get_page("contacts")
    body = json.loads(expired.value.body)
    assert expired.value.status == 401 and body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired")
    fresh = box.issue_token()
    box.revoke_all_tokens()
    with pytest.raises(ObjectsApiException) as revoked:
        client(tls, url, fresh).crm.objects.basic_api.get_page("contacts")
    assert json.loads(revoked.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_property_group_and_property_creation(hs):
    group = hs.crm.properties.groups_api.create("deals", PropertyGroupCreate(
        name="coachloop", label="Coachloop"))
    assert group.name == "coachloop" and group.archived is False
    created = hs.crm.properties.core_api.create("deals", PropertyCreate(
        name="meddic_confidence", label="MEDDIC confidence", type="enumeration",
        field_type="select", group_name="coachloop",
        options=[OptionInput(label="High", value="high", display_order=0, hidden=False),
                 OptionInput(label="Low", value="low", display_order=1, hidden=False)]))
    assert created.modification_metadata.read_only_value is False
    assert [o.value for o in created.options] == ["high", "low"]
    with pytest.raises(Exception) as dup:
        hs.crm.properties.core_api.create("deals", PropertyCreate(
            name="meddic_confidence", label="x", type="string", field_type="text",
            group_name="coachloop"))
    assert dup.value.status == 409
    with pytest.raises(Exception) as combo:
        hs.crm.properties.core_api.create("deals", PropertyCreate(
            name="bad_combo", label="x", type="number", field_type="select",
            group_name="coachloop"))
    assert combo.value.status == 400
    with pytest.raises(Exception) as no_group:
        hs.crm.properties.core_api.create("deals", PropertyCreate(
            name="orphan", label="x", type="string", field_type="text", group_name="nope"))
    assert no_group.value.status == 400
    props = {p.name: p for p in hs.crm.properties.core_api.get_all("deals").results}
    assert props["hs_is_closed"].calculated is True
    assert props["hs_object_id"].modification_metadata.read_only_value is True
    assert "appointmentscheduled" in [o.value for o in props["dealstage"].options]
    deal = hs.crm.deals.basic_api.create({"properties": {"dealname": "A",
                                                         "meddic_confidence": "high"}})
    assert deal.properties["meddic_confidence"] == "high"
    for bad, code in (({"meddic_confidence": "High"}, "INVALID_OPTION"),
                      ({"hs_is_closed": "true"}, "READ_ONLY_VALUE"),
                      ({"no_such_thing": "1"}, "PROPERTY_DOESNT_EXIST"),
                      ({"amount": "lots"}, "INVALID_DOUBLE")):
        with pytest.raises(Exception) as rejected:
            hs.crm.deals.basic_api.update(deal.id, {"properties": bad})
        body = json.loads(rejected.value.body)
        assert rejected.value.status == 400 and body["category"] == "VALIDATION_ERROR"
        assert code in body["message"]


def test_batch_upsert_by_unique_property(portal, hs):
    box, _ = portal
    add_key_property(hs)
    batch = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        upsert_input("k1", dealname="One", amount="100"),
        upsert_input("k2", dealname="Two", dealstage="closedwon")])
    first = hs.crm.objects.batch_api.upsert("deals", batch)
    assert sorted(r.new for r in first.results) == [True, True]
    second = hs.crm.objects.batch_api.upsert("deals", BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[upsert_input("k1", amount="250")]))
    assert second.results[0].new is False and second.results[0].properties["amount"] == "250"
    deals = box.records("deals")
    assert len(deals) == 2 and {d["coachloop_key"] for d in deals} == {"k1", "k2"}
    won = next(d for d in deals if d["coachloop_key"] == "k2")
    assert won["hs_is_closed_won"] == "true" and won["closedate"].startswith("2026-11-02")
    assert box.batch_writes["deals"] == 2
    assert box.requests["POST /crm/v3/objects/{objectType}/batch/upsert"] == 2
    with pytest.raises(ObjectsApiException) as dupes:
        hs.crm.objects.batch_api.upsert("deals", BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[upsert_input("k3"), upsert_input("k3")]))
    assert dupes.value.status == 400 and "Duplicate IDs" in json.loads(dupes.value.body)[
        "message"]
    with pytest.raises(ObjectsApiException) as too_many:
        hs.crm.objects.batch_api.upsert("deals", BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[upsert_input(f"n{i}") for i in range(101)]))
    assert too_many.value.status == 400
    assert json.loads(too_many.value.body)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ObjectsApiException) as non_unique:
        hs.crm.objects.batch_api.upsert("deals", BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[SimplePublicObjectBatchInputUpsert(id_property="dealname", id="x",
                                                       properties={})]))
    assert "non-unique 0-3 property dealname" in json.loads(non_unique.value.body)["message"]
    assert len(box.records("deals")) == 2


def test_search_filters_sorts_paging_and_window(portal, hs, clock):
    box, _ = portal
    for i in range(60):
        box.create("deals", {"dealname": f"Deal {i:02d}", "amount": str(i * 10),
                             "dealstage": "closedwon" if i % 3 == 0 else "qualifiedtobuy"})
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[
            Filter(property_name="amount", operator="GTE", value="100"),
            Filter(property_name="dealstage", operator="IN", values=["closedwon"])])],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        properties=["dealname", "amount"], limit=5)
    page = hs.crm.deals.search_api.do_search(request)
    assert page.total == 16
    assert [r.properties["amount"] for r in page.results] == ["570", "540", "510", "480",
                                                              "450"]
    assert set(page.results[0].properties) == {"hs_object_id", "createdate",
                                               "hs_lastmodifieddate", "dealname", "amount"}
    request.after = page.paging.next.after
    clock.advance(seconds=1)  # search allows 5 requests a second
    second = hs.crm.deals.search_api.do_search(request)
    assert second.results[0].properties["amount"] == "420"
    everything = PublicObjectSearchRequest(limit=200, after="40")
    tail = hs.crm.deals.search_api.do_search(everything)
    assert tail.total == 60 and len(tail.results) == 10  # window of 50 in this sandbox
    clock.advance(seconds=1)
    with pytest.raises(Exception) as past:
        hs.crm.deals.search_api.do_search(PublicObjectSearchRequest(limit=10, after="50"))
    assert past.value.status == 400
    with pytest.raises(Exception) as unknown:
        hs.crm.deals.search_api.do_search(PublicObjectSearchRequest(filter_groups=[
            FilterGroup(filters=[Filter(property_name="nope", operator="EQ", value="1")])]))
    assert unknown.value.status == 400
    box.create("contacts", {"email": "Sam@Northwind.example"})
    found = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(filter_groups=[
        FilterGroup(filters=[Filter(property_name="email", operator="EQ",
                                    value="sam@northwind.example")])]))
    assert found.total == 1


def test_rate_limit_headers_and_429s(portal, tls, clock):
    box, url = portal
    token = box.issue_token()
    with http(tls) as web:
        auth = {"Authorization": f"Bearer {token}"}
        listed = web.get(f"{url}/crm/v3/objects/deals", headers=auth)
        assert listed.status_code == 200
        assert listed.headers["X-HubSpot-RateLimit-Max"] == "190"
        assert listed.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert listed.headers["X-HubSpot-RateLimit-Remaining"] == "189"
        assert "X-HubSpot-RateLimit-Daily" not in listed.headers  # OAuth token: no daily
        searched = web.post(f"{url}/crm/v3/objects/deals/search", headers=auth, json={})
        assert searched.status_code == 200
        assert not [h for h in searched.headers if h.lower().startswith("x-hubspot-ratelimit")]
        private = {"Authorization": f"Bearer {box.issue_token(private_app=True)}"}
        daily = web.get(f"{url}/crm/v3/objects/deals", headers=private)
        assert daily.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
        assert int(daily.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == 1_000_000 - 3
        box.fail_next("TEN_SECONDLY_ROLLING")
        limited = web.get(f"{url}/crm/v3/objects/deals", headers=auth)
        assert limited.status_code == 429
        body = limited.json()
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["status"] == "error" and body["correlationId"] and body["groupName"]
        box.fail_next(503)
        assert web.get(f"{url}/crm/v3/objects/deals", headers=auth).status_code == 503
        box.set_daily_usage(1_000_000)
        over = web.get(f"{url}/crm/v3/objects/deals", headers=private)
        assert over.status_code == 429 and over.json()["policyName"] == "DAILY"
        for _ in range(4):
            web.post(f"{url}/crm/v3/objects/deals/search", headers=auth, json={})
        assert web.post(f"{url}/crm/v3/objects/deals/search", headers=auth,
                        json={}).status_code == 429
        clock.advance(seconds=1)
        assert web.post(f"{url}/crm/v3/objects/deals/search", headers=auth,
                        json={}).status_code == 200


def test_burst_limit_enforced(tls, clock):
    box = HubSpotSandbox(clock=clock, burst_limit=5)
    server = box.start(tls)
    try:
        hs = client(tls, server.url, box.issue_token())
        for _ in range(5):
            hs.crm.objects.basic_api.get_page("deals")
        with pytest.raises(ObjectsApiException) as limited:
            hs.crm.objects.basic_api.get_page("deals")
        assert limited.value.status == 429
        assert json.loads(limited.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
        clock.advance(seconds=10)
        assert hs.crm.objects.basic_api.get_page("deals").results == []
    finally:
        server._server.force_exit = True
        server.stop()


def test_associations_v4_both_directions_with_labels(portal, hs):
    box, _ = portal
    deal = box.create("deals", {"dealname": "Northwind"})
    contact = box.create("contacts", {"email": "sam@northwind.example"})
    label = hs.crm.associations.v4.schema.definitions_api.create(
        "deals", "contacts", PublicAssociationDefinitionCreateRequest(
            label="Economic Buyer", name="economic_buyer"))
    type_id = label.results[0].type_id
    assert label.results[0].category == "USER_DEFINED"
    created = hs.crm.associations.v4.batch_api.create("deals", "contacts",
                                                      BatchInputPublicAssociationMultiPost(
        inputs=[PublicAssociationMultiPost(
            _from=PublicObjectId(id=deal), to=PublicObjectId(id=contact),
            types=[AssociationSpec(association_category="USER_DEFINED",
                                   association_type_id=type_id)])]))
    assert created.results[0].labels == ["Economic Buyer"]
    read = hs.crm.associations.v4.batch_api.get_page(
        "contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=contact)]))
    types = {t.type_id: t for t in read.results[0].to[0].association_types}
    assert str(read.results[0].to[0].to_object_id) == deal
    assert 4 in types and types[4].category == "HUBSPOT_DEFINED"  # contact → deal unlabeled
    assert any(t.label == "Economic Buyer" for t in types.values())
    assert box.associations("deals", deal, "contacts") == [(contact, sorted([3, type_id]))]
    again = hs.crm.associations.v4.basic_api.create_default("deals", deal, "contacts", contact)
    assert again.results[0].association_spec.association_type_id == 3
    assert len(box.associations("contacts", contact, "deals")) == 1  # idempotent


def test_custom_object_schema_and_upsert_and_professional_tier(portal, hs):
    box, _ = portal
    schema = hs.crm.schemas.core_api.create(ObjectSchemaEgg(
        name="rep_skill_score", labels=ObjectTypeDefinitionLabels(singular="Skill score",
                                                                  plural="Skill scores"),
        primary_display_property="score_key", required_properties=["score_key"],
        searchable_properties=["score_key"], associated_objects=["DEAL"],
        properties=[ObjectTypePropertyCreate(name="score_key", label="Score key",
                                             type="string", field_type="text",
                                             has_unique_value=True),
                    ObjectTypePropertyCreate(name="score", label="Score", type="number",
                                             field_type="number")]))
    assert schema.object_type_id.startswith("2-")
    assert schema.fully_qualified_name == f"p{PORTAL_ID}_rep_skill_score"
    assert schema.associations[0].to_object_type_id == "0-3"
    with pytest.raises(Exception) as dup:
        hs.crm.schemas.core_api.create(ObjectSchemaEgg(
            name="rep_skill_score", labels=ObjectTypeDefinitionLabels(singular="a", plural="b"),
            required_properties=[], associated_objects=[], properties=[]))
    assert dup.value.status == 409
    batch = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        SimplePublicObjectBatchInputUpsert(id_property="score_key", id="rep1:talk",
                                           properties={"score": "0.7"})])
    for path in (schema.object_type_id, schema.fully_qualified_name):
        result = hs.crm.objects.batch_api.upsert(path, batch)
    assert result.results[0].new is False
    assert box.records(schema.object_type_id)[0]["score"] == "0.7"
    with pytest.raises(ObjectsApiException) as bare:
        hs.crm.objects.basic_api.get_page("nonexistent_thing")
    assert "Unable to infer object type" in json.loads(bare.value.body)["message"]
    box.set_tier("professional")
    with pytest.raises(Exception) as refused:
        hs.crm.schemas.core_api.get_all()
    assert refused.value.status == 403


def test_webhook_v3_signature(portal, tls, clock):
    box, _ = portal
    received: list[tuple[str, dict, bytes]] = []
    receiver = FastAPI()

    @receiver.post("/hooks/hubspot")
    async def hook(request: Request):
        received.append((str(request.url), dict(request.headers), await request.body()))
        return {}

    server = serve(receiver, tls)
    try:
        target = f"{server.url}/hooks/hubspot"
        box.subscribe(target, verify=str(tls.ca_path))
        deal = box.create("deals", {"dealname": "A", "dealstage": "qualifiedtobuy"})
        box.update("deals", deal, {"dealstage": "closedwon"})
        box.update("deals", deal, {"dealname": "B"})  # not subscribed
        assert box.flush_webhooks() == [200]
    finally:
        server._server.force_exit = True
        server.stop()
    uri, headers, body = received[0]
    events = json.loads(body)
    assert [(e["propertyName"], e["propertyValue"], e["objectId"]) for e in events] == \
        [("dealstage", "closedwon", int(deal))]
    assert events[0]["subscriptionType"] == "deal.propertyChange"
    assert events[0]["changeSource"] == "CRM_UI" and events[0]["portalId"] == PORTAL_ID
    assert headers["x-hubspot-signature-version"] == "v3"
    timestamp = headers["x-hubspot-request-timestamp"]
    expected = base64.b64encode(hmac.new(
        DEFAULT_CLIENT_SECRET.encode(), b"POST" + uri.encode() + body + timestamp.encode(),
        hashlib.sha256).digest()).decode()
    assert headers["x-hubspot-signature-v3"] == expected
    assert sign_v3(DEFAULT_CLIENT_SECRET, "POST", uri, body, timestamp) == expected
    assert box.pending_webhooks() == []


def test_demo_seed_deals_searchable_by_owner(portal, hs):
    box, _ = portal
    ids = demo_seed(box, DEMO)
    assert set(ids) == {"owners", "companies", "contacts", "deals"}
    maya = ids["owners"]["maya.chen@acme-analytics.example"]
    owners = hs.crm.owners.owners_api.get_page(email="maya.chen@acme-analytics.example")
    assert [o.id for o in owners.results] == [maya]
    found = hs.crm.deals.search_api.do_search(PublicObjectSearchRequest(filter_groups=[
        FilterGroup(filters=[Filter(property_name="hubspot_owner_id", operator="EQ",
                                    value=maya)])], properties=["dealname", "dealstage"]))
    assert found.total == 3
    stages = {r.properties["dealname"].split(" - ")[0]: r.properties["dealstage"]
              for r in found.results}
    assert stages["Northwind Traders"] == "closedwon"
    assert stages["Riverbend Insurance"] == "qualifiedtobuy"
    northwind = ids["deals"]["OPP-NW-001"]
    contacts = box.associations("deals", northwind, "contacts")
    assert {c for c, _ in contacts} == {ids["contacts"]["sam.patel@northwind.example"],
                                        ids["contacts"]["linda.park@northwind.example"]}
    company = box.get("companies", ids["companies"]["Northwind Traders"])
    assert company["domain"] == "northwind.example"
    assert box.get("contacts", ids["contacts"]["sam.patel@northwind.example"])[
        "firstname"] == "Sam"
    assert all(s in ALL_SCOPES for s in ("crm.objects.deals.write", "crm.schemas.custom.write"))
