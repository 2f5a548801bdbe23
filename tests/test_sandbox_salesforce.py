"""The Salesforce sandbox over real HTTPS, driven by simple-salesforce and httpx."""

from __future__ import annotations

import base64
import hashlib
import secrets
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from sandbox.salesforce import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SalesforceSandbox,
    demo_seed,
    normalize_id,
)
from sandbox.server import serve
from tests.conftest import Clock

DEMO = Path(__file__).resolve().parent.parent / "demo"


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc))


@pytest.fixture
def org(tls, clock):
    """A fresh sandbox on HTTPS: (sandbox, base url)."""
    box = SalesforceSandbox(clock=clock, query_page_size=3)
    server = serve(box.create_app(), tls)
    yield box, server.url
    for session in OPEN_SESSIONS:  # uvicorn waits for open keep-alive connections on stop
        session.close()
    OPEN_SESSIONS.clear()
    stop(server)


OPEN_SESSIONS: list = []


def stop(server) -> None:
    """Stop without uvicorn's wait for lingering keep-alive connections (seconds per test)."""
    server._server.force_exit = True
    server.stop()


def client(tls, url: str, token: str) -> Salesforce:
    sf = Salesforce(instance_url=url, session_id=token, version="59.0")
    sf.session.verify = str(tls.ca_path)
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify unless the
    # session ignores the environment
    sf.session.trust_env = False
    OPEN_SESSIONS.append(sf.session)
    return sf


@pytest.fixture
def sf(org, tls):
    box, url = org
    return client(tls, url, box.issue_token())


def seed_deal(box: SalesforceSandbox) -> dict:
    ids = box.seed(accounts=[{"Name": "Northwind Traders"}],
                   contacts=[{"LastName": "Patel", "FirstName": "Sam"}])
    opp = box.create("Opportunity", {"Name": "Northwind - Platform", "StageName": "Proposal",
                                     "CloseDate": "2026-12-15", "Amount": 84000,
                                     "AccountId": ids["accounts"][0],
                                     "Coachloop_Deal_Key__c": "OPP-NW-001"})
    return {"account": ids["accounts"][0], "contact": ids["contacts"][0], "opp": opp}


def error_of(exc_info) -> dict:
    return exc_info.value.content[0]


def test_describe_reports_types_picklists_and_external_ids(sf):
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert fields["StageName"]["type"] == "picklist"
    assert fields["StageName"]["restrictedPicklist"] is True
    assert {"value": "Closed Won", "label": "Closed Won", "active": True, "defaultValue": False,
            "validFor": None} in fields["StageName"]["picklistValues"]
    assert fields["IsClosed"]["updateable"] is False and fields["IsClosed"]["createable"] is False
    assert fields["Amount"]["type"] == "currency"
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["Economic_Buyer__c"]["length"] == 255
    assert fields["AI_Metrics__c"]["type"] == "textarea"
    assert fields["MEDDIC_Confidence__c"]["restrictedPicklist"] is True
    scores = {f["name"]: f for f in sf.Rep_Skill_Score__c.describe()["fields"]}
    assert scores["Score_Key__c"]["externalId"] and scores["Score_Key__c"]["unique"]
    assert scores["User__c"]["referenceTo"] == ["User"]
    assert [v["value"] for v in scores["State__c"]["picklistValues"]] == ["ok",
                                                                          "insufficient_data"]
    assert sf.Task.describe()["keyPrefix"] == "00T"


def test_record_crud_and_derived_fields(org, sf):
    box, _ = org
    deal = seed_deal(box)
    created = sf.Opportunity.create({"Name": "Bluehill", "StageName": "Discovery",
                                     "CloseDate": "2027-01-29", "AccountId": deal["account"]})
    assert created["success"] is True and created["errors"] == []
    opp_id = created["id"]
    assert opp_id.startswith("006") and len(opp_id) == 18 and normalize_id(opp_id[:15]) == opp_id
    assert sf.Opportunity.update(opp_id, {"StageName": "Closed Won", "Metrics__c": "-30% DSO"}) \
        == 204
    got = sf.Opportunity.get(opp_id)
    assert got["IsClosed"] is True and got["IsWon"] is True
    assert got["Metrics__c"] == "-30% DSO" and got["CloseDate"] == "2027-01-29"
    assert got["attributes"]["type"] == "Opportunity"
    assert sf.Opportunity.get_by_custom_id("Coachloop_Deal_Key__c", "OPP-NW-001")["Id"] \
        == deal["opp"]
    assert sf.Opportunity.delete(opp_id) == 204
    assert box.get("Opportunity", opp_id) is None


