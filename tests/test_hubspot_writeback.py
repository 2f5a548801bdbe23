"""HubSpot write-back against the HubSpot sandbox over HTTPS, through hubspot-api-client.

Calls come from the demo's platform-transcript calls, ingested and scored for real; the
connection is made with the real OAuth flow; the portal is prepared by the admin-approved
setup step; every assertion reads the sandbox back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import select

from core.errors import TransientError
from core.settings import get_settings
from sandbox.hubspot import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, HubSpotSandbox, demo_seed
from tests.conftest import scored_demo_org

DEMO = Path(__file__).resolve().parent.parent / "demo"
AS_OF = date(2026, 11, 20)


class Ticking:
    """The wall clock, movable forward (the sandbox limits searches per second, so a frozen
    clock would refuse a busy sync)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kw) -> None:
        self.offset += timedelta(**kw)


@dataclass
class Portal:
    box: HubSpotSandbox
    ids: dict
    org_id: int
    clock: Ticking
    server: object


def make_portal(folder: Path, tls, monkeypatch, *, tier: str = "enterprise") -> Portal:
    """Scored demo calls, a seeded HubSpot sandbox, and a live OAuth connection to it."""
    from connectors.oauth_apps import connect_following_consent

    clock = Ticking()
    box = HubSpotSandbox(clock=clock, tier=tier)
    ids = demo_seed(box, DEMO)
    server = box.start(tls)
    for key, value in {"HUBSPOT__CLIENT_ID": DEFAULT_CLIENT_ID,
                       "HUBSPOT__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                       "HUBSPOT__APP_BASE": server.url, "HUBSPOT__API_BASE": server.url,
                       "CA_BUNDLE": str(tls.ca_path),
                       "PUBLIC_URL": "https://coachloop.example"}.items():
        monkeypatch.setenv(f"COACHLOOP_{key}", value)
    get_settings.cache_clear()
    org_id = scored_demo_org(folder, AS_OF)
    connect_following_consent("hubspot", org_id, get_settings())
    return Portal(box, ids, org_id, clock, server)


@pytest.fixture
def portal(sqlite_database, tls, tmp_path, monkeypatch):
    made = make_portal(tmp_path / "calls", tls, monkeypatch)
    yield made
    made.server.stop()


def setup(org_id, apply=True):
    from connectors.hubspot.portal import prepare

    return prepare(org_id, get_settings(), apply=apply)


def writer(org_id):
    from connectors.hubspot import writer_for_org

    return writer_for_org(org_id, get_settings())


def sync(org_id, apply=True, **kw):
    from connectors.crm_sync import sync as run
    from mappings import configured_mapping

    made = writer(org_id)
    try:
        return run(org_id, made, configured_mapping("hubspot", get_settings()), apply=apply,
                   public_url="https://coachloop.example", **kw)
    finally:
        made.close()


def coachloop_calls(box):
    return [c for c in box.records("calls") if c.get("coachloop_meeting_key")]


def test_setup_lists_what_is_missing_then_creates_it_once(portal):
    from connectors.hubspot.portal import skill_target

    planned = setup(portal.org_id, apply=False)
    whats = {(s.object, s.what) for s in planned.steps}
    assert all(s.status == "to create" for s in planned.steps)
    assert ("deals", "property group 'coachloop'") in whats
    assert ("deals", "property coachloop_ai_metrics (string)") in whats
    assert ("calls", "property coachloop_meeting_key (string)") in whats
    assert ("coachloop_skill_score", "custom object (schema)") in whats
    assert portal.box.get_property("deals", "coachloop_ai_metrics") is None  # nothing yet

    done = setup(portal.org_id)
    assert {s.status for s in done.steps} == {"created"}, done.steps
    key = portal.box.get_property("calls", "coachloop_meeting_key")
    assert key is not None and key["hasUniqueValue"]
    assert setup(portal.org_id, apply=False).steps == []  # nothing left to do
    assert skill_target(writer(portal.org_id).connection_id).mode == "object"


