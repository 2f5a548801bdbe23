"""Salesforce API calls per 100 processed meetings, against the batching limit, in one run.

    python bench/crm.py [--meetings 100]

Builds N scored calls from the demo's platform transcripts (no ASR: this measures the CRM
side), seeds the Salesforce sandbox with the demo org, connects with OAuth, and writes back
twice on fresh sandboxes:

- batched: one write-back run for all N calls (what `coachloop crm apply` does after a backfill);
- per call: one run after each call is scored (what the workers do as calls trickle in).

The batching limit is the fewest write calls sObject Collections allows: for each object,
ceil(records / 200). Reads (describe, contact and deal lookups) are reported beside it.
Prints calls per 100 meetings, the ratio of write calls to that limit, and wall time.
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


def setup(workdir: Path, n: int, tls):
    """Fresh database with N scored calls; returns the org id."""
    os.environ["COACHLOOP_DATA_DIR"] = str(workdir)
    os.environ["COACHLOOP_DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"
    from core.settings import get_settings

    get_settings.cache_clear()
    from connectors.files import FilesSource, load_team
    from core.db import migrate, session_scope
    from core.ingest import apply_team, ensure_org, ingest_record
    from core.pipeline import score_meeting, transcribe_meeting

    migrate()
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
        transcribe_meeting(meeting_id)
        score_meeting(meeting_id)
    return org_id, ids


def sandbox(tls):
    from connectors.oauth_apps import connect_following_consent
    from core.settings import get_settings
    from sandbox.salesforce import (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SalesforceSandbox,
                                    demo_seed)
    from sandbox.server import serve

    box = SalesforceSandbox(query_page_size=2000)
    demo_seed(box, DEMO)
    server = serve(box.create_app(), tls)
    os.environ.update({"COACHLOOP_SALESFORCE__CLIENT_ID": DEFAULT_CLIENT_ID,
                       "COACHLOOP_SALESFORCE__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                       "COACHLOOP_SALESFORCE__LOGIN_URL": server.url,
                       "COACHLOOP_CA_BUNDLE": str(tls.ca_path)})
    get_settings.cache_clear()
    return box, server, connect_following_consent


def run(mode: str, n: int, tls, workdir: Path) -> dict:
    from connectors.crm_sync import sync_configured
    from core.pipeline import refresh_skills
    from core.settings import get_settings

    org_id, meeting_ids = setup(workdir, n, tls)
    box, server, connect = sandbox(tls)
    connect("salesforce", org_id, get_settings())
    box.requests.clear()
    started = time.perf_counter()
    try:
        if mode == "batched":
            refresh_skills(org_id, date(2026, 11, 20))
            reports = [sync_configured(org_id)]
        else:
            reports = []
            for meeting_id in meeting_ids:
                refresh_skills(org_id, date(2026, 11, 20))  # as the skills task does
                reports.append(sync_configured(org_id, meeting_ids=[meeting_id]))
    finally:
        elapsed = time.perf_counter() - started
        server.stop()
    records = Counter()
    for report in reports:
        assert not report.failed, report.failed
        for write in report.writes:
            records[write.sobject] += 1
    data = {k: v for k, v in box.requests.items() if "/oauth2/" not in k}
    writes = sum(v for k, v in data.items() if k.startswith(("PATCH", "POST")))
    return {"mode": mode, "records": dict(records), "calls": sum(data.values()),
            "writes": writes, "reads": sum(data.values()) - writes, "seconds": elapsed,
            "by_endpoint": dict(sorted(data.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=100)
    args = parser.parse_args()
    from sandbox.tls import local_tls

    root = Path(tempfile.mkdtemp(prefix="coachloop-bench-crm-"))
    tls = local_tls(root / "tls")
    n = args.meetings
    results = [run(mode, n, tls, root / mode) for mode in ("batched", "per-call")]
    batched = results[0]
    floor = sum(math.ceil(count / 200) for count in batched["records"].values())
    per_100 = 100 / n
    print(f"{n} scored meetings; records written in one run: "
          + ", ".join(f"{v} {k}" for k, v in sorted(batched["records"].items())))
    print(f"batching limit (ceil(records/200) per object): {floor} write call(s)")
    for r in results:
        print(f"{r['mode']:>9}: {r['calls'] * per_100:7.1f} API calls per 100 meetings "
              f"({r['writes']} writes, {r['reads']} reads), write calls / batching limit = "
              f"{r['writes'] / floor:.2f}, {r['seconds']:.1f} s")
        print("           " + ", ".join(f"{k} {v}" for k, v in r["by_endpoint"].items()))
    naive = sum(batched["records"].values())
    print(f"one request per record would take {naive * per_100:.0f} write calls per 100 "
          f"meetings; batched uses {batched['writes'] * per_100:.1f} "
          f"(ratio {batched['writes'] / naive:.3f})")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
