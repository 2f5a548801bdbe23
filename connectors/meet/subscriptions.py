"""Google Workspace Events subscriptions for a Meet connection, over their whole life.

One subscription per identity read (the connected user, or each rep impersonated through
the service account), on the user (`//cloudidentity.googleapis.com/users/<id>`: every
meeting space they own), for generated transcripts and recordings, published to the
configured Pub/Sub topic. Created on connect; `celery beat`'s poll renews one before Google
ends it (asking for the longest life Google grants), reactivates a suspended one, and
recreates an expired one. Before creating, the identity's existing subscription for the same
target is looked up and adopted: a crash between Google's answer and our commit, or Google's
ALREADY_EXISTS, never makes a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from connectors.meet.source import GoogleApis, MeetSource, _time
from core.db import session_scope
from core.errors import CoachloopError, NotFound, user_message
from core.models import PushSubscription, as_utc, utcnow

PROVIDER = "meet"
EVENT_TYPES = ("google.workspace.meet.transcript.v2.fileGenerated",
               "google.workspace.meet.recording.v2.fileGenerated")
LIVE = ("active", "suspended")


@dataclass(frozen=True)
class SubscriptionState:
    """What `coachloop connections` shows of one identity's subscription."""

    who: str
    status: str  # active | suspended | failed
    expires_at: datetime | None
    problem: str | None = None

    def __str__(self) -> str:
        if self.status == "active" and self.expires_at:
            return f"{self.who}: events until {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.who}: events {self.status}" + (f" ({self.problem})"
                                                       if self.problem else "")


def subscription_states(connection_id: int) -> list[SubscriptionState]:
    with session_scope() as session:
        rows = session.exec(select(PushSubscription).where(
            PushSubscription.connection_id == connection_id,
            PushSubscription.status != "ended").order_by(PushSubscription.id)).all()
        latest = {row.resource: row for row in rows}
        return [SubscriptionState(who, row.status, as_utc(row.expires_at), row.last_error)
                for who, row in sorted(latest.items())]


def ensure_subscriptions(source: MeetSource, now: datetime | None = None
                         ) -> list[SubscriptionState]:
    """Make each identity's subscription live for a while yet: keep, renew, reactivate,
    adopt or create it; a failure is recorded (and shown), never raised: polling goes on."""
    now = now or utcnow()
    topic = source.settings.meet.pubsub_topic
    if not topic:
        return []  # events are off: the poll alone reads new conferences
    renew_before = timedelta(hours=source.settings.meet.renew_before_hours)
    for who in source.identities():
        with session_scope() as session:
            row = session.exec(select(PushSubscription).where(
                PushSubscription.connection_id == source.connection_id,
                PushSubscription.resource == who, PushSubscription.status.in_(LIVE))
                .order_by(PushSubscription.id.desc())).first()
            held = None if row is None else (row.id, row.external_id, row.status,
                                             as_utc(row.expires_at))
        apis = source.apis_for(who)
        try:
            if held is None:
                _adopt_or_create(apis, source, who, topic)
                continue
            row_id, name, status, expires_at = held
            if status == "active" and expires_at - now > renew_before:
                continue
            try:
                if status == "suspended":
                    _operation(apis, apis.service("events").subscriptions().reactivate(
                        name=name, body={}), f"POST {name}:reactivate")
                _store(source, who, _renewed(apis, name), row_id)
            except NotFound:  # expired or deleted at Google meanwhile: a new one
                _end(row_id, "ended", "Google no longer has it")
                _adopt_or_create(apis, source, who, topic)
        except CoachloopError as exc:
            _failed(source, who, user_message(exc))
    return subscription_states(source.connection_id)


def on_lifecycle(source: MeetSource, subscription: str, kind: str, data: dict) -> str:
    """Act on a subscription's lifecycle event (expirationReminder: renew now; expired:
    recreate; suspended: recorded with Google's reason, reactivated by a later poll once
    the cause is fixed). Returns what was done."""
    with session_scope() as session:
        row = session.exec(select(PushSubscription).where(
            PushSubscription.provider == PROVIDER,
            PushSubscription.external_id == subscription)).first()
        if row is None or row.connection_id != source.connection_id:
            return f"subscription {subscription} is not ours: ignored"
        row_id, who = row.id, row.resource
    event = kind.rsplit(".", 1)[-1]
    if event == "expired":
        _end(row_id, "ended", "expired at Google")
    elif event == "suspended":
        reason = str(((data or {}).get("subscription") or {}).get("suspensionReason")
                     or "no reason given")
        _end(row_id, "suspended", f"suspended by Google: {reason}")
        return f"{event}: recorded ({reason})"
    elif event == "expirationReminder":
        _end(row_id, "active", None, expires_at=utcnow())  # due now: renewed below
    ensure_subscriptions(source)
    return f"{event}: handled for {who}"


def end_subscriptions(source: MeetSource) -> int:
    """Delete the connection's subscriptions at Google (on disconnect); best effort."""
    with session_scope() as session:
        rows = session.exec(select(PushSubscription).where(
            PushSubscription.connection_id == source.connection_id,
            PushSubscription.status.in_(LIVE))).all()
        held = [(row.id, row.external_id, row.resource) for row in rows]
    deleted = 0
    for row_id, name, who in held:
        apis = source.apis_for(who)
        try:
            _operation(apis, apis.service("events").subscriptions().delete(
                name=name, allowMissing=True), f"DELETE {name}")
            deleted += 1
        except CoachloopError:
            continue  # it expires by itself
        _end(row_id, "ended", "deleted on disconnect")
    return deleted


