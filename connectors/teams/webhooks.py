"""Microsoft Graph change notifications for Teams transcripts and recordings.

Graph signs nothing in a plain notification: what proves it is Graph's is the `clientState`
we gave the subscription, echoed in every notification. We keep only its SHA-256 and compare
digests in constant time; a notification must also name a subscription we hold for that
tenant. Before creating a subscription Graph checks the URL is ours with a validation request
(`?validationToken=…`, answered with the token as plain text within 10 s); the same URL takes
lifecycle notifications (`lifecycleEvent`: reauthorizationRequired, subscriptionRemoved,
missed), told apart by their body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from webhooks.base import Delivery, WebhookRejected, bounded, strict_json

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
MAX_VALIDATION_TOKEN = 2048
# communications/onlineMeetings('{meeting}')/transcripts('{id}') (or recordings), as Graph
# sends them for the tenant-wide subscriptions; users('{organizer}')/onlineMeetings(…)/… for
# per-user ones.
ARTIFACT = re.compile(r"^(?:communications|users\('([^'/]+)'\))/onlineMeetings\('([^'/]+)'\)/"
                      r"(transcripts|recordings)\('([^'/]+)'\)$", re.I)


def secret_hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


def receiver(settings) -> TeamsReceiver | None:
    """The receiver, once a Teams app is configured (each subscription has its own secret)."""
    return TeamsReceiver() if settings.teams.client_id else None


def _items(body: Any) -> list[dict]:
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > 1000 or \
            not all(isinstance(i, dict) for i in items):
        raise WebhookRejected(400, "body has no 'value' list of notifications")
    return items


class TeamsReceiver:
    """Verifies and parses Graph change and lifecycle notifications."""

    provider = "teams"
    kept_headers = ("client-request-id", "request-id")

    def handshake(self, query: Mapping[str, str], raw_body: bytes) -> str | None:
        """Graph's validation request: the token back, as plain text."""
        token = query.get("validationToken")
        if token is None:
            return None
        if not token or len(token) > MAX_VALIDATION_TOKEN or not token.isprintable():
            raise WebhookRejected(400, "validationToken is empty, too long or not printable")
        return token

    def verify(self, raw_body: bytes, headers: Mapping[str, str], *, method: str = "POST",
               url: str = "") -> None:
        """Every notification must carry the clientState of a subscription we hold, for the
        tenant it names."""
        from sqlmodel import select

        from core.db import session_scope
        from core.models import Connection, PushSubscription

        items = _items(strict_json(raw_body))
        wanted = {}
        for item in items:
            subscription = bounded(item.get("subscriptionId"), "subscriptionId", 100)
            state = bounded(item.get("clientState"), "clientState", 128)
            if not subscription or not state:
                raise WebhookRejected(401, "a notification without subscriptionId and "
                                           "clientState")
            wanted[subscription] = wanted.get(subscription, []) + [(state, item.get("tenantId"))]
        with session_scope() as session:
            held = {row.external_id: (row.secret_hash, tenant) for row, tenant in session.exec(
                select(PushSubscription, Connection.account_ref)
                .join(Connection, Connection.id == PushSubscription.connection_id)
                .where(PushSubscription.provider == self.provider,
                       PushSubscription.external_id.in_(list(wanted)),
                       PushSubscription.status != "ended")).all()}
        for subscription, claims in wanted.items():
            expected, tenant = held.get(subscription, ("", None))
            for state, claimed_tenant in claims:
                # Compare digests, in constant time: an unknown subscription costs the same.
                if not hmac.compare_digest(secret_hash(state).encode(), expected.encode()) \
                        or tenant is None or str(claimed_tenant or "").lower() != tenant:
                    raise WebhookRejected(401, "clientState does not match a subscription "
                                               "held for that tenant")

    def parse(self, raw_body: bytes) -> Delivery:
        items = _items(strict_json(raw_body))
        tenants = {str(i.get("tenantId") or "").lower() for i in items}
        if len(tenants) != 1:
            raise WebhookRejected(400, "notifications for more than one tenant in one body")
        lifecycle = [bounded(i.get("lifecycleEvent"), "lifecycleEvent", 64) for i in items]
        if any(lifecycle) and not all(event in LIFECYCLE_EVENTS for event in lifecycle):
            raise WebhookRejected(400, "a lifecycle notification of an unknown kind, or mixed "
                                       "with change notifications")
        if all(lifecycle):
            kind = "lifecycle"
            seen = sorted([i["subscriptionId"], i["lifecycleEvent"],
                           str(i.get("subscriptionExpirationDateTime"))] for i in items)
        else:
            kind = "changes"
            for item in items:
                bounded(item.get("resource"), "resource", 1000)
                bounded(item.get("changeType"), "changeType", 64)
            seen = sorted([i["subscriptionId"], str(i.get("changeType")),
                           str(i.get("resource"))] for i in items)
        key = hashlib.sha256(json.dumps(seen).encode()).hexdigest()
        # The clientStates are not stored with the event: they are the subscriptions' secrets.
        body = {"value": [{k: v for k, v in i.items() if k != "clientState"} for i in items]}
        return Delivery(kind, f"{kind}:{key}", tenants.pop(), body, scrubbed=True)

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        return None


def artifact_refs(event: Any) -> Iterator[tuple[str, str, str, str]]:
    """(organizer id, meeting id, "transcripts" | "recordings", artifact id) for each change
    notification in a stored event."""
    for item in (event or {}).get("value") or ():
        found = ARTIFACT.match(str(item.get("resource") or ""))
        if found and item.get("changeType") == "created":
            organizer, meeting, kind, artifact = found.groups()
            organizer = organizer or organizer_of(meeting)
            if organizer:
                yield organizer, meeting, kind.lower(), artifact


def organizer_of(meeting_id: str) -> str | None:
    """The organizer's Entra id inside an online meeting id: base64 of
    `1*<organizer id>*0**<thread id>`."""
    import base64
    import binascii

    try:
        decoded = base64.b64decode(meeting_id + "=" * (-len(meeting_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    parts = decoded.split("*")
    return parts[1] if len(parts) > 2 and parts[1] else None


def lifecycle_events(event: Any) -> list[tuple[str, str]]:
    """(subscription id, lifecycle event) for each lifecycle notification in a stored event."""
    return [(str(i.get("subscriptionId")), str(i.get("lifecycleEvent")))
            for i in (event or {}).get("value") or () if i.get("lifecycleEvent")]