def test_setup_reports_a_property_of_the_wrong_type_and_adds_missing_options(portal):
    portal.box.create_property("deals", {"name": "coachloop_champion", "label": "Champion",
                                         "type": "number", "fieldType": "number",
                                         "groupName": "dealinformation"})
    # An admin made the skill-score object earlier, its skill enumeration with one option.
    made = writer(portal.org_id)
    try:
        made._call("crm.schemas.core_api", "create", {
            "name": "coachloop_skill_score",
            "labels": {"singular": "Rep skill score", "plural": "Rep skill scores"},
            "primaryDisplayProperty": "name", "requiredProperties": ["name"],
            "properties": [{"name": "name", "label": "Name", "type": "string",
                            "fieldType": "text"},
                           {"name": "skill", "label": "Skill", "type": "enumeration",
                            "fieldType": "select", "options": [
                                {"label": "Discovery depth", "value": "discovery_depth",
                                 "displayOrder": 0}]}]})
    finally:
        made.close()
    done = setup(portal.org_id)
    [conflict] = [s for s in done.steps if s.status == "conflict"]
    assert conflict.what == "property coachloop_champion" and "number" in conflict.note
    assert not any(s.what == "custom object (schema)" for s in done.steps)
    [options] = [s for s in done.steps if s.what.startswith("options ")]
    assert options.status == "created" and options.what.endswith(" of skill")
    assert "discovery_depth" not in options.what
    # The enumeration now has every option, its own first.
    skill = portal.box.get_property("coachloop_skill_score", "skill")
    values = [o["value"] for o in skill["options"]]
    from core.skill_taxonomy import SKILLS
    assert values == list(SKILLS)


def test_write_back_fills_deals_logs_calls_and_upserts_skill_scores(portal):
    setup(portal.org_id)
    report = sync(portal.org_id)
    assert not report.failed, report.failed
    box = portal.box
    calls = coachloop_calls(box)
    assert len(calls) == len(report.calls) >= 5
    linked = [c for c in calls if box.associations("calls", c["id"], "deals")]
    assert len(linked) == sum(1 for m in report.deals.values() if m.record_id)
    assert any(box.associations("calls", c["id"], "contacts") for c in calls)
    owners = set(portal.ids["owners"].values())
    assert {c.get("hubspot_owner_id") for c in calls} <= owners
    ai = [d for d in box.records("deals") if d.get("coachloop_ai_metrics")]
    assert ai, "no AI copy written"
    scores = box.records("coachloop_skill_score")
    assert scores and {s["hubspot_owner_id"] for s in scores} <= owners
    assert all(s["score_key"].split(":")[0] in owners for s in scores)

    before = (len(coachloop_calls(box)), len(box.records("coachloop_skill_score")))
    again = sync(portal.org_id, include_synced=True)
    assert not again.failed
    assert (len(coachloop_calls(box)), len(box.records("coachloop_skill_score"))) == before
    # ≤ 100 records a call: one batch per object for this small org.
    assert box.batch_writes["calls"] == 2


def test_a_portal_without_custom_objects_gets_owner_scores_on_open_deals(tls, tmp_path,
                                                                         monkeypatch,
                                                                         sqlite_database):
    from connectors.hubspot.portal import skill_target

    made = make_portal(tmp_path / "calls", tls, monkeypatch, tier="professional")
    try:
        done = setup(made.org_id)
        assert not any(s.what == "custom object (schema)" for s in done.steps)
        assert skill_target(writer(made.org_id).connection_id).mode == "deal_properties"
        report = sync(made.org_id)
        assert not report.failed, report.failed
        deals = made.box.records("deals")
        scored = [d for d in deals if d.get("coachloop_owner_discovery_depth")]
        assert scored and all(d["coachloop_owner_skills_as_of"] for d in scored)
        assert all(d["dealstage"] not in ("closedwon", "closedlost") for d in scored)
    finally:
        made.server.stop()


