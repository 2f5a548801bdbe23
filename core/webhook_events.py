"""Storing webhook deliveries exactly once per dedupe key, whatever the vendor re-sends."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.models import WebhookEvent, utcnow


@dataclass(frozen=True)
class StoredEvent:
    """The stored event's id, and whether this delivery was the first one."""

    id: int
    is_new: bool


def record_delivery(session: Session, *, provider: str, event_type: str, dedupe_key: str,
                    raw_body: bytes, headers: dict[str, str],
                    org_id: int | None = None) -> StoredEvent:
    """Insert the event, or count one more delivery of the one already stored."""
    try:
        with session.begin_nested():  # a savepoint: a duplicate doesn't spoil the transaction
            event = WebhookEvent(org_id=org_id, provider=provider, event_type=event_type,
                                 dedupe_key=dedupe_key, raw_body=raw_body.decode("utf-8"),
                                 headers=headers, verified=True)
            session.add(event)
        return StoredEvent(event.id, True)
    except IntegrityError:
        existing = session.exec(select(WebhookEvent).where(
            WebhookEvent.provider == provider, WebhookEvent.dedupe_key == dedupe_key)).one()
        existing.deliveries += 1
        session.add(existing)
        return StoredEvent(existing.id, False)


def mark_processed(session: Session, event_id: int, error: str | None = None) -> None:
    event = session.get(WebhookEvent, event_id)
    if event is not None:
        event.processed_at, event.error = utcnow(), error
        session.add(event)