def test_upsert_by_external_id_twice_keeps_one_record(org, sf):
    box, _ = org
    deal = seed_deal(box)
    body = {"Subject": "Discovery call", "WhatId": deal["opp"], "WhoId": deal["contact"],
            "ActivityDate": "2026-11-02", "Status": "Completed"}
    assert sf.Task.upsert("Coachloop_Meeting_Key__c/zoom:123", body) == 201
    assert sf.Task.upsert("Coachloop_Meeting_Key__c/zoom:123",
                          {**body, "Description": "notes"}) == 200
    tasks = box.find("Task", Coachloop_Meeting_Key__c="zoom:123")
    assert len(tasks) == 1 and tasks[0]["Description"] == "notes"
    assert tasks[0]["Priority"] == "Normal"  # defaulted on create


def test_collections_upsert_reports_per_record_errors(org, sf):
    box, _ = org
    deal = seed_deal(box)
    user = box.admin_user_id
    rows = [{"attributes": {"type": "Rep_Skill_Score__c"}, "Score_Key__c": f"{user}:talk:{i}",
             "User__c": user, "Opportunity__c": deal["opp"], "Skill__c": "talk_ratio",
             "As_Of__c": "2026-11-01", "Score__c": 0.5 + i / 10, "State__c": "ok"}
            for i in range(3)]
    rows[1]["State__c"] = "great"
    path = "composite/sobjects/Rep_Skill_Score__c/Score_Key__c"
    results = sf.restful(path, method="PATCH", json={"allOrNone": False, "records": rows})
    assert [r["success"] for r in results] == [True, False, True]
    assert [r["created"] for r in results] == [True, False, True]
    assert results[1]["errors"] == [{
        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "message": "State: bad value for restricted picklist field: great",
        "fields": ["State__c"]}]
    rows[1]["State__c"] = "insufficient_data"
    again = sf.restful(path, method="PATCH", json={"allOrNone": False, "records": rows})
    assert [(r["success"], r["created"]) for r in again] == [(True, False), (True, True),
                                                              (True, False)]
    assert again[0]["id"] == results[0]["id"]
    assert len(box.records("Rep_Skill_Score__c")) == 3
    assert box.requests["PATCH /composite/sobjects/{obj}/{field}"] == 2


def test_collections_all_or_none_rolls_back_everything(org, sf):
    box, _ = org
    rows = [{"attributes": {"type": "Account"}, "Name": "Cedar Logistics"},
            {"attributes": {"type": "Account"}, "Name": "x" * 256},
            {"attributes": {"type": "Contact"}, "LastName": "Ross"}]
    results = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": True, "records": rows})
    assert [r["success"] for r in results] == [False, False, False]
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    for index in (0, 2):
        assert results[index]["id"] is None
        assert results[index]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert box.records("Account") == [] and box.records("Contact") == []
    rows[1]["Name"] = "Cedar Two"
    results = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": True, "records": rows})
    assert all(r["success"] for r in results)
    assert {a["Name"] for a in box.records("Account")} == {"Cedar Logistics", "Cedar Two"}


def test_collections_update_and_size_limit(org, sf):
    box, _ = org
    deal = seed_deal(box)
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Opportunity"}, "id": deal["opp"], "AI_Champion__c": "Sam"},
        {"attributes": {"type": "Opportunity"}, "id": "006000000000000", "Name": "gone"}]})
    assert results[0] == {"id": deal["opp"], "success": True, "errors": []}
    assert results[1]["success"] is False
    assert box.get("Opportunity", deal["opp"])["AI_Champion__c"] == "Sam"
    too_many = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})
    assert error_of(exc)["errorCode"] == "EXCEEDED_ID_LIMIT"