def test_pull_outcomes_pages_past_the_search_window(portal):
    from connectors.crm_sync import pull_outcomes
    from core.db import session_scope
    from core.models import Deal

    for i in range(30):
        portal.clock.advance(seconds=1)
        portal.box.create("deals", {"dealname": f"Bulk {i}", "pipeline": "default",
                                    "dealstage": "closedlost" if i % 3 else "closedwon",
                                    "amount": "1000"})
    portal.box.search_window = 12  # the demo's 7 deals share one modification time
    made = writer(portal.org_id)
    made.search_window, made.search_page = 12, 3
    try:
        pulled = pull_outcomes(portal.org_id, made, full=True)
    finally:
        made.close()
    expected = len(portal.box.records("deals"))
    assert pulled == expected > 12
    with session_scope() as session:
        rows = session.exec(select(Deal).where(Deal.crm == "hubspot")).all()
    assert len(rows) == expected
    bulk = [r for r in rows if r.name.startswith("Bulk")]
    assert sum(r.is_won for r in bulk) == 10 and all(r.is_closed for r in bulk)
    won = next(r for r in rows if r.name.startswith("Northwind"))
    assert won.is_won and won.stage == "Closed Won" and won.owner_id  # maya, by e-mail
    assert won.contact_emails and won.account == "Northwind Traders"


def test_one_bad_record_in_a_batch_is_found_and_the_rest_written(portal):
    from connectors.base import RecordWrite

    setup(portal.org_id)
    made = writer(portal.org_id)
    try:
        writes = [RecordWrite("calls", {"hs_timestamp": "2026-11-30T15:00:00Z",
                                        "hs_call_title": f"call {i}",
                                        "hs_call_status": "NOPE" if i == 3 else "COMPLETED"},
                              key_field="coachloop_meeting_key", key=f"k{i}")
                  for i in range(6)]
        results = made.write(writes)
    finally:
        made.close()
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert "NOPE" in results[3].error or "option" in results[3].error.lower()
    assert len(coachloop_calls(portal.box)) == 5


def test_rate_limits_burst_waits_daily_is_transient_and_headers_are_read(portal):
    sleeps = []
    made = writer(portal.org_id)
    made._sleep = sleeps.append
    try:
        portal.box.fail_next("TEN_SECONDLY_ROLLING")
        made.check()  # waited out in place
        assert sleeps and sleeps[0] >= 1
        assert made.api_usage is None  # HubSpot sends OAuth apps no daily counts
        remaining, most, window = made._burst
        assert most == portal.box.burst_limit and 0 < remaining < most and window == 10
        portal.box.fail_next("DAILY")
        with pytest.raises(TransientError) as caught:
            made.check()
        assert caught.value.retry_after > 60
    finally:
        made.close()


def test_a_signed_deal_stage_webhook_pulls_the_deal(portal, tls):
    from api import create_app, wait_for_local_events
    from core.db import session_scope
    from core.models import Deal, WebhookEvent
    from sandbox.server import serve

    api = serve(create_app(), tls)
    try:
        deal = portal.ids["deals"]["OPP-BH-002"]
        portal.box.subscribe(f"{api.url}/webhooks/hubspot", verify=str(tls.ca_path))
        portal.box.update("deals", deal, {"dealstage": "closedlost"})
        assert portal.box.flush_webhooks() == [200]
        wait_for_local_events()
    finally:
        api.stop()
    with session_scope() as session:
        [event] = session.exec(select(WebhookEvent)).all()
        assert event.provider == "hubspot" and event.org_id == portal.org_id
        assert event.processed_at is not None and event.error is None
        row = session.exec(select(Deal).where(Deal.external_id == deal)).one()
        assert row.is_closed and not row.is_won and row.stage == "Closed Lost"


def test_write_back_before_setup_says_what_to_run(portal):
    from connectors.crm_sync import sync_configured
    from mappings import MappingError

    with pytest.raises(MappingError) as caught:
        sync_configured(portal.org_id)
    assert "coachloop_meeting_key" in caught.value.message
    assert "`coachloop crm setup`" in caught.value.message
    assert coachloop_calls(portal.box) == []  # nothing was written


