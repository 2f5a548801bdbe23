"""The shared webhook route: raw bytes → verify → parse → store (dedupe) → enqueue → 2xx."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, select

from core.db import session_scope
from core.models import Connection
from core.settings import Settings, get_settings
from core.webhook_events import record_delivery
from webhooks.base import WebhookReceiver, WebhookRejected, kept_headers

MAX_BODY_BYTES = 1 << 20


def configured_receivers(settings: Settings) -> dict[str, WebhookReceiver]:
    """A receiver per provider whose signing secret is configured."""
    receivers: dict[str, WebhookReceiver] = {}
    if settings.zoom.webhook_secret_token is not None:
        from webhooks.zoom import ZoomReceiver

        receivers["zoom"] = ZoomReceiver(settings.zoom.webhook_secret_token.get_secret_value(),
                                         tolerance_s=settings.zoom.webhook_tolerance_s)
    return receivers


def org_for_account(session: Session, provider: str, account_ref: str | None) -> int | None:
    """The org whose active `provider` connection is for the event's vendor account; None if
    no connection is (the event is stored anyway, and its worker says what to connect)."""
    rows = session.exec(select(Connection).where(Connection.provider == provider,
                                                 Connection.status == "active")
                        .order_by(Connection.id)).all()
    matching = {c.org_id for c in rows if account_ref and c.account_ref == account_ref}
    if len(matching) == 1:
        return matching.pop()
    # A user-OAuth connection may not know its account (Zoom's token response doesn't say):
    # when it is the provider's only connection, the event can only be for it.
    unknown = {c.org_id for c in rows if not c.account_ref}
    if not matching and len(rows) == 1 and unknown:
        return unknown.pop()
    return None


def make_router(enqueue: Callable[[int], None],
                receivers: Callable[[], dict[str, WebhookReceiver]] | None = None,
                policy: Callable | None = None) -> APIRouter:
    """The `/webhooks/{provider}` route; `enqueue(event_id)` hands new events to the workers;
    `policy` is the API's access dependency for it (open: the signature is the check)."""
    router = APIRouter(tags=["webhooks"])
    find = receivers or (lambda: configured_receivers(get_settings()))

    @router.post("/webhooks/{provider}", dependencies=[Depends(policy)] if policy else [])
    async def receive(provider: str, request: Request):
        """Verify and store one delivery; processing happens in a worker."""
        receiver = find().get(provider)
        if receiver is None:
            raise WebhookRejected(404, f"no webhook receiver configured for {provider!r}")
        raw = await request.body()  # capped while it streams (core.http_guards.BodyLimit)
        if len(raw) > MAX_BODY_BYTES:
            raise WebhookRejected(413, "body larger than 1 MiB")
        headers = {k.lower(): v for k, v in request.headers.items()}
        receiver.verify(raw, headers)
        delivery = receiver.parse(raw)
        answer = receiver.challenge(delivery)
        if answer is not None:
            return JSONResponse(answer)
        with session_scope() as session:
            org_id = org_for_account(session, provider, delivery.account_ref)
            stored = record_delivery(session, provider=provider, event_type=delivery.event_type,
                                     dedupe_key=delivery.dedupe_key, raw_body=raw,
                                     headers=kept_headers(headers), org_id=org_id)
        if stored.is_new:
            enqueue(stored.id)
        return JSONResponse({"status": "accepted" if stored.is_new else "duplicate",
                             "event_id": stored.id})

    return router
