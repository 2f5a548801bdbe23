"""Zoom webhooks over HTTP: signed deliveries are stored once and enqueued; forged, stale,
replayed or malformed ones get a 4xx and nothing is stored or processed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.models import WebhookEvent
from webhooks.base import WebhookRejected
from webhooks.router import make_router
from connectors.zoom.webhooks import ZoomReceiver

SECRET = "zoom-test-secret-token"


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    """Zoom's scheme, written out independently of connectors/zoom/webhooks.py."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {"x-zm-request-timestamp": str(timestamp), "x-zm-signature": f"v0={digest.hexdigest()}",
            "content-type": "application/json"}


def recording_completed(uuid: str = "4444AAAiAAAAAiAiAiiAii==") -> bytes:
    return json.dumps({
        "event": "recording.completed", "event_ts": 1732780800000, "download_token": "dl-secret",
        "payload": {"account_id": "acct-1", "object": {
            "uuid": uuid, "id": 6840331990, "host_email": "maya.chen@acme-analytics.example",
            "topic": "Discovery", "start_time": "2026-11-20T15:00:00Z", "duration": 30,
            "recording_files": [{"id": "f1", "file_type": "TRANSCRIPT", "status": "completed",
                                 "download_url": "https://zoom.example/rec/download/f1"}]}},
    }).encode()


@pytest.fixture
def app_and_queue(sqlite_database):
    queued: list[int] = []
    app = FastAPI()

    @app.exception_handler(WebhookRejected)
    async def rejected(_, exc: WebhookRejected):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": exc.message}, status_code=exc.status)

    app.include_router(make_router(queued.append, lambda: {"zoom": ZoomReceiver(SECRET)}))
    return TestClient(app), queued


def stored_events() -> list[WebhookEvent]:
    with session_scope() as session:
        return list(session.exec(select(WebhookEvent)))


