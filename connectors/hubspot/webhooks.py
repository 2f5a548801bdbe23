"""HubSpot webhooks: `X-HubSpot-Signature-v3` verification and parsing of event batches.

HubSpot signs `method + uri + raw body + X-HubSpot-Request-Timestamp` with HMAC-SHA256 under
the app's client secret and sends the digest in base64. The URI is the full address HubSpot
called (our public URL; behind a proxy the request's own URL may differ, so either counts),
with a few percent-escapes decoded as HubSpot decodes them. We compare in constant time and
refuse timestamps older than five minutes. A delivery is a JSON array of up to 100 events;
deal events mean the org's deals changed, and the worker pulls them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhooks.base import Delivery, WebhookRejected, strict_json

MAX_EVENTS = 100
# HubSpot decodes these in the URI before signing.
_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
            "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def signature_v3(secret: str, method: str, uri: str, raw_body: bytes, timestamp: str) -> str:
    """The `X-HubSpot-Signature-v3` value for one request."""
    message = method.upper().encode() + _decode(uri).encode() + raw_body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _decode(uri: str) -> str:
    for escaped, char in _DECODED.items():
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    return uri


def receiver(settings) -> HubSpotReceiver | None:
    """The receiver for the configured app's client secret; None until it is set."""
    secret = settings.hubspot.client_secret
    if secret is None:
        return None
    return HubSpotReceiver(secret.get_secret_value(),
                           public_uri=f"{settings.public_url.rstrip('/')}/webhooks/hubspot",
                           tolerance_s=settings.hubspot.webhook_tolerance_s)


class HubSpotReceiver:
    """Verifies and parses HubSpot deliveries for one app."""

    provider = "hubspot"
    kept_headers = ("x-hubspot-request-timestamp", "x-hubspot-signature-v3",
                    "x-hubspot-signature-version")

    def __init__(self, client_secret: str, *, public_uri: str, tolerance_s: int = 300,
                 clock: Callable[[], float] = time.time):
        self._secret = client_secret
        self._public_uri = public_uri
        self._tolerance = tolerance_s
        self._clock = clock

    def verify(self, raw_body: bytes, headers: Mapping[str, str], *, method: str = "POST",
               url: str = "") -> None:
        signature = headers.get("x-hubspot-signature-v3")
        timestamp = headers.get("x-hubspot-request-timestamp")
        if not signature or not timestamp:
            raise WebhookRejected(401, "missing X-HubSpot-Signature-v3 or "
                                       "X-HubSpot-Request-Timestamp")
        try:
            sent_at = int(timestamp) / 1000
        except ValueError:
            raise WebhookRejected(401, "X-HubSpot-Request-Timestamp is not a number") from None
        if abs(self._clock() - sent_at) > self._tolerance:
            raise WebhookRejected(401, "stale or future X-HubSpot-Request-Timestamp "
                                       f"(outside ±{self._tolerance} s)")
        for uri in dict.fromkeys(u for u in (self._public_uri, url) if u):
            expected = signature_v3(self._secret, method, uri, raw_body, timestamp)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return
        raise WebhookRejected(401, "signature does not match")

    def parse(self, raw_body: bytes) -> Delivery:
        events = strict_json(raw_body)
        if not isinstance(events, list) or not events or not all(
                isinstance(e, dict) for e in events):
            raise WebhookRejected(400, "body is not a list of events")
        if len(events) > MAX_EVENTS:
            raise WebhookRejected(400, f"more than {MAX_EVENTS} events in one delivery")
        ids, portals, kinds = [], set(), set()
        for event in events:
            event_id, portal, kind = (event.get("eventId"), event.get("portalId"),
                                      event.get("subscriptionType"))
            if not isinstance(event_id, int) or not isinstance(portal, int) or \
                    not isinstance(kind, str) or len(kind) > 100:
                raise WebhookRejected(400, "an event lacks eventId, portalId or "
                                           "subscriptionType")
            ids.append(event_id)
            portals.add(str(portal))
            kinds.add(kind)
        # HubSpot retries a delivery with the same events: one batch, one piece of work.
        key = hashlib.sha256(",".join(map(str, sorted(ids))).encode()).hexdigest()[:32]
        kind = kinds.pop() if len(kinds) == 1 else "batch"
        return Delivery(kind, f"events:{key}", portals.pop() if len(portals) == 1 else None,
                        {"events": events})

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        return None  # HubSpot has no validation handshake