def test_a_buyer_without_an_email_is_matched_by_name_only_on_the_reps_own_companies(portal):
    """As with Salesforce: a guest the platform names without an e-mail links the deal only
    when one contact of that name is at a company where the rep owns an open deal."""
    from sqlmodel import update

    from core.db import session_scope
    from core.models import Meeting, Participant

    setup(portal.org_id)
    with session_scope() as session:
        meeting_id = session.exec(select(Meeting.id).where(
            Meeting.external_id == "demo-call-03")).one()
        [buyer] = session.exec(select(Participant).where(Participant.meeting_id == meeting_id,
                                                         Participant.role == "buyer")).all()
        name = buyer.name
        session.exec(update(Participant).where(Participant.id == buyer.id)
                     .values(email=None, role="unknown"))
    match = sync(portal.org_id, apply=False, meeting_ids=[meeting_id]).deals[meeting_id]
    assert match.record_id == portal.ids["deals"]["OPP-SM-006"], match.reason
    assert f"{name} (no e-mail on the call" in match.reason and match.contact_ids

    # A namesake at another company the same rep has an open deal with: no longer clear.
    box = portal.box
    owner = box.get("deals", match.record_id)["hubspot_owner_id"]
    other = box.create("companies", {"name": "Namesake Corp"})
    deal = box.create("deals", {"dealname": "Namesake - New", "pipeline": "default",
                                "dealstage": "qualifiedtobuy", "hubspot_owner_id": owner})
    box.associate("deals", deal, "companies", other)
    first, _, last = name.partition(" ")
    namesake = box.create("contacts", {"firstname": first, "lastname": last})
    box.associate("contacts", namesake, "companies", other)
    portal.clock.advance(seconds=2)  # a fresh second for the search limit
    unsure = sync(portal.org_id, apply=False, meeting_ids=[meeting_id]).deals[meeting_id]
    assert unsure.record_id is None and f"no single contact named {name}" in unsure.reason


def test_a_private_app_token_reports_the_portals_daily_calls(portal, tls):
    """HubSpot sends the daily counts only to private-app tokens; where they come, they
    feed the write-back quota governor as Salesforce's do."""
    from connectors.crm_sync import quota_note
    from connectors.hubspot.writer import HubSpotWriter
    from core.oauth import TokenSet

    made = HubSpotWriter(TokenSet(access_token=portal.box.issue_token(private_app=True)),
                         api_base=portal.server.url, verify=str(tls.ca_path))
    try:
        portal.box.set_daily_usage(700_000)
        made.check()
    finally:
        made.close()
    used, limit = made.api_usage
    assert limit == portal.box.daily_limit and used == portal.box.daily_used
    note = quota_note(made.api_usage, get_settings().hubspot)
    assert "(70% used); write-back slowed to once every 30 min" in note


def test_closed_deals_get_their_owners_skills_at_close_associated_with_the_deal(portal):
    from connectors.crm_sync import pull_outcomes

    setup(portal.org_id)
    made = writer(portal.org_id)
    try:
        pull_outcomes(portal.org_id, made)
    finally:
        made.close()
    report = sync(portal.org_id)
    assert not report.failed, report.failed
    at_close = [w for w in report.writes if (w.key or "").startswith("close:")]
    assert at_close
    box = portal.box
    rows = [r for r in box.records("coachloop_skill_score") if r["score_key"].startswith("close:")]
    assert len(rows) == len(at_close)
    for row in rows:
        [(deal_id, _)] = box.associations("coachloop_skill_score", row["id"], "deals")
        deal = box.get("deals", deal_id)
        assert deal["dealstage"] in ("closedwon", "closedlost")
        assert row["as_of"] == deal["closedate"][:10]
        assert row["hubspot_owner_id"] == deal["hubspot_owner_id"]
    portal.clock.advance(seconds=2)
    again = sync(portal.org_id)
    assert not [w for w in again.writes if (w.key or "").startswith("close:")]
