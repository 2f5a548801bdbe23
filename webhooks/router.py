"""The shared webhook route: raw bytes → verify → parse → store (dedupe) → enqueue → 2xx."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from core.db import session_scope
from core.http_guards import WEBHOOK_BODY
from core.settings import Settings, get_settings
from core.vendors import with_a
from core.webhook_events import org_for_account, record_delivery
from webhooks.base import WebhookReceiver, WebhookRejected, kept_headers

MAX_BODY_BYTES = WEBHOOK_BODY  # also enforced while the body streams in


def configured_receivers(settings: Settings) -> dict[str, WebhookReceiver]:
    """A receiver per vendor whose webhooks are configured (its signing secret is set)."""
    receivers: dict[str, WebhookReceiver] = {}
    for vendor in with_a("webhooks"):
        receiver = vendor.load("webhooks")(settings)
        if receiver is not None:
            receivers[vendor.name] = receiver
    return receivers


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
        handshake = getattr(receiver, "handshake", None)
        echo = handshake(request.query_params, raw) if handshake else None
        if echo is not None:  # the vendor checks that this URL is ours (Graph: validationToken)
            return PlainTextResponse(echo)
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Off the event loop: a receiver may look its secrets up in the database.
        await run_in_threadpool(receiver.verify, raw, headers, method=request.method,
                                url=str(request.url))
        delivery = await run_in_threadpool(receiver.parse, raw)  # it may read the database
        answer = receiver.challenge(delivery)
        if answer is not None:
            return JSONResponse(answer)
        def store():
            sealed = None
            if delivery.secrets:
                from core.crypto import cipher_from_settings

                sealed = cipher_from_settings(get_settings()).encrypt(delivery.secrets)
            with session_scope() as session:
                org_id = org_for_account(session, provider, delivery.account_ref)
                return record_delivery(session, provider=provider,
                                       event_type=delivery.event_type,
                                       dedupe_key=delivery.dedupe_key,
                                       raw_body=delivery.body_to_store(raw),
                                       headers=kept_headers(headers, receiver), org_id=org_id,
                                       account_ref=delivery.account_ref, sealed=sealed)

        # The database is synchronous: off the event loop, so one slow insert never holds
        # up the other requests this worker is serving.
        stored = await run_in_threadpool(store)
        if stored.is_new:
            enqueue(stored.id)  # cheap: a wake-up for the outbox relay, never the broker
        return JSONResponse({"status": "accepted" if stored.is_new else "duplicate",
                             "event_id": stored.id})

    return router
