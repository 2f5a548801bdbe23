"""The contracts every connector implements.

A `MeetingSource` turns an external system (a folder of recordings, Zoom, Teams, Meet) into
`MeetingRecord`s for the core. Problems with one meeting are reported as `SourceProblem`s in
the same stream, so a batch goes on past a bad item; problems with the whole source (missing
folder, bad credentials) raise from `check()` or `list_meetings()`.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from core.domain import AudioTrack, CallForCrm, MeetingRecord, TeamMember, Utterance


@dataclass(frozen=True)
class SourceProblem:
    """Why one meeting could not be read: where (`origin`, `field`, `line`) and what."""

    origin: str  # a file path, an event id: whatever names the item to the user
    field: str | None  # dotted path into the item, e.g. "channels.1"; None for the whole item
    message: str
    line: int | None = None  # line in `origin`, when it is a file and the line is known

    def __str__(self) -> str:
        where = self.origin + (f":{self.line}" if self.line is not None else "")
        if self.field:
            where += f" [{self.field}]"
        return f"{where}: {self.message}"


class MeetingSource(ABC):
    """Where meetings come from. Subclasses register under `coachloop.connectors`.

    `check` and `list_meetings` are required. The other operations belong to sources that
    hold media or transcripts remotely or push events; by default they raise
    `NotImplementedError` saying which source lacks what.
    """

    name: ClassVar[str]

    @abstractmethod
    def check(self) -> None:
        """Raise `ConfigError` or `InputError` if this source cannot be used as configured."""

    @abstractmethod
    def list_meetings(self, since: datetime | None = None
                      ) -> Iterator[MeetingRecord | SourceProblem]:
        """Yield every meeting that started at or after `since` (all when None).

        A meeting that cannot be read yields one `SourceProblem` per problem instead of a
        record; the iteration continues with the next meeting.
        """

    @classmethod
    def for_webhook(cls, org_id: int | None) -> MeetingSource:
        """The source instance that handles this provider's webhook events for an org
        (resolving its connection); sources without webhooks don't override this."""
        raise NotImplementedError(f"the '{cls.name}' meeting source does not receive webhooks")

    @classmethod
    def record_for(cls, origin: str) -> MeetingRecord:
        """Re-read the one meeting whose `MeetingRecord.origin` is `origin` (what a queued
        ingest task carries instead of the record itself)."""
        raise NotImplementedError(f"the '{cls.name}' meeting source does not support record_for")

    def fetch_transcript(self, meeting: MeetingRecord) -> list[Utterance] | None:
        """Return the platform's transcript of `meeting` sorted by start, or None if none."""
        raise self._unsupported("fetch_transcript")

    def download_media(self, meeting: MeetingRecord, dest: Path) -> tuple[AudioTrack, ...]:
        """Make the meeting's audio available as local files under `dest`; return its tracks
        with local paths."""
        raise self._unsupported("download_media")

    def meetings_from_event(self, event: Any) -> Iterator[MeetingRecord | SourceProblem]:
        """Turn a verified webhook event (as stored by `webhooks/`) into meetings."""
        raise self._unsupported("meetings_from_event")

    def _unsupported(self, operation: str) -> NotImplementedError:
        return NotImplementedError(
            f"the '{getattr(self, 'name', type(self).__name__)}' meeting source "
            f"({type(self).__qualname__}) does not support {operation}")


@contextmanager
def written_into_place(dest: Path, mode: str = "wb", **open_args) -> Iterator[Any]:
    """A file to write `dest` through: a temp file beside it, renamed into place when the
    block ends and removed when it raises, so a crash never leaves a partial file under the
    final name (a later read trusts a file that is there)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, **open_args) as out:
            yield out
        os.replace(temp, dest)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class LocalMediaSource(MeetingSource):
    """A source whose records already point at local files (a folder, or media downloaded
    while the record was built): the transcript is read and the tracks are used in place."""

    def fetch_transcript(self, meeting: MeetingRecord) -> list[Utterance] | None:
        """The record's platform transcript, parsed; None when it has none."""
        from core.transcripts import load_platform_transcript

        if meeting.transcript_path is None:
            return None
        return load_platform_transcript(meeting.transcript_path)

    def download_media(self, meeting: MeetingRecord, dest: Path) -> tuple[AudioTrack, ...]:
        """The record's tracks as they are: the files are local already (`dest` unused)."""
        return meeting.tracks


# ------------------------------------------------------------------------ CRMs ----


