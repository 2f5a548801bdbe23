"""The API under 10,000+ seeded hostile requests (sandbox/fuzz.py), in one run.

    python bench/fuzz.py [--requests 10000] [--seed 1]

Forged and malformed webhooks, oversized bodies, odd encodings, traversal paths, made-up
credentials, against a fresh SQLite database in a temporary folder. Prints how many got a
5xx, how many forgeries were accepted or stored, how many made-up credentials were let in
(all three must be 0), the statuses, and requests per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
SECRET = "bench-webhook-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update({"COACHLOOP_DATA_DIR": folder,
                           "COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN": SECRET})
        os.environ.pop("COACHLOOP_DATABASE_URL", None)
        from fastapi.testclient import TestClient
        from sqlmodel import func, select

        import api
        from core.db import migrate, session_scope
        from core.ingest import ensure_org
        from core.models import WebhookEvent
        from sandbox import fuzz

        migrate()
        with session_scope() as session:
            ensure_org(session, "Bench", ["bench.example"])
        api._enqueue_webhook = lambda event_id: None  # store deliveries, do not process them

        def stored() -> int:
            with session_scope() as session:
                return session.exec(select(func.count()).select_from(WebhookEvent)).one()

        client = TestClient(api.create_app(), raise_server_exceptions=False)
        started = time.perf_counter()
        outcome = fuzz.run(client, SECRET, requests=args.requests, seed=args.seed,
                           stored=stored)
        elapsed = time.perf_counter() - started
    print(outcome.line())
    print("by kind: " + ", ".join(f"{k}: {n}" for k, n in sorted(outcome.by_kind.items())))
    print(f"{outcome.requests / elapsed:.0f} requests/s over {elapsed:.1f} s")
    for problem in (outcome.server_errors + outcome.forgeries_accepted
                    + outcome.credentials_accepted)[:10]:
        print("PROBLEM", problem)
    sys.exit(1 if outcome.server_errors or outcome.forgeries_accepted
             or outcome.credentials_accepted else 0)


if __name__ == "__main__":
    main()