@pytest.mark.parametrize("values, code, fields", [
    ({"Nope__c": 1}, "INVALID_FIELD", None),
    ({"IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsClosed"]),
    ({"Name": "n" * 121}, "STRING_TOO_LONG", ["Name"]),
    ({"StageName": "Won-ish"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["StageName"]),
    ({"CloseDate": None}, "REQUIRED_FIELD_MISSING", ["CloseDate"]),
    ({"AccountId": "not-an-id"}, "MALFORMED_ID", ["AccountId"]),
    ({"AccountId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
    ({"Coachloop_Deal_Key__c": "OPP-NW-001"}, "DUPLICATE_VALUE", None),
    ({"Amount": "lots"}, "JSON_PARSER_ERROR", None),
])
def test_each_validation_error_code(org, sf, values, code, fields):
    box, _ = org
    seed_deal(box)
    before = len(box.records("Opportunity"))
    body = {"Name": "Harbor", "StageName": "Qualification", "CloseDate": "2026-12-01", **values}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Opportunity.create(body)
    error = error_of(exc)
    assert error["errorCode"] == code
    if fields is not None:
        assert error["fields"] == fields
    if code == "INVALID_FIELD":
        assert error["message"] == "No such column 'Nope__c' on sobject of type Opportunity"
    assert len(box.records("Opportunity")) == before


def test_injected_lock_errors_fail_the_next_writes(org, sf):
    box, _ = org
    box.inject_lock_errors(1)
    results = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Account"}, "Name": "A"},
        {"attributes": {"type": "Account"}, "Name": "B"}]})
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert results[1]["success"] is True
    box.inject_lock_errors(1)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.update(results[1]["id"], {"Name": "B2"})
    assert error_of(exc)["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf.Account.update(results[1]["id"], {"Name": "B2"}) == 204


def test_query_pages_with_relationship_fields(org, sf):
    box, _ = org
    deal = seed_deal(box)
    for i in range(7):
        sf.Opportunity.create({"Name": f"Deal {i:02d}", "StageName": "Discovery",
                               "CloseDate": "2026-12-01", "Amount": 1000 * i,
                               "AccountId": deal["account"]})
    result = sf.query_all("SELECT Id, Name, Account.Name, Owner.Email FROM Opportunity "
                          "WHERE Name LIKE 'deal%' ORDER BY Amount DESC")
    assert result["totalSize"] == 7 and len(result["records"]) == 7
    assert [r["Name"] for r in result["records"]] == [f"Deal {i:02d}" for i in range(6, -1, -1)]
    first = result["records"][0]
    assert first["Account"]["Name"] == "Northwind Traders"
    assert first["Owner"]["Email"] == "admin@coachloop-sandbox.example"
    assert box.requests["GET /query"] == 1 and box.requests["GET /query/{locator}"] == 2
    page = sf.query("SELECT Id FROM Opportunity")
    assert page["done"] is False and len(page["records"]) == 3
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/query/")


def test_query_filters_and_incremental_cursor(org, sf, clock):
    box, _ = org
    deal = seed_deal(box)
    clock.advance(hours=1)
    sf.Opportunity.update(deal["opp"], {"StageName": "Closed Lost"})
    sf.Opportunity.create({"Name": "Other", "StageName": "Prospecting", "CloseDate": "2027-03-01",
                           "Amount": 5})
    since = (clock.now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = sf.query(f"SELECT Id FROM Opportunity WHERE SystemModstamp > {since}")
    assert changed["totalSize"] == 2
    soql = ("SELECT Id, Name FROM Opportunity WHERE (StageName IN ('Closed Won', 'Closed Lost') "
            "OR Amount < 10) AND CloseDate >= 2026-12-01 AND AccountId != null")
    assert [r["Id"] for r in sf.query(soql)["records"]] == [deal["opp"]]
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = false")["totalSize"] == 1
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Opportunity WHERE")
    assert error_of(exc)["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'")
    assert error_of(exc)["errorCode"] == "INVALID_FIELD"


def test_limit_header_and_request_limit_exceeded(tls, clock):
    box = SalesforceSandbox(clock=clock, daily_limit=3, session_timeout=timedelta(days=2))
    server = serve(box.create_app(), tls)
    try:
        sf = client(tls, server.url, box.issue_token())
        sf.query("SELECT Id FROM Account")
        assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 3
        sf.query("SELECT Id FROM Account")
        sf.query("SELECT Id FROM Account")
        with pytest.raises(SalesforceRefusedRequest) as exc:
            sf.query("SELECT Id FROM Account")
        assert exc.value.content == [{"message": "TotalRequests Limit exceeded.",
                                      "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        clock.advance(hours=24, seconds=1)  # the 24 h window rolls past the old calls
        assert sf.restful("limits")["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    finally:
        sf.session.close()
        stop(server)


def test_idle_session_expires_with_401(org, sf, clock):
    clock.advance(hours=1, minutes=59)
    sf.query("SELECT Id FROM User")  # activity keeps the session alive
    clock.advance(hours=1, minutes=59)
    sf.query("SELECT Id FROM User")
    clock.advance(hours=2, seconds=1)
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM User")
    assert exc.value.content == [{"message": "Session expired or invalid",
                                  "errorCode": "INVALID_SESSION_ID"}]


def test_revoke_all_tokens_and_error_injection(org, sf):
    box, url = org
    box.set_faults(error_rate=1.0, seed=7)
    statuses = set()
    for _ in range(6):
        response = sf.session.get(url + "/services/data/v59.0/limits",
                                  headers={"Authorization": "Bearer x"})
        statuses.add(response.status_code)
    assert statuses <= {500, 503} and statuses
    box.set_faults()
    box.revoke_all_tokens()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM User")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(http: httpx.Client, challenge: str) -> str:
    response = http.get("/services/oauth2/authorize", params={
        "response_type": "code", "client_id": DEFAULT_CLIENT_ID, "state": "s-1",
        "redirect_uri": "http://localhost:8000/callback", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert response.status_code == 302
    query = parse_qs(urlparse(response.headers["location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0]


def _exchange(http: httpx.Client, code: str, verifier: str) -> httpx.Response:
    return http.post("/services/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET, "redirect_uri": "http://localhost:8000/callback",
        "code_verifier": verifier})


def test_oauth_code_flow_with_pkce(org, tls):
    box, url = org
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca_path))) as http:
        verifier, challenge = _pkce()
        code = _authorize(http, challenge)
        assert _exchange(http, code, "wrong-verifier").json()["error"] == "invalid_request"
        token = _exchange(http, code, verifier)
        assert token.status_code == 200
        body = token.json()
        assert {"access_token", "refresh_token", "instance_url", "id", "token_type",
                "issued_at", "signature", "scope"} <= set(body) and "expires_in" not in body
        assert body["instance_url"] == url
        reused = _exchange(http, code, verifier)
        assert reused.status_code == 400 and reused.json() == {
            "error": "invalid_grant", "error_description": "expired authorization code"}
        missing = _exchange(http, _authorize(http, challenge), "")
        assert missing.json()["error"] == "invalid_grant"
    sf = client(tls, body["instance_url"], body["access_token"])
    assert sf.query("SELECT Id FROM User")["totalSize"] == 1


def test_refresh_rotation_and_family_revocation_on_reuse(org, tls):
    box, url = org
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca_path))) as http:
        verifier, challenge = _pkce()
        first = _exchange(http, _authorize(http, challenge), verifier).json()

        def refresh(token: str) -> httpx.Response:
            return http.post("/services/oauth2/token", data={
                "grant_type": "refresh_token", "refresh_token": token,
                "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})

        second = refresh(first["refresh_token"]).json()
        assert second["refresh_token"] != first["refresh_token"]
        third = refresh(second["refresh_token"]).json()
        api = "/services/data/v59.0/limits"
        bearer = {"Authorization": f"Bearer {third['access_token']}"}
        assert http.get(api, headers=bearer).status_code == 200
        reuse = refresh(first["refresh_token"])  # an already-rotated token: family is revoked
        assert reuse.status_code == 400
        assert reuse.json() == {"error": "invalid_grant",
                                "error_description": "expired access/refresh token"}
        denied = http.get(api, headers=bearer)
        assert denied.status_code == 401
        assert denied.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        assert refresh(third["refresh_token"]).status_code == 400


def test_revoke_endpoint_as_salesforce_documents_it(org, tls):
    """POST /services/oauth2/revoke `token=`: a refresh token takes its access tokens with
    it; an access token goes alone; an unknown or already revoked token is a 400."""
    box, url = org
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca_path))) as http:
        verifier, challenge = _pkce()
        first = _exchange(http, _authorize(http, challenge), verifier).json()
        verifier, challenge = _pkce()
        second = _exchange(http, _authorize(http, challenge), verifier).json()
        api = "/services/data/v59.0/limits"

        def works(token: str) -> bool:
            return http.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200

        assert http.post("/services/oauth2/revoke",
                         data={"token": second["access_token"]}).status_code == 200
        assert not works(second["access_token"]) and works(first["access_token"])
        assert http.post("/services/oauth2/revoke",
                         data={"token": first["refresh_token"]}).status_code == 200
        denied = http.get(api, headers={"Authorization": f"Bearer {first['access_token']}"})
        assert denied.status_code == 401
        assert denied.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        refresh = http.post("/services/oauth2/token", data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})
        assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
        again = http.post("/services/oauth2/revoke", data={"token": first["refresh_token"]})
        assert again.status_code == 400 and again.json()["error"] == "unsupported_token_type"


def test_demo_seed_loads_team_and_deals(org, sf):
    box, _ = org
    ids = demo_seed(box, DEMO)
    assert len(ids["users"]) == 4 and len(ids["opportunities"]) >= 7
    won = sf.query("SELECT Name, Owner.Email, Account.Name FROM Opportunity "
                   "WHERE IsWon = true")["records"]
    assert any(r["Owner"]["Email"] == "maya.chen@acme-analytics.example" for r in won)
    roles = sf.query_all("SELECT ContactId, Role FROM OpportunityContactRole "
                         f"WHERE OpportunityId = '{ids['opportunities']['OPP-NW-001']}'")
    assert roles["totalSize"] == 2