def test_signed_event_is_stored_and_enqueued_once_even_when_delivered_three_times(app_and_queue):
    client, queued = app_and_queue
    body = recording_completed()
    answers = [client.post("/webhooks/zoom", content=body, headers=sign(body, int(time.time())))
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    [event] = stored_events()
    assert queued == [event.id]
    assert event.deliveries == 3 and event.verified
    # The body is kept as received, but for the download token: sealed, never in plaintext.
    assert "dl-secret" not in event.raw_body and "download_token" not in event.raw_body
    assert "dl-secret" not in (event.sealed or "") and event.sealed
    from core.crypto import cipher_from_settings
    from core.webhook_events import event_payload

    assert event_payload(event, cipher_from_settings()) == json.loads(body)
    assert event.dedupe_key == "recording.completed:4444AAAiAAAAAiAiAiiAii=="
    assert "x-zm-signature" in event.headers and "authorization" not in event.headers


@pytest.mark.parametrize("tamper, reason", [
    (lambda body, headers: (body.replace(b"Discovery", b"Discoverx"), headers), "tampered body"),
    (lambda body, headers: (body, {**headers, "x-zm-signature": "v0=" + "0" * 64}), "forged"),
    (lambda body, headers: (body, sign(body, int(time.time()) - 3600)), "stale"),
    (lambda body, headers: (body, sign(body, int(time.time()) + 3600)), "future"),
    (lambda body, headers: (body, sign(body, int(time.time()), "other-secret")), "wrong secret"),
    (lambda body, headers: (body, {"content-type": "application/json"}), "unsigned"),
    (lambda body, headers: (body, {**headers, "x-zm-request-timestamp": "soon"}), "bad timestamp"),
])
def test_forged_stale_or_unsigned_requests_are_rejected(app_and_queue, tamper, reason):
    client, queued = app_and_queue
    body = recording_completed()
    body, headers = tamper(body, sign(body, int(time.time())))
    answer = client.post("/webhooks/zoom", content=body, headers=headers)
    assert answer.status_code == 401, reason
    assert stored_events() == [] and queued == []


def test_signed_but_malformed_bodies_are_400(app_and_queue):
    client, queued = app_and_queue
    for body in (b"not json", b"[1, 2]", b'{"event": "recording.completed"}',
                 b'{"event": 7, "payload": {}}'):
        answer = client.post("/webhooks/zoom", content=body, headers=sign(body, int(time.time())))
        assert answer.status_code == 400, body
    assert stored_events() == [] and queued == []


def test_url_validation_handshake(app_and_queue):
    client, queued = app_and_queue
    body = json.dumps({"event": "endpoint.url_validation", "event_ts": 1,
                       "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}).encode()
    answer = client.post("/webhooks/zoom", content=body, headers=sign(body, int(time.time())))
    assert answer.status_code == 200
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert answer.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    unsigned = client.post("/webhooks/zoom", content=body)
    assert unsigned.status_code == 401
    assert stored_events() == [] and queued == []


def test_unknown_provider_and_oversized_bodies(app_and_queue):
    client, _ = app_and_queue
    assert client.post("/webhooks/nope", content=b"{}").status_code == 404
    huge = b"{" + b" " * (1 << 20) + b"}"
    assert client.post("/webhooks/zoom", content=huge,
                       headers=sign(huge, int(time.time()))).status_code == 413


def test_the_app_routes_zoom_webhooks_when_a_secret_is_configured(sqlite_database, monkeypatch):
    """Through api.create_app: configured by settings; the stored event's processing is
    recorded (no Zoom meeting source is installed yet, and the event says so)."""
    from core.settings import get_settings

    monkeypatch.setenv("COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN", SECRET)
    get_settings.cache_clear()
    from api import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    body = recording_completed("other-uuid")
    answer = client.post("/webhooks/zoom", content=body, headers=sign(body, int(time.time())))
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        [event] = stored_events()
        if event.processed_at is not None:
            break
        time.sleep(0.1)
    assert event.processed_at is not None and "zoom" in event.error


def test_events_go_to_the_org_whose_connection_names_the_account(sqlite_database):
    """With several Zoom connections, the event's account_id picks the org."""
    from core.crypto import cipher_from_settings
    from core.connections import save_connection
    from core.db import session_scope
    from core.ingest import ensure_org
    from core.oauth import TokenSet
    from core.settings import get_settings
    from webhooks.router import org_for_account

    cipher = cipher_from_settings(get_settings())
    with session_scope() as session:
        acme = ensure_org(session, "Acme", ["acme.example"])
        globex = ensure_org(session, "Globex", ["globex.example"])
        for org, account in ((acme, "acct-acme"), (globex, "acct-globex")):
            save_connection(session, org_id=org.id, provider="zoom", cipher=cipher,
                            tokens=TokenSet("token", "refresh", account_ref=account))
        assert org_for_account(session, "zoom", "acct-globex") == globex.id
        assert org_for_account(session, "zoom", "acct-acme") == acme.id
        assert org_for_account(session, "zoom", "acct-unknown") is None


def test_the_outbox_relay_loses_nothing_when_the_broker_is_away_and_sends_once(database):
    """The route stores and answers; the relay hands events to the broker. While the broker
    refuses, events wait in the table; two relays at once publish each event once."""
    import threading

    from core.models import WebhookEvent
    from core.webhook_events import record_delivery
    from webhooks.relay import OutboxRelay

    with session_scope() as session:
        ids = [record_delivery(session, provider="zoom", event_type="recording.completed",
                               dedupe_key=f"k{n}", raw_body=b"{}", headers={}).id
               for n in range(300)]
    published: list[int] = []
    broker_up = threading.Event()

    def publish(event_id: int) -> None:  # the broker, as the relay sees it
        if not broker_up.is_set():
            raise ConnectionError("broker unreachable")
        published.append(event_id)

    relays = [OutboxRelay(publish), OutboxRelay(publish)]
    assert relays[0].relay_once() == 0 and published == []
    with session_scope() as session:
        assert all(e.enqueued_at is None for e in session.exec(select(WebhookEvent)))
    broker_up.set()
    threads = [threading.Thread(target=lambda r=r: [r.relay_once(100) for _ in range(4)])
               for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(published) == sorted(ids)  # every event once, none twice
    assert relays[0].relay_once() == 0
