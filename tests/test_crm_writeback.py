"""Salesforce write-back against the Salesforce sandbox over HTTPS, through simple-salesforce.

Calls come from the demo's platform-transcript calls, ingested and scored for real; the
connection is made with the real OAuth flow; every assertion reads the sandbox back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlmodel import select

from core.errors import TransientError
from core.settings import get_settings
from sandbox.salesforce import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    MEDDIC_FIELDS,
    SalesforceSandbox,
    demo_seed,
)
from sandbox.server import serve
from tests.conftest import PLATFORM_CALLS, Clock, scored_demo_org, sign_in

DEMO = Path(__file__).resolve().parent.parent / "demo"
AS_OF = date(2026, 11, 20)


@dataclass
class Crm:
    box: SalesforceSandbox
    ids: dict
    org_id: int
    clock: Clock
    server: object


def make_crm(folder: Path, tls, monkeypatch, db_url: str | None = None) -> Crm:
    """Scored demo calls in a database, a seeded Salesforce sandbox, and a live connection."""
    from connectors.oauth_apps import connect_following_consent
    from core.db import migrate

    if db_url:
        monkeypatch.setenv("COACHLOOP_DATABASE_URL", db_url)
        get_settings.cache_clear()
        migrate(db_url)
    clock = Clock(datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc))
    box = SalesforceSandbox(clock=clock, query_page_size=50)
    ids = demo_seed(box, DEMO)
    server = serve(box.create_app(), tls)
    for key, value in {"SALESFORCE__CLIENT_ID": DEFAULT_CLIENT_ID,
                       "SALESFORCE__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                       "SALESFORCE__LOGIN_URL": server.url, "CA_BUNDLE": str(tls.ca_path),
                       "PUBLIC_URL": "https://coachloop.example"}.items():
        monkeypatch.setenv(f"COACHLOOP_{key}", value)
    get_settings.cache_clear()
    org_id = scored_demo_org(folder, AS_OF)
    connect_following_consent("salesforce", org_id, get_settings())
    return Crm(box, ids, org_id, clock, server)


@pytest.fixture
def crm(request, tls, tmp_path, monkeypatch):
    """SQLite by default; with the `database` fixture, SQLite and PostgreSQL."""
    request.getfixturevalue("database" if "database" in request.fixturenames
                            else "sqlite_database")
    made = make_crm(tmp_path / "calls", tls, monkeypatch)
    yield made
    made.server.stop()


def sync(org_id, *, apply=True, mapping=None, **kw):
    from connectors.crm_sync import sync as run
    from connectors.salesforce import writer_for_org
    from mappings import configured_mapping

    settings = get_settings()
    writer = writer_for_org(org_id, settings)
    try:
        return run(org_id, writer, mapping or configured_mapping("salesforce", settings), apply=apply,
                   public_url="https://coachloop.example", **kw)
    finally:
        writer.close()


def sync_retrying(org_id, attempts=30):
    """What the worker does: run again after a transient failure (no waiting in tests)."""
    for _ in range(attempts):
        try:
            return sync(org_id)
        except TransientError:
            continue
    raise AssertionError("write-back never got through the injected faults")


def state(box):
    """Everything write-back touches, as plain data (to compare runs)."""
    names = [n for n, _ in MEDDIC_FIELDS] + ["AI_" + n for n, _ in MEDDIC_FIELDS]
    opps = {o["Coachloop_Deal_Key__c"]: {n: o.get(n) for n in names}
            for o in box.records("Opportunity")}
    tasks = sorted((t["Coachloop_Meeting_Key__c"], t.get("WhatId"), t["Subject"], t["Status"],
                    t["Description"]) for t in box.records("Task"))
    scores = sorted((s["Score_Key__c"], s.get("Score__c"), s.get("N_Calls__c"), s["User__c"])
                    for s in box.records("Rep_Skill_Score__c"))
    return opps, tasks, scores


def test_write_back_fills_fields_logs_calls_and_upserts_skill_scores(crm, database):
    report = sync(crm.org_id)
    assert not report.failed, report.failed
    opps, tasks, scores = state(crm.box)
    # Every platform call is logged once; all but the one whose buyers are not in the CRM
    # are linked to the deal their buyers have a contact role on.
    assert len(tasks) == len(PLATFORM_CALLS)
    unlinked = [c for c in report.calls if report.deals[c.meeting_id].record_id is None]
    assert [c.key for c in unlinked] == ["files:demo-call-14"]
    assert "no Salesforce contact" in report.deals[unlinked[0].meeting_id].reason
    assert sum(1 for t in tasks if t[1]) == len(PLATFORM_CALLS) - 1
    assert crm.box.get("Task", crm.box.find("Task", Coachloop_Meeting_Key__c=
                                            "files:demo-call-04")[0]["Id"])["WhatId"] \
        == crm.ids["opportunities"]["OPP-BH-002"]
    # Review mode: nothing reaches a rep's field before a person approves it; our own AI
    # copies are written, and every rep-field value waits in the queue.
    assert all(not v for o in opps.values() for k, v in o.items() if not k.startswith("AI_"))
    assert any(v for o in opps.values() for k, v in o.items() if k.startswith("AI_"))
    from core.db import session_scope
    from core.models import CrmWrite, Meeting, MeetingDeal
    from core.review import decide, queue

    with session_scope() as session:
        pending = queue(session, crm.org_id)
    assert pending and all(p.quote and p.call_title and p.confidence for p in pending)
    assert {p.field for p in pending} <= {n for n, _ in MEDDIC_FIELDS}
    # Skill scores: one row per rep x skill x window, keyed deterministically.
    assert scores and all(key.endswith(f"d:{AS_OF.isoformat()}") for key, *_ in scores)
    assert len({k for k, *_ in scores}) == len(scores)
    with session_scope() as session:
        rows = session.exec(select(CrmWrite).where(CrmWrite.run_id == report.run_id)).all()
        assert {r.status for r in rows} >= {"written", "created", "skipped", "review"}
        field_writes = [r for r in rows if r.field and r.status == "written"]
        assert field_writes and all(r.evidence for r in field_writes)
        assert all(r.field.startswith("AI_") for r in field_writes)
        synced = session.exec(select(Meeting).where(Meeting.crm_synced_at.is_not(None))).all()
        assert len(synced) == len(PLATFORM_CALLS)
        assert any("contact role" in link.reason for link in session.exec(select(MeetingDeal)))
    # A re-run proposes nothing new while the queue waits.
    assert sync(crm.org_id, include_synced=True).failed == []
    with session_scope() as session:
        assert [p.id for p in queue(session, crm.org_id)] == [p.id for p in pending]
        decide(session, crm.org_id, None, "approve", by="morgan@acme.example")
    approved = sync(crm.org_id, include_synced=True)
    assert not approved.failed
    opps, tasks, scores = state(crm.box)
    for p in pending:
        record = crm.box.get("Opportunity", p.record_id)
        if p.field == "Identify_Pain__c":  # append: a dated line with the value
            assert p.proposed.splitlines()[-1] in record[p.field]
        else:
            assert record[p.field] == p.proposed
    with session_scope() as session:
        rows = session.exec(select(CrmWrite).where(CrmWrite.run_id == approved.run_id,
                                                   CrmWrite.status == "written")).all()
        assert {r.actor for r in rows if r.field and not r.field.startswith("AI_")} == \
            {"morgan@acme.example"}
        assert queue(session, crm.org_id) == []
    # Nothing is due any more; forcing a second run changes nothing in Salesforce.
    assert sync(crm.org_id).calls == []
    again = sync(crm.org_id, include_synced=True)
    assert not again.failed
    assert state(crm.box) == (opps, tasks, scores)
    assert all(d.status not in ("write", "review") for _, d in again.decisions)


def test_a_rejected_value_is_not_proposed_again_and_an_edited_one_is_written(crm):
    from core.db import session_scope
    from core.models import CrmWrite
    from core.review import decide, history, queue

    sync(crm.org_id)
    with session_scope() as session:
        pending = queue(session, crm.org_id)
        first, second = pending[0], pending[1]
        decide(session, crm.org_id, [first.id], "reject", by="rep@acme.example")
        decide(session, crm.org_id, [second.id], "edit", by="rep@acme.example",
               value="Edited by the rep")
    report = sync(crm.org_id, include_synced=True)
    assert not report.failed
    assert crm.box.get("Opportunity", first.record_id)[first.field] is None
    if second.field != "Identify_Pain__c":
        assert crm.box.get("Opportunity", second.record_id)[second.field] == "Edited by the rep"
    rejected = [d for rec, d in report.decisions
                if rec == first.record_id and d.field == first.field]
    assert rejected and all(d.status == "skip" and "rejected by rep@acme.example" in d.reason
                            for d in rejected)
    with session_scope() as session:
        # Not proposed again: the queue holds neither the rejected value nor a copy of it.
        assert first.id not in [p.id for p in queue(session, crm.org_id)]
        assert not [p for p in queue(session, crm.org_id)
                    if (p.record_id, p.field) == (first.record_id, first.field)]
        lines = history(session, crm.org_id, deal=first.record_id)
        assert any(h.status == "rejected" and h.actor == "rep@acme.example" for h in lines)
        assert {h.deal_name for h in lines} == {first.deal_name} and first.deal_name
        assert session.exec(select(CrmWrite).where(CrmWrite.status == "approved")).first()


def test_fill_empty_never_overwrites_what_a_rep_entered(crm):
    plan = sync(crm.org_id, apply=False)
    proposed = [(rec, d) for rec, d in plan.decisions
                if d.status == "review" and d.policy.value == "fill_empty"]
    assert proposed, "the demo calls should fill at least one empty MEDDIC field"
    record_id, decision = proposed[0]
    crm.box.update("Opportunity", record_id, {decision.field: "Rep's own words"})
    report = sync(crm.org_id)
    assert not report.failed
    assert crm.box.get("Opportunity", record_id)[decision.field] == "Rep's own words"
    assert crm.box.get("Opportunity", record_id)["AI_" + decision.field]  # ours went beside it
    skipped = [d for rec, d in report.decisions if rec == record_id and d.field == decision.field]
    assert skipped and all(d.status == "skip" and "never overwrites" in d.reason
                           for d in skipped)


def test_plan_writes_nothing(crm):
    before = state(crm.box)
    crm.box.requests.clear()
    plan = sync(crm.org_id, apply=False)
    assert plan.writes and not plan.results
    assert state(crm.box) == before
    assert not [k for k in crm.box.requests if k.startswith(("PATCH", "POST", "DELETE"))]


def test_injected_faults_are_retried_to_the_same_final_state(tmp_path, tls, monkeypatch):
    clean = make_crm(tmp_path / "a", tls, monkeypatch, f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert not sync(clean.org_id).failed
        expected = state(clean.box)
    finally:
        clean.server.stop()
    faulty = make_crm(tmp_path / "b", tls, monkeypatch, f"sqlite:///{tmp_path / 'b.db'}")
    try:
        faulty.box.set_faults(error_rate=0.3, seed=7)  # 503s and 500s on any API call
        faulty.box.inject_lock_errors(5)  # UNABLE_TO_LOCK_ROW on the next record writes
        report = sync_retrying(faulty.org_id)
        assert not report.failed
        assert sum(faulty.box.requests[k] for k in faulty.box.requests if "composite" in k) > 3
        faulty.box.set_faults()
        assert state(faulty.box) == expected
    finally:
        faulty.server.stop()


def test_daily_api_limit_backs_off_for_the_quota_window(crm):
    crm.box.set_api_usage(crm.box.daily_limit)
    with pytest.raises(TransientError) as caught:
        sync(crm.org_id)
    assert caught.value.retry_after >= 3600
    assert "limit" in caught.value.message.lower()


def test_expired_session_is_refreshed_once_even_with_two_writers(crm):
    from connectors.salesforce import writer_for_org

    writers = [writer_for_org(crm.org_id, get_settings()) for _ in range(2)]
    tokens_before = crm.box.requests["POST /services/oauth2/token"]
    crm.clock.advance(hours=3)  # past the sandbox org's 2 h session timeout
    errors = []

    def work(writer):
        try:
            writer.check()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert crm.box.requests["POST /services/oauth2/token"] == tokens_before + 1
    # One after the other: the second still holds the old token, gets a 401, and is handed
    # the token the first one refreshed instead of refreshing again.
    late = writer_for_org(crm.org_id, get_settings())
    crm.clock.advance(hours=3)
    writers[0].check()
    late.check()
    assert crm.box.requests["POST /services/oauth2/token"] == tokens_before + 2
    for writer in [*writers, late]:
        writer.close()


def test_mapping_that_does_not_fit_the_org_is_refused_before_any_write(crm, tmp_path):
    from mappings import MappingError, load_mapping

    bad = tmp_path / "bad.yaml"
    bad.write_text("crm: salesforce\nmethodology: meddic\nobject: Opportunity\nfields:\n"
                   "  - {from: metrics, to: Metric__c, policy: fill_empty}\n"
                   "  - {from: champion, to: CreatedDate, policy: overwrite}\n"
                   "  - {from: competition, to: Amount, policy: overwrite}\n"
                   "activity:\n  object: Task\n  external_id: Subject\n")
    crm.box.requests.clear()
    with pytest.raises(MappingError) as caught:
        sync(crm.org_id, mapping=load_mapping(bad))
    text = str(caught.value)
    assert f"{bad}:5" in text and "no field 'Metric__c'" in text
    assert f"{bad}:6" in text and "read-only" in text
    assert f"{bad}:7" in text and "currency" in text
    assert f"{bad}:10" in text and "not an External ID" in text
    assert not [k for k in crm.box.requests if k.startswith(("PATCH", "POST /services/data"))]


def test_activity_and_skill_fields_come_from_the_mapping_and_are_checked(crm, tmp_path):
    """The activity's and skill rows' fields are the mapping's templates, not code: a
    template may only name what we know, a field the object lacks is refused before any
    write (with its line), and a one-name template keeps its type."""
    from mappings import MappingError, load_mapping

    head = "crm: salesforce\nmethodology: meddic\nobject: Opportunity\n"
    typo = tmp_path / "typo.yaml"
    typo.write_text(head + "activity:\n  object: Task\n  external_id: Coachloop_Meeting_Key__c\n"
                    "  values:\n    Subject: 'Call: {titel}'\n")
    with pytest.raises(MappingError, match=rf"{typo}:8.*cannot name titel.*title"):
        load_mapping(typo)
    missing = tmp_path / "missing.yaml"
    missing.write_text(head + "activity:\n  object: Task\n  external_id: Coachloop_Meeting_Key__c"
                       "\n  link_field: WhatId\n  values:\n    Subjekt: '{title}'\n")
    with pytest.raises(MappingError) as caught:
        sync(crm.org_id, mapping=load_mapping(missing))
    assert caught.value.problems == (f"{missing}:9: Task has no field 'Subjekt' (or the "
                                     "integration user cannot see it)",)

    own = tmp_path / "own.yaml"
    own.write_text(head + "activity:\n  object: Task\n  external_id: Coachloop_Meeting_Key__c\n"
                   "  link_field: WhatId\n  values:\n    Subject: '[{meeting_id}] {title}'\n"
                   "    Status: Completed\n"
                   "skill_scores:\n  object: Rep_Skill_Score__c\n  external_id: Score_Key__c\n"
                   "  link_field: User__c\n  values:\n    Score__c: '{score}'\n"
                   "    Skill__c: 'skill {skill}'\n")
    report = sync(crm.org_id, mapping=load_mapping(own))
    assert not report.failed
    tasks = [t for t in crm.box.records("Task") if t.get("Coachloop_Meeting_Key__c")]
    assert tasks and all(t["Subject"].startswith("[") and t["Status"] == "Completed"
                         and not t.get("Description") for t in tasks)
    assert any(t.get("WhatId") for t in tasks)  # calls with a deal are logged on it
    rows = crm.box.records("Rep_Skill_Score__c")
    assert rows and all(r["Skill__c"].startswith("skill ") and r["User__c"] for r in rows)
    sent = [w.values["Score__c"] for w in report.writes if w.sobject == "Rep_Skill_Score__c"]
    assert any(isinstance(v, float) for v in sent)  # a number is sent as one, not as "71.2"
    assert all(v is None or isinstance(v, float) for v in sent)


def test_an_auto_number_name_is_not_sent(tls, tmp_path, monkeypatch, sqlite_database):
    """Many orgs define a custom object's Name as an Auto Number: read-only, so sending it
    fails every row. Describe says it is not createable, and it is left out."""
    made = make_crm(tmp_path / "calls", tls, monkeypatch)
    try:
        made.box.use_auto_number_name("Rep_Skill_Score__c", "RSS-{0000}")
        report = sync(made.org_id)
        assert not report.failed, report.failed
        rows = made.box.records("Rep_Skill_Score__c")
        assert rows and sorted(r["Name"] for r in rows)[0] == "RSS-0001"
        skill_writes = [w for w in report.writes if w.sobject == "Rep_Skill_Score__c"]
        assert skill_writes and all("Name" not in w.values for w in skill_writes)
    finally:
        made.server.stop()


def test_values_that_are_not_picklist_values_are_not_written(crm, tmp_path):
    from mappings import load_mapping

    custom = tmp_path / "picklist.yaml"
    custom.write_text("crm: salesforce\nmethodology: meddic\nobject: Opportunity\nfields:\n"
                      "  - {from: economic_buyer, to: MEDDIC_Confidence__c, policy: overwrite,"
                      " min_confidence: 0.1}\n")
    report = sync(crm.org_id, mapping=load_mapping(custom))
    found = [d for _, d in report.decisions if d.source == "economic_buyer"
             and not d.reason.startswith(("not found", "ambiguous"))]
    assert found and all(d.status == "skip" and "picklist" in d.reason for d in found)
    assert all(o.get("MEDDIC_Confidence__c") is None for o in crm.box.records("Opportunity"))


def test_an_ambiguous_deal_is_left_unlinked_with_the_reason(crm):
    account = crm.box.get("Opportunity", crm.ids["opportunities"]["OPP-BH-002"])["AccountId"]
    second = crm.box.create("Opportunity", {"Name": "Bluehill Health - Expansion",
                                            "AccountId": account, "StageName": "Discovery",
                                            "CloseDate": "2027-03-01"})
    crm.box.create("OpportunityContactRole", {"OpportunityId": second, "ContactId":
                                              crm.ids["contacts"]["mark.evans@bluehillhealth.example"]})
    crm.box.create("OpportunityContactRole", {"OpportunityId": second, "ContactId":
                                              crm.ids["contacts"]["rachel.adams@bluehillhealth.example"]})
    report = sync(crm.org_id)
    call = next(c for c in report.calls if c.key == "files:demo-call-04")
    match = report.deals[call.meeting_id]
    assert match.record_id is None and "ambiguous" in match.reason
    assert "Bluehill Health - Expansion" in match.reason
    assert crm.box.get("Opportunity", second).get("Metrics__c") is None


def test_a_buyer_without_an_email_is_matched_by_name_only_on_the_reps_own_accounts(crm):
    """Zoom hides an uninvited guest's e-mail. Such a buyer is looked up by name among the
    contacts of accounts where the call's rep owns an open opportunity: one match links the
    deal (and says how); two contacts of that name there, or none, leave it unlinked."""
    from sqlmodel import update

    from core.db import session_scope
    from core.models import Meeting, Participant

    with session_scope() as session:
        meeting_id = session.exec(select(Meeting.id).where(
            Meeting.external_id == "demo-call-03")).one()
        buyers = session.exec(select(Participant).where(Participant.meeting_id == meeting_id,
                                                        Participant.role == "buyer")).all()
        assert len(buyers) == 1
        name = buyers[0].name
        session.exec(update(Participant).where(Participant.id == buyers[0].id)
                     .values(email=None, role="unknown"))
    [call] = sync(crm.org_id, apply=False, meeting_ids=[meeting_id]).calls
    assert call.buyer_emails == () and call.unnamed_buyers == (name,)
    match = sync(crm.org_id, apply=False, meeting_ids=[meeting_id]).deals[meeting_id]
    assert match.record_id == crm.ids["opportunities"]["OPP-SM-006"], match.reason
    assert f"{name} (no e-mail on the call" in match.reason

    # A namesake on another account the same rep works: who it was is no longer clear.
    owner = crm.box.get("Opportunity", match.record_id)["OwnerId"]
    other = crm.box.create("Account", {"Name": "Namesake Corp"})
    crm.box.create("Opportunity", {"Name": "Namesake - New", "AccountId": other,
                                   "StageName": "Discovery", "CloseDate": "2027-03-01",
                                   "OwnerId": owner})
    first, _, last = name.partition(" ")
    crm.box.create("Contact", {"FirstName": first, "LastName": last, "AccountId": other})
    unsure = sync(crm.org_id, apply=False, meeting_ids=[meeting_id]).deals[meeting_id]
    assert unsure.record_id is None and f"no single contact named {name}" in unsure.reason


def test_outcomes_are_pulled_incrementally(crm):
    from connectors.crm_sync import pull_outcomes
    from connectors.salesforce import writer_for_org
    from core.db import session_scope
    from core.models import Deal

    writer = writer_for_org(crm.org_id, get_settings())
    try:
        assert pull_outcomes(crm.org_id, writer) == len(crm.ids["opportunities"])
        crm.clock.advance(hours=1)
        crm.box.update("Opportunity", crm.ids["opportunities"]["OPP-BH-002"],
                       {"StageName": "Closed Won"})
        pull_outcomes(crm.org_id, writer)
        assert pull_outcomes(crm.org_id, writer) == 1  # only the overlap with the last pull
    finally:
        writer.close()
    with session_scope() as session:
        deals = {d.external_id: d for d in session.exec(select(Deal).where(Deal.crm ==
                                                                           "salesforce"))}
    won = deals[crm.ids["opportunities"]["OPP-BH-002"]]
    assert won.is_closed and won.is_won and won.stage == "Closed Won" and won.amount == 96000
    assert won.owner_id is not None and "mark.evans@bluehillhealth.example" in won.contact_emails


def test_cli_plans_applies_and_pulls(crm):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    env = {"COLUMNS": "220"}
    plan = runner.invoke(app, ["crm", "plan"], env=env)
    assert plan.exit_code == 0, plan.output
    assert "would be written" in plan.output and "fill_empty" in plan.output
    assert "not linked" in plan.output and not crm.box.records("Task")
    assert "Discovery call" in plan.output  # call titles, not only ids
    applied = runner.invoke(app, ["crm", "apply"], env=env)
    assert applied.exit_code == 0, applied.output
    assert "0 failed" in applied.output and "wait for approval" in applied.output
    assert len(crm.box.records("Task")) == len(PLATFORM_CALLS)
    assert "nothing to write back" in runner.invoke(app, ["crm", "apply"], env=env).output
    listed = runner.invoke(app, ["crm", "review"], env=env)
    assert listed.exit_code == 0 and "waiting for approval" in listed.output, listed.output
    from core.db import session_scope
    from core.review import queue
    with session_scope() as session:
        first = queue(session, crm.org_id)[0]
    assert first.field in listed.output
    approved = runner.invoke(app, ["crm", "review", "approve", str(first.id), "--by", "ana"],
                             env=env)
    assert approved.exit_code == 0 and "approved 1 value(s) as ana" in approved.output, \
        approved.output
    if first.field != "Identify_Pain__c":
        assert crm.box.get("Opportunity", first.record_id)[first.field] == first.proposed
    again = runner.invoke(app, ["crm", "review", "approve", str(first.id)], env=env)
    assert again.exit_code == 1 and "no pending proposal" in again.output
    hist = runner.invoke(app, ["crm", "history", "--deal", first.record_id], env=env)
    assert hist.exit_code == 0 and "approved" in hist.output and "ana" in hist.output
    assert first.deal_name.split()[0] in hist.output  # the deal's name, not only its id
    pulled = runner.invoke(app, ["crm", "pull"], env=env)
    assert pulled.exit_code == 0 and f"pulled {len(crm.ids['opportunities'])} deal" in \
        pulled.output
    crm.box.revoke_all_tokens()
    crm.clock.advance(hours=3)
    broken = runner.invoke(app, ["crm", "apply", "--all"], env=env)
    assert broken.exit_code == 1 and "reconnect" in broken.output
    assert "Traceback" not in broken.output


def test_review_queue_over_the_json_api(crm):
    from fastapi.testclient import TestClient

    from api import create_app

    sync(crm.org_id)
    client = TestClient(create_app())
    sign_in(client, "ana@acme-analytics.example", role="admin")
    pending = client.get("/crm/review").json()
    assert isinstance(pending, list), pending
    assert pending and {"id", "proposed", "current", "quote", "quote_at", "call_title",
                        "confidence", "deal_name"} <= set(pending[0])
    one = pending[0]
    bad = client.post(f"/crm/review/{one['id']}/edit")
    assert bad.status_code == 422 and "value" in bad.json()["error"]["message"]
    edited = client.post(f"/crm/review/{one['id']}/edit", params={"value": "Dana Ruiz, COO"})
    assert edited.status_code == 200 and edited.json()["final"] == "Dana Ruiz, COO"
    assert edited.json()["write_back"] == "Written to the CRM."  # at once, not next run
    if one["field"] != "Identify_Pain__c":
        assert crm.box.get("Opportunity", one["record_id"])[one["field"]] == "Dana Ruiz, COO"
    assert client.post(f"/crm/review/{one['id']}/approve").status_code == 404  # not pending
    rest = client.post("/crm/review", json={"action": "reject",
                                            "deal": pending[-1]["record_id"]})
    assert rest.status_code == 200
    assert all(p["status"] == "rejected" for p in rest.json()["decided"])
    # Everything at once only when asked for in so many words.
    assert client.post("/crm/review", json={"action": "approve"}).status_code == 422
    # The audit names the signed-in reviewer; a `by` in the request cannot change it.
    history = client.get("/crm/history", params={"deal": one["record_id"]}).json()
    assert any(h["status"] == "approved" and h["actor"] == "ana@acme-analytics.example" and
               h["after"] == "Dana Ruiz, COO" for h in history)
    written = sync(crm.org_id, include_synced=True)
    assert not written.failed
    if one["field"] != "Identify_Pain__c":
        assert crm.box.get("Opportunity", one["record_id"])[one["field"]] == "Dana Ruiz, COO"


def test_people_come_from_the_crms_user_list_too(crm):
    """`crm pull` adds the CRM's active users on the org's domains (as reps, managers linked),
    so single sign-on can match them; the roster's roles stay; other domains stay out."""
    from typer.testing import CliRunner

    from cli import app
    from core.db import session_scope
    from core.models import User

    priya = crm.ids["users"]["priya.nair@acme-analytics.example"]
    crm.box.create("User", {"Username": "new.rep@acme-analytics.example", "FirstName": "Nia",
                            "LastName": "Okafor", "Email": "new.rep@acme-analytics.example",
                            "ManagerId": priya})
    crm.box.create("User", {"Username": "consultant@partner.example", "FirstName": "Pat",
                            "LastName": "Lee", "Email": "consultant@partner.example"})
    crm.box.create("User", {"Username": "gone@acme-analytics.example", "FirstName": "Old",
                            "LastName": "Hand", "Email": "gone@acme-analytics.example",
                            "IsActive": False})
    result = CliRunner().invoke(app, ["crm", "pull"])
    assert result.exit_code == 0 and "1 new person(s) from its user list" in result.output, \
        result.output
    with session_scope() as session:
        people = {u.email: u for u in session.exec(select(User))}
        assert people["new.rep@acme-analytics.example"].role == "rep"
        assert people["new.rep@acme-analytics.example"].manager_id == \
            people["priya.nair@acme-analytics.example"].id
        assert people["priya.nair@acme-analytics.example"].role == "manager"
        assert "consultant@partner.example" not in people
        assert "gone@acme-analytics.example" not in people
    again = CliRunner().invoke(app, ["crm", "pull"])
    assert "0 new person(s)" in again.output


