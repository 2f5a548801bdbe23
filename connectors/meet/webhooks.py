"""Google Workspace Events for Meet, delivered by Cloud Pub/Sub push.

Pub/Sub signs nothing in the body. What proves a push is Google's is the OIDC token in its
`Authorization` header: a JWT signed with one of Google's keys (fetched from `jwks_url` and
cached; an unknown key id fetches them again), issued by accounts.google.com, for our
audience, for the push subscription's service account (`email`, verified), not expired.
The body is Pub/Sub's envelope: `message.data` is the event's JSON (base64) and
`message.attributes` its CloudEvent context (`ce-type`, `ce-source`: the Workspace Events
subscription, `ce-subject`, `ce-time`, `ce-id`). Pub/Sub redelivers a message with the same
`messageId` until it is acknowledged (any 2xx), so that id is the dedupe key.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import threading
from collections.abc import Mapping
from typing import Any

from webhooks.base import Delivery, WebhookRejected, bounded, strict_json

MAX_TOKEN = 4096
LEEWAY_S = 60
KEY_CACHE_S = 3600
MEET_EVENT = "google.workspace.meet."
LIFECYCLE = "google.workspace.events.subscription.v1."

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def receiver(settings) -> MeetReceiver | None:
    """The receiver, once the push subscription's service account is configured."""
    return MeetReceiver(settings) if settings.meet.push_service_account else None


def push_audience(settings) -> str:
    return settings.meet.push_audience or f"{settings.public_url.rstrip('/')}/webhooks/meet"


def _keys(jwks_url: str, ca_bundle: str | None):
    """One cached key client per key set (PyJWT's: keeps the set an hour, fetches again
    when a token names a key it does not hold, at most every 30 s)."""
    import jwt

    with _clients_lock:
        client = _clients.get((jwks_url, ca_bundle or ""))
        if client is None:
            context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
            client = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=KEY_CACHE_S,
                                     timeout=10, ssl_context=context)
            _clients[(jwks_url, ca_bundle or "")] = client
        return client


def verify_push_token(token: str, *, audience: str, email: str, jwks_url: str,
                      issuers: list[str], ca_bundle: str | None = None) -> dict:
    """The token's claims if Google signed it for this audience and service account;
    `WebhookRejected(401)` if not, (503) when Google's keys cannot be fetched."""
    import jwt

    try:
        key = _keys(jwks_url, ca_bundle).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError:
        raise WebhookRejected(503, "Google's signing keys could not be fetched; Pub/Sub "
                                   "delivers again") from None
    except (jwt.PyJWKClientError, jwt.DecodeError):
        raise WebhookRejected(401, "the push token is not signed with a key of Google's"
                              ) from None
    try:
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                            issuer=issuers, leeway=LEEWAY_S,
                            options={"require": ["exp", "iat", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise WebhookRejected(401, "the push token has expired") from None
    except jwt.InvalidAudienceError:
        raise WebhookRejected(401, "the push token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise WebhookRejected(401, "the push token was not issued by Google") from None
    except jwt.InvalidTokenError:
        raise WebhookRejected(401, "the push token is not valid") from None
    if str(claims.get("email") or "").lower() != email.lower() or \
            claims.get("email_verified") is not True:
        raise WebhookRejected(401, "the push token is for another service account")
    return claims


def _message(raw_body: bytes) -> tuple[dict, dict, str, dict]:
    """(message, attributes, message id, decoded event data) of a Pub/Sub push body."""
    body = strict_json(raw_body)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        raise WebhookRejected(400, "body is not a Pub/Sub push (no 'message')")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        raise WebhookRejected(400, "message.attributes is not a map of strings")
    message_id = bounded(message.get("messageId") or message.get("message_id"),
                         "messageId", 200)
    if not message_id:
        raise WebhookRejected(400, "message has no messageId")
    encoded = bounded(message.get("data") or "", "message.data", 700_000)
    try:
        data = strict_json(base64.b64decode(encoded, validate=True)) if encoded else {}
    except (binascii.Error, ValueError):
        raise WebhookRejected(400, "message.data is not base64 JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "message.data is not a JSON object")
    return message, attributes, message_id, data


class MeetReceiver:
    """Verifies Pub/Sub pushes of Workspace Events and parses their CloudEvents."""

    provider = "meet"
    kept_headers = ()

    def __init__(self, settings):
        own = settings.meet
        self.audience = push_audience(settings)
        self.email = own.push_service_account
        self.jwks_url, self.issuers = own.jwks_url, list(own.token_issuers)
        self.ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None

    def verify(self, raw_body: bytes, headers: Mapping[str, str], *, method: str = "POST",
               url: str = "") -> None:
        scheme, _, token = str(headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise WebhookRejected(401, "no Bearer token: configure the Pub/Sub push "
                                       "subscription with authentication")
        if len(token) > MAX_TOKEN:
            raise WebhookRejected(401, "the push token is too long")
        verify_push_token(token, audience=self.audience, email=self.email,
                          jwks_url=self.jwks_url, issuers=self.issuers,
                          ca_bundle=self.ca_bundle)

    def parse(self, raw_body: bytes) -> Delivery:
        """The event, keyed by Pub/Sub's message id; its account is the connection holding
        the Workspace Events subscription it came through (None: not one of ours, kept as an
        orphan until a connection claims it)."""
        message, attributes, message_id, data = _message(raw_body)
        kind = bounded(attributes.get("ce-type"), "ce-type", 200) or ""
        if not (kind.startswith(MEET_EVENT) or kind.startswith(LIFECYCLE)):
            raise WebhookRejected(400, f"not a Meet or subscription event: {kind!r}")
        source = bounded(attributes.get("ce-source"), "ce-source", 500) or ""
        subscription = source.removeprefix("//workspaceevents.googleapis.com/")
        payload = {"type": kind, "subscription": subscription,
                   "subject": attributes.get("ce-subject"), "time": attributes.get("ce-time"),
                   "id": attributes.get("ce-id"), "message_id": message_id,
                   "publish_time": message.get("publishTime") or message.get("publish_time"),
                   "data": data}
        return Delivery(kind, f"pubsub:{message_id}", subscription_account(subscription),
                        payload, scrubbed=True)

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        return None


def subscription_account(subscription: str) -> str | None:
    """The account of the connection holding a Workspace Events subscription."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Connection, PushSubscription

    if not subscription:
        return None
    with session_scope() as session:
        found = session.exec(select(Connection.account_ref).join(
            PushSubscription, PushSubscription.connection_id == Connection.id).where(
            PushSubscription.provider == "meet",
            PushSubscription.external_id == subscription)).first()
    return found


def event_refs(event: Any) -> tuple[str, str, str | None]:
    """(event type, Workspace Events subscription, conference record name or None) of a
    stored event."""
    event = event or {}
    data = event.get("data") or {}
    name = None
    for key in ("transcript", "recording", "conferenceRecord"):
        found = (data.get(key) or {}).get("name") if isinstance(data.get(key), dict) else None
        if isinstance(found, str) and found.startswith("conferenceRecords/"):
            name = "/".join(found.split("/")[:2])
            break
    return str(event.get("type") or ""), str(event.get("subscription") or ""), name
