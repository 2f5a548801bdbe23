"""A meeting source bound to one stored OAuth connection: how it is found (by connection,
by org, by a webhook's org), where its media goes, and the access token it sends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

from connectors.base import LocalMediaSource, SourceProblem
from core.connections import ConnectionBroken, active_connection_id, read_cursor
from core.domain import MeetingRecord
from core.errors import CoachloopError, ConfigError, TransientError
from core.settings import Settings, get_settings


def rep_emails(org_id: int) -> list[str]:
    """The org's reps' e-mails, sorted: whose meetings a source reads."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import User

    with session_scope() as session:
        return list(session.exec(select(User.email).where(
            User.org_id == org_id, User.role == "rep").order_by(User.email)).all())


class ConnectedSource(LocalMediaSource):
    """Subclasses set `name` (the vendor), `label` (its name for people) and what a webhook
    delivery is called and comes from (`delivery`, `delivered_from`); they build `self.api`."""

    label: ClassVar[str]
    delivery: ClassVar[str] = "event"
    delivered_from: ClassVar[str] = "an account"
    api: Any

    def __init__(self, settings: Settings, org_id: int, connection_id: int, vault: Any, *,
                 clock: Callable[[], datetime] | None = None):
        self.settings = settings
        self.org_id = org_id
        self.connection_id = connection_id
        self.vault = vault
        self._clock = clock or (lambda: datetime.now(UTC))
        self.media_dir = Path(settings.data_dir).resolve() / "media" / self.name / str(org_id)

    def _token(self, rejected: str | None) -> str:
        return self.vault.access_token(self.connection_id, rejected=rejected).access_token

    @classmethod
    def for_connection(cls, connection_id: int, settings: Settings | None = None) -> Self:
        """The source for one stored connection of this vendor."""
        from connectors.oauth_apps import token_vault
        from core.db import session_scope
        from core.models import Connection

        settings = settings or get_settings()
        connect = f"`coachloop connect {cls.name}`"
        with session_scope() as session:
            connection = session.get(Connection, connection_id)
            if connection is None or connection.provider != cls.name:
                raise ConfigError(f"{cls.label} connection {connection_id} does not exist: "
                                  f"connect one with {connect}")
            if connection.status != "active":
                raise ConnectionBroken(f"the {cls.label} connection is {connection.status} "
                                       f"({connection.last_error}); reconnect it with {connect}")
            org_id = connection.org_id
        return cls(settings, org_id, connection_id, token_vault(settings))

    @classmethod
    def for_org(cls, org_id: int, settings: Settings | None = None) -> Self:
        """The source for the org's active connection (ConfigError if it has none,
        ConnectionBroken if it needs reconnecting)."""
        return cls.for_connection(active_connection_id(org_id, cls.name), settings)

    @classmethod
    def for_webhook(cls, org_id: int | None) -> Self:
        """The source for a webhook delivery's org (`webhooks/router.py` resolved it from
        the delivery; None when no connection is for where it came from)."""
        if org_id is None:
            raise ConfigError(f"this {cls.label} {cls.delivery} came from {cls.delivered_from} "
                              f"that no active {cls.label} connection is for: connect it with "
                              f"`coachloop connect {cls.name}` (the {cls.delivery} is kept)")
        return cls.for_org(org_id)

    def rep_emails(self) -> list[str]:
        return rep_emails(self.org_id)

    def window_start(self, stream: str, since: datetime | None, now: datetime) -> datetime:
        """Where a sync of cursor `stream` starts: `since` when given; else where the last
        one stopped, less the vendor's `lookback_days`; the first time, its `backfill_days`
        ago."""
        own = getattr(self.settings, self.name)
        if since is not None:
            return since if since.tzinfo else since.replace(tzinfo=UTC)
        if saved := read_cursor(self.connection_id, stream):
            return datetime.fromisoformat(saved) - timedelta(days=own.lookback_days)
        return now - timedelta(days=own.backfill_days)

    def read_one(self, origin: str, read: Callable[[], MeetingRecord | None],
                 held_at: datetime | None
                 ) -> tuple[MeetingRecord | SourceProblem | None, datetime | None]:
        """One listed meeting read into a record, or the problem that stopped it and where
        its stream's cursor must wait: a transient failure holds it at `held_at`; a throttle
        with the vendor's wait stops the whole sync (the cursor stays where it was)."""
        try:
            return read(), None
        except TransientError as exc:
            if exc.retry_after is not None:
                raise
            return SourceProblem(origin, None, f"{exc.message}; a later sync retries"), held_at
        except CoachloopError as exc:
            return SourceProblem(origin, None, exc.message), None
        except (KeyError, TypeError, ValueError) as exc:
            return SourceProblem(origin, None, f"unexpected {self.label} object "
                                 f"({type(exc).__name__}: {exc})"), None

    def close(self) -> None:
        self.api.close()