def test_the_daily_api_quota_governor_slows_then_stops_write_back(crm, monkeypatch):
    """Salesforce's daily API calls are every RevOps team's scarce resource: past half of
    them write-back runs at most every 30 minutes, past 80 % it waits for the next day."""
    from datetime import timedelta

    import connectors.crm_sync as crm_sync
    from connectors.crm_sync import QuotaPaused, api_usage, sync_configured
    from core.models import utcnow

    # Our own clock, mid-morning UTC, so that no step of the test crosses a day boundary.
    clock = [utcnow().replace(hour=9, minute=0, second=0, microsecond=0)]
    monkeypatch.setattr(crm_sync, "utcnow", lambda: clock[0])
    limit = crm.box.daily_limit
    crm.box.set_api_usage(int(limit * 0.6))
    first = sync_configured(crm.org_id)  # nothing known yet: it runs, and learns the usage
    assert first.writes and not first.failed
    used, seen_limit, _ = api_usage(writer_connection(crm))
    assert seen_limit == limit and used >= int(limit * 0.6)
    calls_before = crm.box.api_usage
    with pytest.raises(QuotaPaused, match="slowed.*next run in"):
        sync_configured(crm.org_id, include_synced=True)
    assert crm.box.api_usage == calls_before  # a paused run costs no API call
    clock[0] += timedelta(minutes=31)
    assert not sync_configured(crm.org_id, include_synced=True).failed  # 30 minutes on
    clock[0] += timedelta(minutes=31)
    crm.box.set_api_usage(int(limit * 0.85))
    sync_configured(crm.org_id, include_synced=True)  # this run sees 85 %
    clock[0] += timedelta(hours=2)  # past the slow interval: still the same day, paused
    with pytest.raises(QuotaPaused, match="paused.*resumes tomorrow") as paused:
        sync_configured(crm.org_id, include_synced=True)
    assert paused.value.retry_after > 0


