"""CRM write calls per object for N scored meetings, through the workers, against the
batching limit, in one run.

    python bench/crm.py [--meetings 100 1000] [--debounce 60] [--crm salesforce hubspot]

Builds N scored calls from the demo's platform transcripts (no ASR: this measures the CRM
side), seeds the CRM sandbox with the demo org, connects with OAuth (and, for HubSpot, runs
the setup step), and writes back on fresh sandboxes:

- batched: one write-back run for all N calls in process (what `coachloop crm apply` does
  after a backfill): the reference for what was written;
- workers: the N calls sent to a real Celery worker (PostgreSQL, Redis) as score tasks, the
  way a backfill arrives; the debounced refresh and CRM sync do the rest.

The batching limit is the fewest write calls the CRM allows: for each object,
ceil(records / 200) with Salesforce's sObject Collections, ceil(records / 100) with HubSpot's
batch endpoints (and, for HubSpot, ceil(links / 100) association calls per object pair).
Prints write calls per object against it, reads beside them, the ratio of the workers'
write calls to the limit, and wall time.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "demo"


def make_calls(folder: Path, n: int) -> None:
    """N manifests that reuse the demo's platform transcripts, spread over 60 days."""
    folder.mkdir(parents=True)
    sources = [m for m in sorted((DEMO / "calls").glob("*.yaml"))
               if "transcript:" in m.read_text()]
    start = datetime(2026, 9, 1, 15, tzinfo=timezone.utc)
    for i in range(n):
        original = yaml.safe_load(sources[i % len(sources)].read_text())
        transcript = f"bench-{i:04d}{Path(original['transcript']).suffix}"
        shutil.copy(DEMO / "calls" / original["transcript"], folder / transcript)
        manifest = {"external_id": f"bench-{i:04d}", "title": f"{original['title']} #{i}",
                    "started_at": (start + timedelta(hours=14 * i)).isoformat(),
                    "transcript": transcript, "participants": original["participants"]}
        (folder / f"bench-{i:04d}.yaml").write_text(yaml.safe_dump(manifest))


def ingest(workdir: Path, n: int, database_url: str) -> tuple[int, list[int]]:
    """A migrated database with the demo team and N transcribed (not yet scored) calls."""
    os.environ["COACHLOOP_DATA_DIR"] = str(workdir)
    os.environ["COACHLOOP_DATABASE_URL"] = database_url
    from core.settings import get_settings

    get_settings.cache_clear()
    from connectors.files import FilesSource, load_team
    from core.db import migrate, session_scope
    from core.ingest import apply_team, ensure_org, ingest_record
    from core.pipeline import transcribe_meeting

    migrate(database_url)
    make_calls(workdir / "calls", n)
    team = load_team(DEMO)
    ids = []
    with session_scope() as session:
        org = ensure_org(session, team.org.name, list(team.org.domains))
        apply_team(session, org, team.members())
        for record in FilesSource(workdir / "calls").list_meetings():
            ids.append(ingest_record(session, org, record).meeting_id)
        org_id = org.id
    for meeting_id in ids:
        transcribe_meeting(meeting_id)  # platform transcripts: no ASR
    return org_id, ids


BATCH_LIMIT = {"salesforce": 200, "hubspot": 100}
ASSOCIATE = "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default"


