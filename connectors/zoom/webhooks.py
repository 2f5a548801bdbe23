"""Zoom webhooks: `x-zm-signature` v0 verification, `endpoint.url_validation`, parsing.

Zoom signs `v0:{x-zm-request-timestamp}:{raw body}` with HMAC-SHA256 under the app's secret
token and sends `v0=<hex>`. We hash the raw bytes (never a re-serialised JSON), compare in
constant time, and refuse timestamps outside a window so a captured request can't be replayed
later. The validation handshake is signed too, and is verified like any event.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhooks.base import Delivery, WebhookRejected, bounded, strict_json

URL_VALIDATION = "endpoint.url_validation"


def zoom_signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    """The `x-zm-signature` value Zoom sends for this body and timestamp."""
    message = b"v0:" + timestamp.encode() + b":" + raw_body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def receiver(settings) -> ZoomReceiver | None:
    """The receiver for the configured app's secret token; None until it is set."""
    token = settings.zoom.webhook_secret_token
    if token is None:
        return None
    return ZoomReceiver(token.get_secret_value(), tolerance_s=settings.zoom.webhook_tolerance_s)


class ZoomReceiver:
    """Verifies and parses Zoom deliveries for one app's secret token."""

    provider = "zoom"
    kept_headers = ("x-zm-request-timestamp", "x-zm-trackingid", "x-zm-signature")

    def __init__(self, secret_token: str, *, tolerance_s: int = 300,
                 clock: Callable[[], float] = time.time):
        self._secret = secret_token
        self._tolerance = tolerance_s
        self._clock = clock

    def verify(self, raw_body: bytes, headers: Mapping[str, str], *, method: str = "POST",
               url: str = "") -> None:
        signature = headers.get("x-zm-signature")
        timestamp = headers.get("x-zm-request-timestamp")
        if not signature or not timestamp:
            raise WebhookRejected(401, "missing x-zm-signature or x-zm-request-timestamp")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise WebhookRejected(401, "x-zm-request-timestamp is not a number") from None
        if abs(self._clock() - sent_at) > self._tolerance:
            raise WebhookRejected(401, "stale or future x-zm-request-timestamp "
                                       f"(outside ±{self._tolerance} s)")
        expected = zoom_signature(self._secret, timestamp, raw_body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise WebhookRejected(401, "signature does not match")

    def parse(self, raw_body: bytes) -> Delivery:
        body = strict_json(raw_body)
        if not isinstance(body, dict) or not isinstance(body.get("event"), str):
            raise WebhookRejected(400, "body has no 'event'")
        event = bounded(body["event"], "event", 100)
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body has no 'payload' object")
        if event == URL_VALIDATION:
            if not bounded(payload.get("plainToken"), "payload.plainToken", 256):
                raise WebhookRejected(400, "url_validation without payload.plainToken")
            return Delivery(event, f"{event}:{payload['plainToken']}", None, body)
        obj = payload.get("object") if isinstance(payload.get("object"), dict) else {}
        # Retries of an event carry the same meeting uuid: one meeting, one piece of work.
        subject = bounded(obj.get("uuid"), "payload.object.uuid", 128) or \
            hashlib.sha256(raw_body).hexdigest()
        account = bounded(payload.get("account_id"), "payload.account_id", 128)
        token = bounded(body.get("download_token"), "download_token", 4096)
        return Delivery(event, f"{event}:{subject}", account, body,
                        secrets={"download_token": token} if token else {})

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        if delivery.event_type != URL_VALIDATION:
            return None
        plain = delivery.payload["payload"]["plainToken"]
        encrypted = hmac.new(self._secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        return {"plainToken": plain, "encryptedToken": encrypted}
