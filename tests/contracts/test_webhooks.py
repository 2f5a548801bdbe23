"""The webhook contract, run against every vendor that receives webhooks, with events its
emulator signs: a signed event is accepted once and then counted as a duplicate; what only
looks like the vendor's (a changed body, a stale or missing signature; for Graph, a wrong
clientState, subscription or tenant) is refused with a 401, malformed JSON with a 400, and
nothing is stored."""

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
    forgeries = kit.forgeries(running, body)
    assert len(forgeries) >= 3
    for what, forged, headers in forgeries:
        answer = client.post(f"/webhooks/{vendor}", content=forged, headers=headers)
        assert answer.status_code == 401, f"{what}: {answer.status_code} {answer.text}"
    malformed = client.post(f"/webhooks/{vendor}", content=b"{not json",
                            headers=kit.sign(running, b"{not json", now()))
    assert malformed.status_code == 400, malformed.text
    with session_scope() as session:
        assert session.exec(select(WebhookEvent)).all() == []
