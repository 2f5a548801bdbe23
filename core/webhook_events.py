"""Storing webhook deliveries exactly once per dedupe key, whatever the vendor re-sends."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from core.models import Connection, WebhookEvent, utcnow


@dataclass(frozen=True)
class StoredEvent:
    """The stored event's id, and whether it is to be processed now: its first delivery, or a
    redelivery that finally names a connected account."""

    id: int
    is_new: bool


def record_delivery(session: Session, *, provider: str, event_type: str, dedupe_key: str,
                    raw_body: bytes, headers: dict[str, str], org_id: int | None = None,
                    account_ref: str | None = None, sealed: str | None = None) -> StoredEvent:
    """Insert the event, or count one more delivery of the one already stored: one
    `INSERT … ON CONFLICT DO NOTHING` (PostgreSQL and SQLite alike), no savepoint."""
    values = dict(org_id=org_id, provider=provider, event_type=event_type,
                  dedupe_key=dedupe_key, raw_body=raw_body.decode("utf-8"), headers=headers,
                  verified=True, account_ref=account_ref, sealed=sealed, deliveries=1,
                  received_at=utcnow())
    insert = _insert_for(session)(WebhookEvent).values(**values).on_conflict_do_nothing(
        index_elements=["provider", "dedupe_key"]).returning(WebhookEvent.id)
    new_id = session.exec(insert).scalar()
    if new_id is not None:
        return StoredEvent(new_id, True)
    existing = session.exec(select(WebhookEvent).where(
        WebhookEvent.provider == provider, WebhookEvent.dedupe_key == dedupe_key)
        .with_for_update()).one()
    existing.deliveries += 1
    adopted = existing.org_id is None and org_id is not None
    if adopted:  # it came before its account was connected; now it can be processed
        existing.org_id, existing.processed_at, existing.error = org_id, None, None
        existing.enqueued_at = None
    session.add(existing)
    return StoredEvent(existing.id, adopted)


def _insert_for(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# The org an account's events go to, remembered for a minute by each process (found ones
# only: an account connected a moment ago is looked up again at once); connecting or
# disconnecting forgets it here, and other processes within the minute.
ACCOUNT_CACHE_S = 60.0
_accounts: dict[tuple[str, str | None], tuple[float, int]] = {}


def forget_accounts() -> None:
    _accounts.clear()


def org_for_account(session: Session, provider: str, account_ref: str | None) -> int | None:
    """The org whose active `provider` connection is for the event's vendor account; None if
    no connection is (the event is stored anyway, and its worker says what to connect)."""
    import time

    key = (provider, account_ref)
    cached = _accounts.get(key)
    if cached and time.monotonic() - cached[0] < ACCOUNT_CACHE_S:
        return cached[1]
    org_id = _org_for_account(session, provider, account_ref)
    if org_id is not None:
        _accounts[key] = (time.monotonic(), org_id)
    return org_id


def _org_for_account(session: Session, provider: str, account_ref: str | None) -> int | None:
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


def adopt_orphans(session: Session, org_id: int, provider: str,
                  account_ref: str | None = None) -> list[int]:
    """Events that arrived before their account was connected and that the org's
    connections now claim (only `account_ref`'s, when given): the org's now, unprocessed
    again. Their ids, to hand to the workers."""
    query = select(WebhookEvent).where(WebhookEvent.provider == provider,
                                       WebhookEvent.org_id.is_(None))
    if account_ref:
        query = query.where(WebhookEvent.account_ref == account_ref)
    ids = []
    for event in session.exec(query.order_by(WebhookEvent.id)):
        if org_for_account(session, provider, event.account_ref) != org_id:
            continue
        event.org_id, event.processed_at, event.error = org_id, None, None
        session.add(event)
        ids.append(event.id)
    return ids


def failed_events(session: Session, org_id: int) -> list[int]:
    """The org's events whose processing ended in an error, or that were handed to the
    broker over an hour ago and never processed (a relay or broker lost them): unprocessed
    again. Processing an event twice is harmless: the worker skips processed ones."""
    from datetime import timedelta

    stuck = (WebhookEvent.processed_at.is_(None)
             & (WebhookEvent.enqueued_at < utcnow() - timedelta(hours=1)))
    ids = []
    for event in session.exec(select(WebhookEvent).where(
            WebhookEvent.org_id == org_id, WebhookEvent.error.is_not(None) | stuck)
            .order_by(WebhookEvent.id)):
        event.processed_at, event.error = None, None
        session.add(event)
        ids.append(event.id)
    return ids


def event_payload(event: WebhookEvent, cipher) -> dict:
    """The event's body with its sealed secrets put back."""
    import json

    payload = json.loads(event.raw_body)
    if event.sealed:
        payload.update(cipher.decrypt(event.sealed))
    return payload


def mark_processed(session: Session, event_id: int, error: str | None = None) -> None:
    event = session.get(WebhookEvent, event_id)
    if event is not None:
        event.processed_at, event.error = utcnow(), error
        session.add(event)


def claim_unrelayed(session: Session, limit: int = 500) -> list[int]:
    """Mark up to `limit` stored events not yet handed to the broker (the outbox) as handed,
    oldest first, and return their ids: one conditional UPDATE, so two relays never claim
    the same event (PostgreSQL and SQLite alike)."""
    from sqlmodel import update

    # SKIP LOCKED (PostgreSQL): rows another relay is claiming are left to it, so two relays
    # neither wait on nor deadlock with each other.
    waiting = (select(WebhookEvent.id).where(WebhookEvent.enqueued_at.is_(None),
                                             WebhookEvent.processed_at.is_(None))
               .order_by(WebhookEvent.id).limit(limit).with_for_update(skip_locked=True))
    claimed = session.exec(update(WebhookEvent).where(WebhookEvent.id.in_(waiting),
                                                      WebhookEvent.enqueued_at.is_(None))
                           .values(enqueued_at=utcnow()).returning(WebhookEvent.id))
    return sorted(claimed.scalars().all())


def unclaim(session: Session, event_ids: list[int]) -> None:
    """Put events back in the outbox (the broker refused them)."""
    from sqlmodel import update

    if event_ids:
        session.exec(update(WebhookEvent).where(WebhookEvent.id.in_(event_ids))
                     .values(enqueued_at=None))