def writer_connection(crm) -> int:
    from core.connections import active_connection_id

    return active_connection_id(crm.org_id, "salesforce")


def test_closed_deals_get_their_owners_skills_at_close_on_the_opportunity(crm):
    """A closed Opportunity gets its owner's skill estimates as of its close date, linked to
    it, once; the README's report recipe reads them back with SOQL."""
    from connectors.crm_sync import pull_outcomes
    from connectors.salesforce import writer_for_org

    writer = writer_for_org(crm.org_id, get_settings())
    try:
        pull_outcomes(crm.org_id, writer)
        report = sync(crm.org_id)
        assert not report.failed, report.failed
        at_close = [w for w in report.writes if (w.key or "").startswith("close:")]
        assert at_close
        opps = {o["Id"]: o for o in crm.box.records("Opportunity")}
        rows = [r for r in crm.box.records("Rep_Skill_Score__c") if r.get("Opportunity__c")]
        assert len(rows) == len(at_close)
        for row in rows:
            opp = opps[row["Opportunity__c"]]
            assert opp["IsClosed"] and row["As_Of__c"] == opp["CloseDate"]
            assert row["User__c"] == opp["OwnerId"]
        again = sync(crm.org_id)
        assert not [w for w in again.writes if (w.key or "").startswith("close:")]
        # The report recipe: skills at close beside each deal's outcome.
        recipe = writer.sf.query_all(
            "SELECT Skill__c, Score__c, As_Of__c, Opportunity__r.IsWon, Opportunity__r.Amount "
            "FROM Rep_Skill_Score__c WHERE Opportunity__c != null")["records"]
    finally:
        writer.close()
    assert len(recipe) == len(rows)
    won = {o["Id"] for o in opps.values() if o.get("IsWon")}
    assert sum(1 for r in recipe if r["Opportunity__r"]["IsWon"]) == sum(
        1 for r in rows if r["Opportunity__c"] in won)