def connected_sandboxes(workdir: Path, org_id: int, crm: str) -> tuple:
    """The vendor sandboxes, their settings in the environment, the CRM connected (and set
    up, where it has a setup step)."""
    import json

    from cryptography.fernet import Fernet

    from connectors.oauth_apps import connect_following_consent
    from core.settings import get_settings
    from core.vendors import vendor
    from sandbox.run import start_sandboxes

    boxes = start_sandboxes(workdir / "sandbox")
    env = {**boxes.settings(),
           "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])}
    os.environ.update(env)
    get_settings.cache_clear()
    connect_following_consent(crm, org_id, get_settings())
    if vendor(crm).setup is not None:
        vendor(crm).load("setup")(org_id, get_settings(), apply=True)
    box = getattr(boxes, crm)
    box.requests.clear()
    getattr(box, "collection_writes", getattr(box, "batch_writes", Counter())).clear()
    return boxes, env


def batched(n: int, workdir: Path, crm: str) -> dict:
    from connectors.crm_sync import sync_configured
    from core.pipeline import score_meeting
    from core.skill_refresh import refresh_skills

    org_id, meeting_ids = ingest(workdir, n, f"sqlite:///{workdir / 'bench.db'}")
    for meeting_id in meeting_ids:
        score_meeting(meeting_id)
    boxes, _ = connected_sandboxes(workdir, org_id, crm)
    started = time.perf_counter()
    try:
        refresh_skills(org_id, date(2026, 11, 20))
        report = sync_configured(org_id)
    finally:
        elapsed = time.perf_counter() - started
        boxes.stop()
    assert not report.failed, report.failed
    records = Counter(w.sobject for w in report.writes)
    links = Counter(f"{w.sobject}→{to}" for w in report.writes for to, _ in w.links)
    return tally("batched", boxes, crm, elapsed, records, links)


def through_workers(n: int, workdir: Path, debounce: float, crm: str) -> dict:
    import uuid

    from celery import Celery
    from sqlmodel import Session, func, select

    from core.db import engine_for
    from core.models import Meeting
    from tests.conftest import REDIS_URL, create_pg_database, drop_pg_database
    from tests.test_worker_integration import start_worker, stop_worker

    database_url = create_pg_database()
    broker = (REDIS_URL, f"coachloop-bench-{uuid.uuid4().hex[:8]}:")
    log_path = workdir / "worker.log"
    try:
        org_id, meeting_ids = ingest(workdir, n, database_url)
        boxes, env = connected_sandboxes(workdir, org_id, crm)
        worker = start_worker(database_url, broker, log_path,
                              extra_env={**env, "COACHLOOP_REFRESH_DEBOUNCE_S": str(debounce)})
        started = time.perf_counter()
        try:
            client = Celery(broker=broker[0])
            client.conf.broker_transport_options = {"global_keyprefix": broker[1]}
            for meeting_id in meeting_ids:  # a backfill, as the poller or a replay sends it
                client.send_task("coachloop.score", args=[meeting_id], queue="default")
            with Session(engine_for(database_url)) as session:
                while session.exec(select(func.count(Meeting.id)).where(
                        Meeting.crm_synced_at.is_not(None))).one() < n:
                    if time.perf_counter() - started > 3600:
                        raise SystemExit(f"timed out; see {log_path}")
                    time.sleep(0.5)
                    session.expire_all()
            elapsed = time.perf_counter() - started
        finally:
            stop_worker(worker)
            boxes.stop()
        syncs = log_path.read_text().count("Task coachloop.crm_sync[")
    finally:
        drop_pg_database(database_url)
    result = tally("workers", boxes, crm, elapsed, None, None)
    result["syncs"] = syncs // 2  # "received" and "succeeded"
    return result


def tally(mode: str, boxes, crm: str, elapsed: float, records: Counter | None,
          links: Counter | None) -> dict:
    box = getattr(boxes, crm)
    data = {k: v for k, v in box.requests.items() if "/oauth" not in k}
    if crm == "salesforce":
        writes = sum(v for k, v in data.items() if k.startswith(("PATCH", "POST")))
        by_object = dict(box.collection_writes)
    else:  # HubSpot reads with POST too (search, batch/read): count its write endpoints
        by_object = dict(box.batch_writes)
        writes = sum(by_object.values()) + data.get(ASSOCIATE, 0)
    return {"mode": mode, "records": dict(records or {}), "links": dict(links or {}),
            "calls": sum(data.values()), "writes": writes, "reads": sum(data.values()) - writes,
            "seconds": elapsed, "collection_writes": by_object,
            "associations": data.get(ASSOCIATE, 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--debounce", type=float, default=60.0,
                        help="COACHLOOP_REFRESH_DEBOUNCE_S for the worker (the default's)")
    parser.add_argument("--crm", nargs="+", default=["salesforce", "hubspot"],
                        choices=sorted(BATCH_LIMIT))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="coachloop-bench-crm-"))
    try:
        for crm in args.crm:
            for n in args.meetings:
                reference = batched(n, root / f"{crm}-batched-{n}", crm)
                workers = through_workers(n, root / f"{crm}-workers-{n}", args.debounce, crm)
                report(crm, n, reference, workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(crm: str, n: int, reference: dict, workers: dict) -> None:
    limit = BATCH_LIMIT[crm]
    records = reference["records"]
    print(f"{crm}: {n} scored meetings; records written: "
          + ", ".join(f"{v} {k}" for k, v in sorted(records.items())))
    for r in (reference, workers):
        by_object = ", ".join(f"{k} {v}" for k, v in sorted(r["collection_writes"].items()))
        linked = f", {r['associations']} association calls" if crm == "hubspot" else ""
        print(f"  {r['mode']:>8}: {r['writes']} write calls ({by_object}{linked}), "
              f"{r['reads']} reads, {r['seconds']:.1f} s"
              + (f", {r['syncs']} CRM sync run(s)" if "syncs" in r else ""))
    for sobject, count in sorted(records.items()):
        ideal = math.ceil(count / limit)
        got = workers["collection_writes"].get(sobject, 0)
        print(f"  {sobject}: workers {got} write call(s), ideal ceil({count}/{limit}) = "
              f"{ideal}, ratio {got / ideal:.2f}")
    floor = sum(math.ceil(count / limit) for count in records.values())
    if crm == "hubspot":
        pairs = sum(math.ceil(count / 100) for count in reference["links"].values())
        print(f"  associations: workers {workers['associations']} call(s), ideal "
              f"{pairs} (ceil(links/100) per object pair: "
              + ", ".join(f"{k} {v}" for k, v in sorted(reference["links"].items())) + ")")
        floor += pairs
    print(f"  all objects: workers {workers['writes']} / ideal {floor} = "
          f"{workers['writes'] / floor:.2f}", flush=True)


if __name__ == "__main__":
    main()