@dataclass(frozen=True)
class DealMatch:
    """The deal a call belongs to (None when there is none, or it is ambiguous) and why."""

    record_id: str | None
    reason: str
    contact_ids: tuple[str, ...] = ()  # the buyers' CRM contacts (a call is logged on them)


@dataclass(frozen=True)
class RecordWrite:
    """One record to write: by the CRM's id (`record_id`) or upserted by our external key."""

    sobject: str
    values: dict[str, Any]
    record_id: str | None = None
    key_field: str | None = None
    key: str | None = None
    links: tuple[tuple[str, str], ...] = ()  # (CRM object, id) to associate it with

    @property
    def ref(self) -> str:
        return self.record_id or f"{self.key_field}={self.key}"


@dataclass(frozen=True)
class WriteResult:
    """What the CRM said about one `RecordWrite` (same order as asked)."""

    ok: bool
    record_id: str | None = None
    created: bool = False
    error: str | None = None  # "STATUS_CODE: message"


@dataclass(frozen=True)
class SetupStep:
    """One thing a CRM lacks for write-back (a field, a group, an object): `status` is
    "to create", "created", "failed" or "conflict" (there, but unusable; `note` says why)."""

    object: str
    what: str
    status: str
    note: str = ""


@dataclass(frozen=True)
class SetupReport:
    """What a CRM setup found or did (`coachloop crm setup`)."""

    steps: list[SetupStep]
    applied: bool
    notes: tuple[str, ...] = ()


class CrmWriter(ABC):
    """A CRM we write methodology fields, call activities and skill scores to (DESIGN §4)."""

    name: ClassVar[str]
    connection_id: int | None = None  # the Connection it writes through (cursors, leases)
    associates: ClassVar[bool] = False  # links records by association (`RecordWrite.links`)

    @abstractmethod
    def check(self) -> None:
        """Raise if the CRM cannot be reached or the connection cannot write."""

    @abstractmethod
    def describe(self, objects: list[str]) -> dict:
        """`mappings.ObjectInfo` per lower-cased object name, for the objects that exist."""

    @abstractmethod
    def find_deals(self, calls: list[CallForCrm]) -> dict[int, DealMatch]:
        """The open deal each call (by meeting id) belongs to, with the reason."""

    @abstractmethod
    def find_users(self, emails: list[str]) -> dict[str, str]:
        """CRM user ids by lower-cased e-mail, for the ones that exist."""

    def list_users(self) -> list[TeamMember]:
        """The CRM's active users (name, e-mail, manager), for the org's roster."""
        return []

    def skill_scores_as(self) -> str:
        """"object": skill scores go to the mapping's skill-score object; "deal_properties":
        this CRM account has no such object, so the deal owners' scores go onto open deals
        (the mapping's `skill_scores_on_deals`)."""
        return "object"

    @abstractmethod
    def read(self, sobject: str, record_ids: list[str], fields: list[str]
             ) -> dict[str, dict[str, Any]]:
        """Current values of `fields` for each record id."""

    @abstractmethod
    def write(self, writes: list[RecordWrite]) -> list[WriteResult]:
        """Write in as few batched, idempotent calls as the CRM allows; one result each."""

    @abstractmethod
    def pull_deals(self, since: datetime | None) -> tuple[list, datetime | None]:
        """Deals (`core.domain.DealRecord`) changed since `since`, and the new high-water mark."""

    def close(self) -> None:
        """Release connections (HTTP sessions)."""


@dataclass(frozen=True)
class HostAllowList:
    """The hosts a connector may fetch from (and send its vendor's token to): exact
    `host[:port]`s (its configured API and OAuth bases) and vendor domains with their
    subdomains ("zoom.us" allows "us06web.zoom.us"). HTTPS only."""

    exact: frozenset[str]
    domains: tuple[str, ...] = ()

    @classmethod
    def of(cls, bases: list[str], domains: list[str]) -> "HostAllowList":
        from urllib.parse import urlsplit

        return cls(frozenset(urlsplit(b).netloc.lower() for b in bases if b),
                   tuple(d.lower().lstrip(".") for d in domains))

    def allows(self, url: str) -> bool:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            netloc = f"{host}:{parts.port}" if parts.port else host
        except ValueError:
            return False
        if parts.scheme != "https" or not host or parts.username or parts.password:
            return False
        return netloc in self.exact or any(
            (host == d or host.endswith("." + d)) and parts.port in (None, 443)
            for d in self.domains)
