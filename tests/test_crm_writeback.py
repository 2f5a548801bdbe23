"""Salesforce write-back against the Salesforce sandbox over HTTPS, through simple-salesforce.

Calls come from the demo's platform-transcript calls, ingested and scored for real; the
connection is made with the real OAuth flow; every assertion reads the sandbox back.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import select

from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder, run_pending
from core.settings import get_settings
from sandbox.salesforce import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SalesforceSandbox,
                                demo_seed)
from sandbox.server import serve

DEMO = Path(__file__).resolve().parent.parent / "demo"
AS_OF = date(2026, 11, 20)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def crm(request, tls, tmp_path, monkeypatch):
    """Scored demo calls in a fresh database, a seeded Salesforce sandbox, and a connection.

    Yields (sandbox, ids seeded, org id, clock). Uses the `database` fixture when a test asks
    for it (SQLite and PostgreSQL), else SQLite.
    """
    fixture = "database" if "database" in request.fixturenames else "sqlite_database"
    request.getfixturevalue(fixture)
    clock = Clock()
    box = SalesforceSandbox(clock=clock, query_page_size=50)
    ids = demo_seed(box, DEMO)
    running = serve(box.create_app(), tls)
    for key, value in {"SALESFORCE__CLIENT_ID": DEFAULT_CLIENT_ID,
                       "SALESFORCE__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                       "SALESFORCE__LOGIN_URL": running.url, "CA_BUNDLE": str(tls.ca_path),
                       "PUBLIC_URL": "https://coachloop.example"}.items():
        monkeypatch.setenv(f"COACHLOOP_{key}", value)
    get_settings.cache_clear()
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    run_pending()
    from connectors.oauth_apps import connect_following_consent
    from core.db import session_scope
    from core.ingest import current_org
    from core.pipeline import refresh_skills

    with session_scope() as session:
        org_id = current_org(session).id
    refresh_skills(org_id, AS_OF)
    connect_following_consent("salesforce", org_id, get_settings())
    yield box, ids, org_id, clock
    running.stop()


def writer_and_mapping(org_id):
    from connectors.salesforce import mapping_from_settings, writer_for_org

    settings = get_settings()
    return writer_for_org(org_id, settings), mapping_from_settings(settings)


def sync(org_id, *, apply=True, **kw):
    from connectors.crm_sync import sync as run

    writer, mapping = writer_and_mapping(org_id)
    try:
        return run(org_id, writer, mapping, apply=apply, public_url="https://coachloop.example",
                   **kw)
    finally:
        writer.close()


def state(box):
    """Everything write-back touches, as plain data (to compare runs)."""
    from sandbox.salesforce import MEDDIC_FIELDS

    names = [n for n, _ in MEDDIC_FIELDS] + ["AI_" + n for n, _ in MEDDIC_FIELDS]
    opps = {o["Coachloop_Deal_Key__c"]: {n: o.get(n) for n in names}
            for o in box.records("Opportunity")}
    tasks = sorted((t["Coachloop_Meeting_Key__c"], t.get("WhatId"), t["Subject"], t["Status"])
                   for t in box.records("Task"))
    scores = sorted((s["Score_Key__c"], s.get("Score__c"), s.get("N_Calls__c"))
                    for s in box.records("Rep_Skill_Score__c"))
    return opps, tasks, scores


def test_write_back_fills_fields_logs_calls_and_upserts_skill_scores(crm, database):
    box, ids, org_id, _ = crm
    report = sync(org_id)
    assert not report.failed, report.failed
    opps, tasks, scores = state(box)
    # Every platform call is logged once, on the deal its buyers have a contact role on.
    assert len(tasks) == len(PLATFORM_CALLS)
    linked = [t for t in tasks if t[1]]
    assert len(linked) >= len(PLATFORM_CALLS) - 1
    assert all(t[3] == "Completed" for t in tasks)
    # Some MEDDIC field was found and written, with the AI copy beside it.
    written = {k: v for k, v in opps.items() if any(v[n] for n in v)}
    assert written, opps
    for fields in written.values():
        for name, value in fields.items():
            if not name.startswith("AI_") and value and name != "Identify_Pain__c":
                assert fields["AI_" + name] == value  # filled from empty: same as the copy
    # Skill scores: one row per rep x skill x window, keyed deterministically.
    assert scores and all(key.endswith(f"d:{AS_OF.isoformat()}") for key, *_ in scores)
    assert len({k for k, *_ in scores}) == len(scores)
    # The audit trail has every decision, with evidence for the writes.
    from core.db import session_scope
    from core.models import CrmWrite, Meeting

    with session_scope() as session:
        rows = session.exec(select(CrmWrite).where(CrmWrite.run_id == report.run_id)).all()
        assert {r.status for r in rows} >= {"written", "created", "skipped"}
        field_writes = [r for r in rows if r.field and r.status == "written"]
        assert field_writes and all(r.evidence for r in field_writes)
        assert all(r.before in (None, "") for r in field_writes if r.policy == "fill_empty")
        synced = session.exec(select(Meeting).where(Meeting.crm_synced_at.is_not(None))).all()
        assert len(synced) == len(PLATFORM_CALLS)
    # Nothing is due any more; forcing a second run changes nothing in Salesforce.
    assert sync(org_id).calls == []
    again = sync(org_id, include_synced=True)
    assert not again.failed
    assert state(box) == (opps, tasks, scores)
    assert all(d.status != "write" for _, d in again.decisions if d.policy.value != "append")


def test_fill_empty_never_overwrites_what_a_rep_entered(crm):
    box, ids, org_id, _ = crm
    plan = sync(org_id, apply=False)
    proposed = [(rec, d) for rec, d in plan.decisions
                if d.status == "write" and d.policy.value == "fill_empty"]
    assert proposed, "the demo calls should fill at least one empty MEDDIC field"
    record_id, decision = proposed[0]
    box.update("Opportunity", record_id, {decision.field: "Rep's own words"})
    report = sync(org_id)
    assert not report.failed
    assert box.get("Opportunity", record_id)[decision.field] == "Rep's own words"
    assert box.get("Opportunity", record_id)["AI_" + decision.field]  # our value went beside it
    skipped = [d for rec, d in report.decisions if rec == record_id and d.field == decision.field]
    assert skipped and all(d.status == "skip" and "never overwrites" in d.reason
                           for d in skipped)


def test_plan_writes_nothing(crm):
    box, ids, org_id, _ = crm
    before = state(box)
    box.requests.clear()
    plan = sync(org_id, apply=False)
    assert plan.writes and not plan.results
    assert state(box) == before
    assert not [k for k in box.requests if k.startswith(("PATCH", "POST", "DELETE"))]
