"""About 2,000 seeded hostile requests against the whole API (sandbox/fuzz.py): no 5xx, no
forged or malformed delivery stored, no made-up credential let in. bench/fuzz.py runs the
same at 10,000 and more."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import func, select

from core.settings import get_settings
from sandbox import fuzz

SECRET = "fuzz-webhook-secret"


def test_two_thousand_hostile_requests(sqlite_database, monkeypatch):
    from api import create_app
    from core.db import session_scope
    from core.ingest import ensure_org
    from core.models import WebhookEvent

    monkeypatch.setenv("COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN", SECRET)
    get_settings.cache_clear()
    with session_scope() as session:
        ensure_org(session, "Acme", ["acme.example"])

    def stored() -> int:
        with session_scope() as session:
            return session.exec(select(func.count()).select_from(WebhookEvent)).one()

    import api

    monkeypatch.setattr(api, "_enqueue_webhook", lambda event_id: None)  # store, not process
    client = TestClient(create_app(), raise_server_exceptions=False)
    outcome = fuzz.run(client, SECRET, requests=2000, seed=20261201, stored=stored)
    print(outcome.line())
    assert outcome.requests >= 1900
    assert outcome.server_errors == [], sorted({e.split(': ', 1)[1][:150] for e in outcome.server_errors})
    assert outcome.forgeries_accepted == [], outcome.forgeries_accepted[:5]
    assert outcome.credentials_accepted == [], outcome.credentials_accepted[:5]
    assert outcome.signed_accepted > 100  # the well-formed, signed deliveries still get in
    assert stored() <= outcome.signed_accepted
