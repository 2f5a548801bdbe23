"""End to end, as in production: the Zoom sandbox fires signed webhooks at `uvicorn api:app`,
real Celery workers on Redis (PostgreSQL) fetch the transcript or transcribe the audio, score
the call and write back to the Salesforce sandbox, read back through simple-salesforce."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet
from simple_salesforce import Salesforce
from sqlmodel import Session, select

from core.db import engine_for, session_scope
from core.models import CallScore, Meeting, Transcript, WebhookEvent
from core.settings import get_settings
from tests.conftest import DEMO_CALLS, ROOT
from tests.test_worker_integration import (_wait_for, broker, postgres, start_worker,  # noqa: F401
                                           stop_worker)

pytestmark = pytest.mark.integration
CALLS = ("demo-call-01", "demo-call-03", "demo-call-04")  # dual-channel audio; two with VTT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def loop(postgres, broker, tmp_path, monkeypatch):  # noqa: F811
    """Sandboxes, an org connected to both with OAuth, `uvicorn api:app` over HTTPS on a
    broker; yields (sandboxes, env for workers, webhook URL)."""
    from connectors.files import load_team
    from connectors.oauth_apps import connect_following_consent
    from core.ingest import apply_team, ensure_org
    from sandbox.run import start_sandboxes

    boxes = start_sandboxes(tmp_path / "sandbox")
    url, prefix = broker
    env = {**boxes.settings(), "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key()
                                                                        .decode()]),
           "COACHLOOP_PUBLIC_URL": "https://coachloop.example"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    team = load_team(DEMO_CALLS.parent)
    with session_scope() as session:
        org = ensure_org(session, team.org.name, list(team.org.domains))
        apply_team(session, org, team.members())
        org_id = org.id
    for provider in ("zoom", "salesforce"):
        connect_following_consent(provider, org_id, get_settings())
    port = _free_port()
    api_env = {**os.environ, **env, "COACHLOOP_DATABASE_URL": postgres,
               "COACHLOOP_BROKER_URL": url, "PYTHONPATH": str(ROOT),
               "COACHLOOP_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": prefix})}
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api:app", "--host", "127.0.0.1", "--port", str(port),
         "--ssl-certfile", str(boxes.tls.cert_path), "--ssl-keyfile", str(boxes.tls.key_path),
         "--log-level", "warning"], cwd=ROOT, env=api_env, stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "api.log", "w"), start_new_session=True)
    webhook_url = f"https://127.0.0.1:{port}/webhooks/zoom"
    deadline = time.monotonic() + 30
    while not (_listening(port) and boxes.zoom.validate_endpoint(
            webhook_url, boxes.webhook_secret, verify=str(boxes.tls.ca_path))):
        assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
        time.sleep(0.3)
    yield boxes, env, webhook_url
    stop_worker(api)
    boxes.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _deliver(boxes, webhook_url, calls=CALLS, times=3):
    for call in calls:
        answers = boxes.zoom.deliver("recording.completed", boxes.zoom_meetings[call], webhook_url,
                                     boxes.webhook_secret, times=times,
                                     verify=str(boxes.tls.ca_path))
        assert [a.json()["status"] for a in answers] == ["accepted"] + ["duplicate"] * (times - 1)


def _written_back(postgres, n):
    def check() -> bool:
        with Session(engine_for(postgres)) as session:
            meetings = session.exec(select(Meeting)).all()
            return len(meetings) == n and all(m.crm_synced_at for m in meetings)
    return check


def _salesforce(boxes) -> Salesforce:
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = str(boxes.tls.ca_path)
    return Salesforce(instance_url=boxes.salesforce_server.url, session=session, version="60.0",
                      session_id=boxes.salesforce.issue_token())


def test_webhook_to_salesforce_through_real_workers(loop, postgres, broker, tmp_path):  # noqa: F811
    boxes, env, webhook_url = loop
    log_path = tmp_path / "worker.log"
    worker = start_worker(postgres, broker, log_path, extra_env=env)
    try:
        _deliver(boxes, webhook_url)  # each event three times: at-least-once delivery
        _wait_for(_written_back(postgres, len(CALLS)), 240, log_path)
    finally:
        stop_worker(worker)
    with Session(engine_for(postgres)) as session:
        assert {t.source for t in session.exec(select(Transcript))} == {"asr", "platform"}
        assert len(session.exec(select(CallScore)).all()) == 2 * len(CALLS)
        events = session.exec(select(WebhookEvent)).all()
        assert len(events) == len(CALLS) and all(e.deliveries == 3 and e.processed_at
                                                 and e.error is None for e in events)
    sf = _salesforce(boxes)
    tasks = sf.query_all("SELECT Id, Subject, WhatId, Coachloop_Meeting_Key__c FROM Task")
    assert tasks["totalSize"] == len(CALLS)
    assert all(t["WhatId"] for t in tasks["records"])  # each on its Opportunity
    opps = sf.query_all("SELECT Id, Metrics__c, Economic_Buyer__c, AI_Metrics__c, "
                        "AI_Economic_Buyer__c, AI_Competition__c, Coachloop_Deal_Key__c FROM "
                        "Opportunity WHERE Coachloop_Deal_Key__c IN "
                        "('OPP-NW-001', 'OPP-BH-002', 'OPP-SM-006')")["records"]
    # Review mode: the reps' fields wait for approval; our AI copies are written.
    assert not any(o["Metrics__c"] or o["Economic_Buyer__c"] for o in opps)
    assert any(o["AI_Metrics__c"] or o["AI_Economic_Buyer__c"] or o["AI_Competition__c"]
               for o in opps)
    scores = sf.query_all("SELECT Score_Key__c, Skill__c, Score__c, User__c FROM "
                          "Rep_Skill_Score__c")["records"]
    assert scores and len({s["Score_Key__c"] for s in scores}) == len(scores)
    assert {s["User__c"] for s in scores} <= set(boxes.salesforce_ids["users"].values())


def test_killed_worker_and_flaky_salesforce_still_write_exactly_once(
        loop, postgres, broker, tmp_path):  # noqa: F811
    """SIGKILL the worker while it transcribes; Salesforce fails a third of its calls and
    locks rows; the new worker finishes with one meeting, one Task, one set of fields."""
    boxes, env, webhook_url = loop
    log_path = tmp_path / "worker.log"
    fast = {"visibility_timeout": 5, "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1}
    first = start_worker(postgres, broker, log_path, extra_env=env, **fast)
    try:
        _deliver(boxes, webhook_url, calls=("demo-call-01",), times=2)
        _wait_for(lambda: "Task coachloop.transcribe[" in log_path.read_text(), 60, log_path)
        time.sleep(1.0)  # inside the ASR now
        stop_worker(first, signal.SIGKILL)
        with Session(engine_for(postgres)) as session:
            assert session.exec(select(Meeting.stage)).one() == "ingested", "killed mid-task"
    finally:
        stop_worker(first, signal.SIGKILL)
    boxes.salesforce.set_faults(error_rate=0.3, seed=3)
    boxes.salesforce.inject_lock_errors(3)
    second = start_worker(postgres, broker, log_path, extra_env=env, **fast)
    try:
        _wait_for(_written_back(postgres, 1), 240, log_path)
    finally:
        stop_worker(second)
    boxes.salesforce.set_faults()
    # Fault-free, the write-back takes 3 write calls; the locked rows were written again.
    writes = sum(n for k, n in boxes.salesforce.requests.items() if k.startswith("PATCH"))
    assert writes > 3
    sf = _salesforce(boxes)
    tasks = sf.query_all("SELECT Id, WhatId FROM Task")["records"]
    assert len(tasks) == 1 and tasks[0]["WhatId"] == boxes.salesforce_ids["opportunities"][
        "OPP-NW-001"]
    opp = sf.Opportunity.get(boxes.salesforce_ids["opportunities"]["OPP-NW-001"])
    assert opp["Economic_Buyer__c"] is None  # a rep's field waits for approval
    from core.models import CrmProposal
    with Session(engine_for(postgres)) as session:
        proposals = session.exec(select(CrmProposal).where(
            CrmProposal.record_id == opp["Id"])).all()
    assert proposals and all(p.status == "pending" for p in proposals)
    # Exactly once, though the worker was killed and Salesforce was flaky.
    assert len({(p.record_id, p.field) for p in proposals}) == len(proposals)
    with Session(engine_for(postgres)) as session:
        assert len(session.exec(select(Transcript)).all()) == 1
        assert len(session.exec(select(CallScore)).all()) == 2
        assert session.exec(select(Meeting)).one().crm_error is None


def test_a_backfill_through_real_workers_writes_back_in_batches(  # noqa: F811
        loop, postgres, broker, tmp_path):  # noqa: F811
    """200 transcript-only calls scored by a real worker, a backfill longer than the
    2-second debounce: the refresh that comes due while calls are still in flight waits for
    them, so there is one skills refresh and one write-back, and ⌈200/200⌉ = 1 sObject
    Collections call per object (Opportunity, Task), not one per call or per window."""
    import re
    import shutil
    from datetime import datetime, timedelta, timezone

    import yaml

    from connectors.files import FilesSource
    from core.ingest import current_org, ingest_record
    from core.pipeline import transcribe_meeting
    from tests.test_worker_integration import celery_client

    boxes, env, _ = loop
    folder = tmp_path / "backfill"
    folder.mkdir()
    sources = [m for m in sorted(DEMO_CALLS.glob("*.yaml")) if "transcript:" in m.read_text()]
    start = datetime(2026, 9, 1, 15, tzinfo=timezone.utc)
    for i in range(200):
        original = yaml.safe_load(sources[i % len(sources)].read_text())
        transcript = f"call-{i:03d}{os.path.splitext(original['transcript'])[1]}"
        shutil.copy(DEMO_CALLS / original["transcript"], folder / transcript)
        (folder / f"call-{i:03d}.yaml").write_text(yaml.safe_dump({
            "external_id": f"backfill-{i:03d}", "title": f"{original['title']} #{i}",
            "started_at": (start + timedelta(hours=6 * i)).isoformat(),
            "transcript": transcript, "participants": original["participants"]}))
    with session_scope() as session:
        org = current_org(session)
        for record in FilesSource(folder).list_meetings():
            ingest_record(session, org, record)
        meeting_ids = list(session.exec(select(Meeting.id)))
    for meeting_id in meeting_ids:  # platform transcripts: no ASR to wait for
        transcribe_meeting(meeting_id)
    log_path = tmp_path / "worker.log"
    worker = start_worker(postgres, broker, log_path,
                          extra_env={**env, "COACHLOOP_REFRESH_DEBOUNCE_S": "2"})
    try:
        client = celery_client(broker)
        # The first call is scored and its refresh comes due while the other 199 are still
        # waiting to be scored (as when transcription feeds scoring slowly): it must wait.
        client.send_task("coachloop.score", args=[meeting_ids[0]], queue="default")
        _wait_for(lambda: re.search(r"coachloop\.skills\[\S+\] succeeded in \S+: 0\b",
                                    log_path.read_text()), 60, log_path)
        for meeting_id in meeting_ids[1:]:
            client.send_task("coachloop.score", args=[meeting_id], queue="default")
        _wait_for(_written_back(postgres, len(meeting_ids)), 300, log_path)
        time.sleep(3)
    finally:
        stop_worker(worker)
    log = log_path.read_text()
    assert len(re.findall(r"Task coachloop\.score\[\S+\] succeeded", log)) == 200
    refreshes = re.findall(r"Task coachloop\.skills\[\S+\] succeeded in \S+: (\d+)", log)
    assert len([r for r in refreshes if r != "0"]) == 1, log[-3000:]
    assert len(re.findall(r"Task coachloop\.crm_sync\[\S+\] succeeded", log)) == 1
    writes = boxes.salesforce.collection_writes
    assert writes["Task"] == 1 and writes["Opportunity"] <= 1, dict(writes)
    tasks = _salesforce(boxes).query_all("SELECT Id FROM Task")["totalSize"]
    assert tasks == 200