# ------------------------------------------------------------------------------------

def _operation(apis: GoogleApis, request, where: str) -> dict:
    """Run a long-running operation's request; the resource it made, when done."""
    answer = apis.call(request, where)
    error = answer.get("error")
    if isinstance(error, dict):
        import json

        from connectors.meet.source import google_error

        raise google_error(_http_status(error.get("code")), json.dumps({"error": error}), {},
                           where)
    return answer.get("response") or {}


def _renewed(apis: GoogleApis, name: str) -> dict:
    """Ask Google for the longest life it grants (`ttl` 0 is its maximum)."""
    made = _operation(apis, apis.service("events").subscriptions().patch(
        name=name, updateMask="ttl", body={"ttl": "0s"}), f"PATCH {name}")
    return made or apis.call(apis.service("events").subscriptions().get(name=name),
                             f"GET {name}")


def _adopt_or_create(apis: GoogleApis, source: MeetSource, who: str, topic: str) -> None:
    target = _user_target(apis)
    existing = _existing(apis, target)
    if existing is None:
        try:
            existing = _operation(apis, apis.service("events").subscriptions().create(body={
                "targetResource": target, "eventTypes": list(EVENT_TYPES),
                "notificationEndpoint": {"pubsubTopic": topic},
                "payloadOptions": {"includeResource": False}, "ttl": "0s"}),
                "POST subscriptions")
        except CoachloopError as exc:
            if "ALREADY_EXISTS" not in (exc.detail or ""):
                raise
        if not existing or not existing.get("name"):  # made, or there already: find it
            existing = _existing(apis, target)
        if existing is None:
            raise NotFound(f"Google made no event subscription for {who} yet")
    if existing.get("state") == "SUSPENDED":
        existing = _operation(apis, apis.service("events").subscriptions().reactivate(
            name=existing["name"], body={}), f"POST {existing['name']}:reactivate") or existing
    _store(source, who, existing)


def _user_target(apis: GoogleApis) -> str:
    """The identity as a Workspace Events target (its People resource's number)."""
    me = apis.call(apis.service("people").people().get(
        resourceName="people/me", personFields="metadata"), "GET people/me")
    number = str(me.get("resourceName") or "").rsplit("/", 1)[-1]
    if not number or number == "me":
        raise NotFound("Google did not say the connected account's user id")
    return f"//cloudidentity.googleapis.com/users/{number}"


def _existing(apis: GoogleApis, target: str) -> dict | None:
    """The identity's subscription for `target` with our event types, if Google has one."""
    types = " OR ".join(f'event_types:"{t}"' for t in EVENT_TYPES)
    listed = apis.pages(apis.service("events").subscriptions().list, "subscriptions",
                        "GET subscriptions", filter=f'({types}) AND target_resource="{target}"')
    return next((s for s in listed if s.get("state") != "DELETED"), None)


def _store(source: MeetSource, who: str, made: dict, row_id: int | None = None) -> None:
    expires = _time(made.get("expireTime")) or utcnow() + timedelta(days=1)
    state = "suspended" if made.get("state") == "SUSPENDED" else "active"
    with session_scope() as session:
        row = session.get(PushSubscription, row_id) if row_id else session.exec(
            select(PushSubscription).where(PushSubscription.provider == PROVIDER,
                                           PushSubscription.external_id == made["name"])
        ).first()
        for stale in session.exec(select(PushSubscription).where(
                PushSubscription.connection_id == source.connection_id,
                PushSubscription.resource == who,
                PushSubscription.status == "failed")).all():
            session.delete(stale)
        row = row or PushSubscription(org_id=source.org_id, connection_id=source.connection_id,
                                      provider=PROVIDER, external_id=str(made["name"]),
                                      resource=who, secret_hash="", expires_at=expires)
        row.external_id, row.expires_at, row.status = str(made["name"]), expires, state
        row.last_error = f"suspended: {made.get('suspensionReason')}" if state == "suspended" \
            else None
        row.updated_at = utcnow()
        session.add(row)


def _end(row_id: int, status: str, note: str | None, *, expires_at: datetime | None = None
         ) -> None:
    with session_scope() as session:
        row = session.get(PushSubscription, row_id)
        row.status, row.last_error, row.updated_at = status, note, utcnow()
        if expires_at is not None:
            row.expires_at = expires_at
        session.add(row)


def _failed(source: MeetSource, who: str, problem: str) -> None:
    """Record that the identity has no live subscription, and why (one row per identity)."""
    with session_scope() as session:
        placeholder = f"unsubscribed:{source.connection_id}:{who}"
        row = session.exec(select(PushSubscription).where(
            PushSubscription.provider == PROVIDER,
            PushSubscription.external_id == placeholder)).first()
        row = row or PushSubscription(org_id=source.org_id, connection_id=source.connection_id,
                                      provider=PROVIDER, external_id=placeholder, resource=who,
                                      secret_hash="", expires_at=utcnow())
        row.status, row.last_error, row.updated_at = "failed", problem, utcnow()
        session.add(row)


def _http_status(code) -> int:
    """An Operation's error code is a google.rpc.Code; the HTTP status it maps to."""
    return {3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 14: 503, 16: 401}.get(code, 500)
