"""Graph change-notification subscriptions for a Teams connection, over their whole life.

Tenant-wide subscriptions to new transcripts and recordings are created on connect, each with
its own `clientState` (only its hash is kept) and a lifecycle URL; `celery beat`'s poll
renews them before Graph's cap on their lifetime ends them, recreates one Graph removed,
reauthorizes one Graph asks to, and deletes at Graph any of ours we hold no record of (a
crash between Graph's answer and our commit), so none is ever duplicated.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from connectors.teams.source import GraphApi, graph_time
from connectors.teams.webhooks import secret_hash
from core.db import session_scope
from core.errors import CoachloopError, NotFound, user_message
from core.models import PushSubscription, as_utc, utcnow

RESOURCES = ("communications/onlineMeetings/getAllTranscripts",
             "communications/onlineMeetings/getAllRecordings")
PROVIDER = "teams"


@dataclass(frozen=True)
class SubscriptionState:
    """What `coachloop connections` shows of one subscription."""

    resource: str
    status: str  # active | reauthorize | removed | failed
    expires_at: datetime | None
    problem: str | None = None

    def __str__(self) -> str:
        what = self.resource.rsplit("/", 1)[-1].removeprefix("getAll").lower()
        if self.status == "active" and self.expires_at:
            return f"{what} notifications until {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return f"{what} notifications {self.status}" + (f": {self.problem}"
                                                         if self.problem else "")


def notification_url(settings) -> str:
    return f"{settings.public_url.rstrip('/')}/webhooks/teams"


def subscription_states(connection_id: int) -> list[SubscriptionState]:
    with session_scope() as session:
        rows = session.exec(select(PushSubscription).where(
            PushSubscription.connection_id == connection_id,
            PushSubscription.status != "ended").order_by(PushSubscription.id)).all()
        latest = {row.resource: row for row in rows}
        return [SubscriptionState(resource, row.status, as_utc(row.expires_at), row.last_error)
                for resource in RESOURCES if (row := latest.get(resource)) is not None]


def ensure_subscriptions(api: GraphApi, *, org_id: int, connection_id: int, settings,
                         now: datetime | None = None) -> list[SubscriptionState]:
    """Make each resource's subscription live for a while yet: keep, renew, reauthorize or
    create it; a failure is recorded on it (and shown), never raised: polling goes on."""
    now = now or utcnow()
    url = notification_url(settings)
    if not url.startswith("https://"):
        for resource in RESOURCES:
            _failed(org_id, connection_id, resource, "Graph delivers notifications only to "
                    "HTTPS: set COACHLOOP_PUBLIC_URL to coachloop's https address (meanwhile "
                    "the poll reads new meetings)", now)
        return subscription_states(connection_id)
    _delete_strays(api, connection_id, url)
    renew_before = timedelta(minutes=settings.teams.renew_before_minutes)
    for resource in RESOURCES:
        with session_scope() as session:
            row = session.exec(select(PushSubscription).where(
                PushSubscription.connection_id == connection_id,
                PushSubscription.resource == resource,
                PushSubscription.status.in_(("active", "reauthorize")))
                .order_by(PushSubscription.id.desc())).first()
            held = None if row is None else (row.id, row.external_id, row.status,
                                             as_utc(row.expires_at))
        try:
            if held is None:
                _create(api, org_id, connection_id, resource, url, settings, now)
                continue
            row_id, external_id, status, expires_at = held
            if status == "active" and expires_at - now > renew_before:
                continue
            try:
                if status == "reauthorize":
                    api.change("POST", f"/subscriptions/{external_id}/reauthorize")
                _renew(api, row_id, external_id, settings, now)
            except NotFound:  # expired or removed at Graph meanwhile: a new one
                _end(row_id, "ended", "Graph no longer has it")
                _create(api, org_id, connection_id, resource, url, settings, now)
        except CoachloopError as exc:
            _failed(org_id, connection_id, resource, user_message(exc), now)
    return subscription_states(connection_id)


def on_lifecycle(api: GraphApi, *, org_id: int, connection_id: int, settings,
                 subscription_id: str, event: str) -> str:
    """Act on a lifecycle notification: reauthorize, or recreate a removed subscription.
    ("missed" is the source's: it polls.) Returns what was done."""
    with session_scope() as session:
        row = session.exec(select(PushSubscription).where(
            PushSubscription.provider == PROVIDER,
            PushSubscription.external_id == subscription_id)).first()
        if row is None or row.connection_id != connection_id:
            return f"subscription {subscription_id} is not ours: ignored"
        row_id = row.id
    if event == "reauthorizationRequired":
        _end(row_id, "reauthorize", None)
    elif event == "subscriptionRemoved":
        _end(row_id, "ended", "Graph removed it")
    ensure_subscriptions(api, org_id=org_id, connection_id=connection_id, settings=settings)
    return f"{event}: handled"


def end_subscriptions(api: GraphApi, connection_id: int) -> int:
    """Delete the connection's subscriptions at Graph (on disconnect); best effort."""
    with session_scope() as session:
        rows = session.exec(select(PushSubscription).where(
            PushSubscription.connection_id == connection_id,
            PushSubscription.status.in_(("active", "reauthorize")))).all()
        held = [(row.id, row.external_id) for row in rows]
    deleted = 0
    for row_id, external_id in held:
        try:
            api.change("DELETE", f"/subscriptions/{external_id}")
            deleted += 1
        except NotFound:
            pass
        except CoachloopError:
            continue  # it expires by itself within three days
        _end(row_id, "ended", "deleted on disconnect")
    return deleted


# ------------------------------------------------------------------------------------

def _create(api: GraphApi, org_id: int, connection_id: int, resource: str, url: str,
            settings, now: datetime) -> None:
    client_state = secrets.token_urlsafe(48)  # 64 characters; Graph allows 128
    expires = now + timedelta(minutes=settings.teams.subscription_minutes)
    made = api.change("POST", "/subscriptions", {
        "changeType": "created", "notificationUrl": url, "lifecycleNotificationUrl": url,
        "resource": resource, "expirationDateTime": graph_time(expires),
        "clientState": client_state})
    with session_scope() as session:
        for stale in session.exec(select(PushSubscription).where(
                PushSubscription.connection_id == connection_id,
                PushSubscription.resource == resource,
                PushSubscription.status == "failed")).all():
            session.delete(stale)
        session.add(PushSubscription(
            org_id=org_id, connection_id=connection_id, provider=PROVIDER,
            external_id=str(made["id"]), resource=resource,
            secret_hash=secret_hash(client_state),
            expires_at=_graph_expiry(made, expires)))


def _renew(api: GraphApi, row_id: int, external_id: str, settings, now: datetime) -> None:
    expires = now + timedelta(minutes=settings.teams.subscription_minutes)
    answer = api.change("PATCH", f"/subscriptions/{external_id}",
                        {"expirationDateTime": graph_time(expires)})
    with session_scope() as session:
        row = session.get(PushSubscription, row_id)
        row.expires_at, row.status, row.last_error = _graph_expiry(answer, expires), "active", None
        row.updated_at = utcnow()
        session.add(row)


def _graph_expiry(answer: dict, asked: datetime) -> datetime:
    """The expiry Graph granted (it may shorten what was asked)."""
    try:
        return datetime.fromisoformat(str(answer["expirationDateTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return asked


def _end(row_id: int, status: str, note: str | None) -> None:
    with session_scope() as session:
        row = session.get(PushSubscription, row_id)
        row.status, row.last_error, row.updated_at = status, note, utcnow()
        session.add(row)


def _failed(org_id: int, connection_id: int, resource: str, problem: str,
            now: datetime) -> None:
    """Record that the resource has no live subscription, and why (one row per resource)."""
    with session_scope() as session:
        placeholder = f"unsubscribed:{connection_id}:{resource}"
        row = session.exec(select(PushSubscription).where(
            PushSubscription.provider == PROVIDER,
            PushSubscription.external_id == placeholder)).first()
        row = row or PushSubscription(org_id=org_id, connection_id=connection_id,
                                      provider=PROVIDER, external_id=placeholder,
                                      resource=resource, secret_hash="", expires_at=now)
        row.status, row.last_error, row.updated_at = "failed", problem, utcnow()
        session.add(row)


def _delete_strays(api: GraphApi, connection_id: int, url: str) -> None:
    """Delete at Graph the subscriptions to our URL we hold no record of."""
    with session_scope() as session:
        ours = set(session.exec(select(PushSubscription.external_id).where(
            PushSubscription.provider == PROVIDER,
            PushSubscription.status.in_(("active", "reauthorize")))).all())
    try:
        listed = list(api.pages("/subscriptions"))
    except CoachloopError:
        return  # the creation below says what is wrong
    for item in listed:
        if item.get("notificationUrl") == url and item.get("resource") in RESOURCES \
                and item.get("id") not in ours:
            try:
                api.change("DELETE", f"/subscriptions/{item['id']}")
            except CoachloopError:
                pass
