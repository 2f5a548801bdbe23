"""The webhook contract, run against every vendor that receives webhooks, with events its
emulator signs: a signed event is accepted once and then counted as a duplicate; a changed
body, a stale or missing signature, and malformed JSON are refused with a 4xx and store
nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.db import session_scope
from core.models import WebhookEvent
from core.vendors import with_a
from tests.contracts.kits import WEBHOOKS, now

VENDORS = [vendor.name for vendor in with_a("webhooks")]


@pytest.fixture
def client(boxes):
    from api import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as made:
        yield made


@pytest.mark.parametrize("vendor", VENDORS)
def test_signed_events_are_stored_once(boxes, client, vendor):
    running, _ = boxes
    kit = WEBHOOKS[vendor]
    body = kit.event(running)
    first = client.post(f"/webhooks/{vendor}", content=body, headers=kit.sign(running, body, now()))
    again = client.post(f"/webhooks/{vendor}", content=body, headers=kit.sign(running, body, now()))
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    with session_scope() as session:
        assert len(session.exec(select(WebhookEvent)).all()) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_forged_stale_and_malformed_deliveries_are_refused(boxes, client, vendor):
    running, _ = boxes
    kit = WEBHOOKS[vendor]
    body = kit.event(running)
    headers = kit.sign(running, body, now())
    tampered = body[:-1] + b" " + body[-1:]  # one byte more, the JSON as valid as before
    answers = [
        client.post(f"/webhooks/{vendor}", content=tampered, headers=headers),
        client.post(f"/webhooks/{vendor}", content=body,
                    headers=kit.sign(running, body, now() - 3600)),
        client.post(f"/webhooks/{vendor}", content=body,
                    headers={"content-type": "application/json"}),
        client.post(f"/webhooks/{vendor}", content=b"{not json",
                    headers=kit.sign(running, b"{not json", now())),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 400], [a.text for a in answers]
    with session_scope() as session:
        assert session.exec(select(WebhookEvent)).all() == []
