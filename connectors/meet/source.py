"""Google Meet as a meeting source, through google-api-python-client's discovery-based
clients (Meet v2, Drive v3, Calendar v3, People v1).

A conference record becomes one `MeetingRecord`: its transcript entries (speaker, text,
times) written as a WebVTT file, each cue voiced by the speaker's e-mail where Google says
it (else their display name), so no ASR runs; without a transcript, its recording
downloaded from Drive and transcribed here. Participants: signed-in users' e-mails from the
People API (a Workspace's own users only; Google hides other accounts' e-mails), anonymous
and phone participants by name, and the guests' e-mails from the calendar invite whose Meet
code is the conference's.

Who is read: with a user connection, the conferences the connected account can see; with a
service account (domain-wide delegation), every rep of the org in turn, impersonated. Each
has a cursor (`conferences:<e-mail>`); a conference whose transcript or recording Google is
still generating holds it (up to `artifact_wait_hours`), so a later sync picks it up.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import SourceProblem, written_into_place
from connectors.connected import ConnectedSource
from connectors.meet.auth import UnknownUser
from connectors.meet.settings import READ_SCOPES
from core.connections import ConnectionBroken, save_cursor
from core.domain import AudioTrack, MeetingRecord, ParticipantInfo
from core.errors import (
    CoachloopError,
    ConfigError,
    ErrorRule,
    ErrorTable,
    InputError,
    NotFound,
    TransientError,
)
from core.settings import Settings

PAGE_SIZE = 100          # conference records, participants, entries: the APIs' maximum
PROOF_TRIES = 5          # reps tried to prove a delegation: a roster may name non-users
CHUNK = 8 * 1024 * 1024  # Drive media is fetched in ranged chunks of this size
TIMEOUT_S = 120
Progress = Callable[[float, str], None]
# The APIs the connector calls, by the name and version googleapiclient knows them.
APIS = {"meet": ("meet", "v2"), "drive": ("drive", "v3"), "calendar": ("calendar", "v3"),
        "people": ("people", "v1"), "events": ("workspaceevents", "v1")}


class MissingScope(ConnectionBroken):
    """The token lacks a scope a call needs (not granted, or not delegated)."""


class ApiDisabled(ConnectionBroken):
    """The Google Cloud project has not enabled an API the connector calls."""


GOOGLE_ERRORS = ErrorTable("Google Meet", (
    ErrorRule(code="ACCESS_TOKEN_SCOPE_INSUFFICIENT", error=MissingScope,
              message="Google refused: the token lacks a scope this needs ({message}); "
                      "reconnect Google Meet granting every scope asked (with a service "
                      "account: list the README's scopes in its domain-wide delegation)"),
    ErrorRule(code="SERVICE_DISABLED", error=ApiDisabled,
              message="Google refused: {message}; enable the API in the Google Cloud console "
                      "(APIs & Services → Library) for the project of coachloop's OAuth "
                      "client or service account"),
    ErrorRule(status=401, error=ConnectionBroken,
              message="Google refused a fresh token too ({message}); reconnect Google Meet"),
    ErrorRule(status=429, error=TransientError, retry_after=60,
              message="Google's quota for the Meet APIs was reached; trying again later"),
))


def google_error(status: int, content: bytes | str, headers: Any, where: str
                 ) -> CoachloopError:
    """The classified error for one Google answer: `{"error": {code, message, status,
    details: [{"@type": …ErrorInfo, reason}]}}`; the ErrorInfo reason, when there is one, is
    the code the table matches."""
    from core.retry import retry_after

    try:
        body = json.loads(content or b"{}")
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    reasons = [str(d.get("reason")) for d in error.get("details") or ()
               if isinstance(d, dict) and d.get("reason")]
    code = reasons[0] if reasons else str(error.get("status") or "")
    message = str(error.get("message") or f"HTTP {status}")
    headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    detail = f"{where} → HTTP {status}, {code}: {message}"
    return GOOGLE_ERRORS.error(status, code, message, detail=detail,
                               retry_after=retry_after({"Retry-After":
                                                        headers.get("retry-after", "")}))


@functools.cache
def _discovery(api: str, version: str) -> dict:
    """The discovery document google-api-python-client ships for an API (no network)."""
    from googleapiclient.discovery_cache import get_static_doc

    text = get_static_doc(api, version)
    if text is None:
        raise ConfigError(f"google-api-python-client has no discovery document for "
                          f"{api} {version}")
    return json.loads(text)


def rfc3339(moment: datetime) -> str:
    """A timestamp as Google's APIs take it (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime | None:
    """A Google timestamp (RFC 3339, up to nanoseconds) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class GoogleApis:
    """The discovery-based clients for one identity (a user connection, or one impersonated
    rep), sharing one HTTP connection; every failure leaves as a classified error."""

    def __init__(self, settings: Settings, credentials: Any, *, who: str):
        import google_auth_httplib2
        import httplib2

        self.settings, self.who = settings, who
        self.page_size = PAGE_SIZE
        ca = settings.ca_bundle
        raw = httplib2.Http(ca_certs=str(ca) if ca else None, timeout=TIMEOUT_S)
        self.http = google_auth_httplib2.AuthorizedHttp(credentials, http=raw)
        self._services: dict[str, Any] = {}

    def endpoint(self, api: str) -> str:
        """Where `api`'s calls go: the configured root (an emulator) + its service path, or
        Google's own root URL from the discovery document."""
        doc = _discovery(*APIS[api])
        root = self.settings.meet.api_root
        return (root.rstrip("/") + "/" if root else doc["rootUrl"]) + doc["servicePath"]

    def service(self, api: str):
        if api not in self._services:
            from googleapiclient.discovery import build_from_document

            self._services[api] = build_from_document(
                _discovery(*APIS[api]), http=self.http,
                client_options={"api_endpoint": self.endpoint(api)})
        return self._services[api]

    def call(self, request, where: str) -> dict:
        """Execute one request; its JSON object."""
        from google.auth import exceptions as google_errors
        from googleapiclient.errors import HttpError

        from connectors.meet.auth import refresh_error

        try:
            answer = request.execute(num_retries=0)
        except HttpError as exc:
            raise google_error(exc.resp.status, exc.content, exc.resp, where) from None
        except google_errors.RefreshError as exc:
            raise refresh_error(exc, self.who) from None
        except (OSError, socket.timeout, ssl.SSLError, google_errors.TransportError) as exc:
            raise TransientError(f"Google could not be reached ({type(exc).__name__})",
                                 detail=f"{where}: {exc}") from None
        except Exception as exc:  # httplib2 raises its own error types for the wire
            if type(exc).__module__.startswith("httplib2"):
                raise TransientError(f"Google could not be reached ({type(exc).__name__})",
                                     detail=f"{where}: {exc}") from None
            raise
        if not isinstance(answer, dict):
            raise TransientError(f"Google answered {where} with something not an object")
        return answer

    def pages(self, make: Callable[..., Any], key: str, where: str, **params) -> Iterator[dict]:
        """Every item of a list method, following `nextPageToken` to the end."""
        token = None
        while True:
            page = self.call(make(**params, **({"pageToken": token} if token else {})), where)
            yield from page.get(key) or ()
            token = page.get("nextPageToken")
            if not token:
                return

    # The calls ---------------------------------------------------------------

    def conference_records(self, start: datetime, end: datetime) -> Iterator[dict]:
        """Conference records that started in [start, end) (Google lists newest first)."""
        records = self.service("meet").conferenceRecords()
        yield from self.pages(
            records.list, "conferenceRecords", "GET conferenceRecords",
            pageSize=self.page_size,
            filter=f'start_time>="{rfc3339(start)}" AND start_time<"{rfc3339(end)}"')

    def conference_record(self, name: str) -> dict:
        return self.call(self.service("meet").conferenceRecords().get(name=name),
                         f"GET {name}")

    def children(self, parent: str, kind: str) -> list[dict]:
        """A conference record's `participants`, `transcripts` or `recordings`."""
        records = self.service("meet").conferenceRecords()
        listing = getattr(records, kind)().list
        size = min(self.page_size, 250 if kind == "participants" else 100)
        return list(self.pages(listing, kind, f"GET {parent}/{kind}", parent=parent,
                               pageSize=size))

    def entries(self, transcript: str) -> Iterator[dict]:
        entries = self.service("meet").conferenceRecords().transcripts().entries()
        yield from self.pages(entries.list, "transcriptEntries", f"GET {transcript}/entries",
                              parent=transcript, pageSize=min(self.page_size, 100))

    def space(self, name: str) -> dict:
        return self.call(self.service("meet").spaces().get(name=name), f"GET {name}")

    def person(self, user: str) -> dict:
        """A signed-in participant's profile (`users/123` → `people/123`)."""
        resource = "people/" + user.rsplit("/", 1)[-1]
        return self.call(self.service("people").people().get(
            resourceName=resource, personFields="names,emailAddresses"), f"GET {resource}")

    def events(self, start: datetime, end: datetime) -> Iterator[dict]:
        """The identity's primary-calendar events overlapping [start, end)."""
        events = self.service("calendar").events()
        yield from self.pages(events.list, "items", "GET calendars/primary/events",
                              calendarId="primary", timeMin=rfc3339(start),
                              timeMax=rfc3339(end), singleEvents=True, maxResults=250)

    def download(self, file_id: str, dest: Path, *, max_bytes: int, what: str) -> Path:
        """A Drive file's bytes to `dest` in ranged chunks (a temp file renamed into place;
        a file already there is kept: one Drive file never changes)."""
        from googleapiclient.errors import HttpError
        from googleapiclient.http import MediaIoBaseDownload

        if dest.is_file():
            return dest
        request = self.service("drive").files().get_media(fileId=file_id)
        try:
            with written_into_place(dest) as out:
                download = MediaIoBaseDownload(out, request, chunksize=CHUNK)
                done = False
                while not done:
                    try:
                        status, done = download.next_chunk(num_retries=0)
                    except HttpError as exc:
                        raise google_error(exc.resp.status, exc.content, exc.resp,
                                           f"GET drive file {file_id}") from None
                    total = status.total_size if status else None
                    if (total or 0) > max_bytes or out.tell() > max_bytes:
                        raise InputError(f"the Meet {what} is over {max_bytes} bytes, more "
                                         "than the limit (COACHLOOP_MAX_MEDIA_BYTES)")
        except (OSError, socket.timeout, ssl.SSLError) as exc:
            raise TransientError(f"the Meet {what} download failed ({type(exc).__name__})"
                                 ) from None
        return dest


class StillGenerating(TransientError):
    """Google has not finished the conference's transcript or recording yet."""


class MeetSource(ConnectedSource):
    """The Google Meet conferences of one org's connection. `origin` is
    "meet:<connection id>:<identity e-mail>:<conference record id>"."""

    name = "meet"
    label = "Google Meet"
    delivered_from = "a Google account"

    def __init__(self, settings: Settings, org_id: int, connection_id: int, vault: Any, *,
                 clock: Callable[[], datetime] | None = None):
        from core.db import session_scope
        from core.models import Connection

        super().__init__(settings, org_id, connection_id, vault, clock=clock)
        with session_scope() as session:
            row = session.get(Connection, connection_id)
            self.delegated = row.auth_kind == "delegated"
            self.account = row.account_ref
        self._apis: dict[str, GoogleApis] = {}
        self._people: dict[str, str | None] = {}
        self.page_size = PAGE_SIZE

    def apis_for(self, who: str) -> GoogleApis:
        if who not in self._apis:
            if self.delegated:
                from connectors.meet.auth import delegated_credentials

                credentials = delegated_credentials(self.settings, who, READ_SCOPES)
            else:
                from connectors.meet.auth import VaultCredentials

                credentials = VaultCredentials(self.vault, self.connection_id)
            self._apis[who] = GoogleApis(self.settings, credentials, who=who)
            self._apis[who].page_size = self.page_size
        return self._apis[who]

    def close(self) -> None:
        for apis in self._apis.values():
            for connection in getattr(apis.http.http, "connections", {}).values():
                connection.close()
        self._apis.clear()

    # Construction ----------------------------------------------------------

    @classmethod
    def record_for(cls, origin: str) -> MeetingRecord:
        """Re-read the conference of `origin`."""
        parts = origin.split(":", 3)
        if len(parts) != 4 or parts[0] != cls.name or not parts[1].isdigit() or \
                not all(parts[2:]):
            raise InputError(f"not a Meet conference origin: {origin!r} (expected "
                             "'meet:<connection>:<e-mail>:<conference record id>')")
        source = cls.for_connection(int(parts[1]))
        try:
            return source.read_conference(parts[2], parts[3])
        finally:
            source.close()

    def origin(self, who: str, record_id: str) -> str:
        return f"{self.name}:{self.connection_id}:{who}:{record_id}"

    # Operations ------------------------------------------------------------

    def check(self) -> None:
        """Raise unless Meet lists conferences for the connection's identity (with a
        delegation: for the first of the reps that Google knows as a Workspace user, since a
        roster may name people who are not)."""
        since = rfc3339(self._clock() - timedelta(days=1))
        refused = None
        for who in (self.identities() or [self.account])[:PROOF_TRIES]:
            apis = self.apis_for(who)
            try:
                apis.call(apis.service("meet").conferenceRecords().list(
                    pageSize=1, filter=f'start_time>="{since}"'), "GET conferenceRecords")
                return
            except UnknownUser as exc:
                refused = exc  # not a user there: try the next rep
        if refused is not None:
            raise refused

    def identities(self) -> list[str]:
        """Whose conferences are read: the org's reps (delegation) or the connected
        account."""
        return self.rep_emails() if self.delegated else [self.account]

    def cursor_stream(self, who: str) -> str:
        return f"conferences:{who.lower()}"

    def list_meetings(self, since: datetime | None = None, *, progress: Progress | None = None
                      ) -> Iterator[MeetingRecord | SourceProblem]:
        """Yield the conferences of each identity from `since` (default: where its last sync
        stopped, less `meet.lookback_days`; the first time, `meet.backfill_days` ago) to now,
        oldest first, the cursor saved after each identity's whole window."""
        now = self._clock()
        identities = self.identities()
        for index, who in enumerate(identities):
            stream = self.cursor_stream(who)
            start = self.window_start(stream, since, now)
            apis = self.apis_for(who)
            try:
                records = list(apis.conference_records(start, now))
            except UnknownUser as exc:
                yield SourceProblem(f"meet:{who}", None, exc.message)  # this rep only
                continue
            records.sort(key=lambda r: (r.get("startTime") or "", r.get("name") or ""))
            hold: datetime | None = None
            for record in records:
                record_id = str(record.get("name") or "").rsplit("/", 1)[-1]
                item, held = self.read_one(self.origin(who, record_id),
                                           lambda r=record, w=who: self._record(w, r, now),
                                           _time(record.get("startTime")))
                if held is not None:
                    hold = held if hold is None else min(hold, held)
                if item is not None:
                    yield item
            save_cursor(self.connection_id, stream, (now if hold is None else hold).isoformat())
            if progress:
                progress((index + 1) / len(identities), f"Google Meet conferences of {who}")

    def read_conference(self, who: str, record_id: str) -> MeetingRecord:
        """One conference as Google has it now."""
        record = self.apis_for(who).conference_record(f"conferenceRecords/{record_id}")
        found = self._record(who, record, self._clock())
        if found is None:
            raise NotFound(f"Meet conference {record_id} has no transcript or recording")
        return found

    def meetings_from_event(self, event: Any) -> Iterator[MeetingRecord | SourceProblem]:
        """The conference a Meet event names (a generated transcript or recording), read
        as the identity whose subscription it came through; a subscription's lifecycle
        event is acted on (renewed, recreated, its suspension recorded)."""
        from connectors.meet.subscriptions import on_lifecycle
        from connectors.meet.webhooks import LIFECYCLE, event_refs

        kind, subscription, conference = event_refs(event)
        if kind.startswith(LIFECYCLE):
            on_lifecycle(self, subscription, kind, (event or {}).get("data") or {})
            return
        who = self._subscriber(subscription)
        if who is None or conference is None:
            yield SourceProblem(f"meet:{subscription or '?'}", None, "the event names no "
                                "conference, or came through a subscription this connection "
                                "does not hold")
            return
        record_id = conference.rsplit("/", 1)[-1]
        try:
            yield self.read_conference(who, record_id)
        except StillGenerating as exc:
            yield SourceProblem(self.origin(who, record_id), None,
                                f"{exc.message}; a later sync reads it")

    def _subscriber(self, subscription: str) -> str | None:
        """The identity a Workspace Events subscription of this connection watches."""
        from sqlmodel import select

        from core.db import session_scope
        from core.models import PushSubscription

        with session_scope() as session:
            return session.exec(select(PushSubscription.resource).where(
                PushSubscription.provider == self.name,
                PushSubscription.connection_id == self.connection_id,
                PushSubscription.external_id == subscription)).first()

    # One conference ----------------------------------------------------------

    def _record(self, who: str, record: dict, now: datetime) -> MeetingRecord | None:
        """The conference as a record; None when it has nothing to score (not recorded, not
        transcribed). StillGenerating while its transcript or recording is being made."""
        apis = self.apis_for(who)
        name = str(record["name"])
        started = _time(record.get("startTime"))
        if started is None:
            raise InputError(f"Meet conference {name} has no valid start time")
        ended = _time(record.get("endTime"))
        if ended is None:
            raise StillGenerating(f"Meet conference {name} has not ended")
        transcripts = apis.children(name, "transcripts")
        recordings = [] if any(t.get("state") == "FILE_GENERATED" for t in transcripts) \
            else apis.children(name, "recordings")
        ready_transcript = _newest_ready(transcripts)
        ready_recording = _newest_ready(recordings)
        waiting = [a for a in (*transcripts, *recordings) if a.get("state") != "FILE_GENERATED"]
        if ready_transcript is None and waiting and \
                now - ended < timedelta(hours=self.settings.meet.artifact_wait_hours):
            raise StillGenerating(f"Google is still generating this conference's "
                                  f"{'transcript' if transcripts else 'recording'}")
        if ready_transcript is None and ready_recording is None:
            if waiting:
                raise InputError(f"Google never finished this conference's transcript or "
                                 f"recording ({self.settings.meet.artifact_wait_hours:g} h "
                                 "after it ended)")
            return None
        participants, speakers = self._participants(apis, name)
        title, invited = self._calendar(apis, record, started, ended)
        participants = _with_invitees(participants, invited)
        folder = self.media_dir / ("c-" + hashlib.sha256(name.encode()).hexdigest()[:32])
        transcript_path, tracks, used = None, (), ready_transcript or ready_recording
        if ready_transcript is not None:
            by_name = {p.name: p.email for p in participants}
            transcript_path = str(self._write_vtt(
                apis, str(ready_transcript["name"]), started, speakers, by_name,
                folder / f"transcript-{_file_key(ready_transcript['name'])}.vtt"))
        else:
            file_id = str((ready_recording.get("driveDestination") or {})["file"])
            path = apis.download(file_id, folder / f"recording-{_file_key(file_id)}.mp4",
                                 max_bytes=self.settings.max_media_bytes, what="recording")
            tracks = (AudioTrack(path=str(path)),)
        record_id = name.rsplit("/", 1)[-1]
        people = tuple(participants)
        return MeetingRecord(
            source=self.name, external_id=record_id, title=title, started_at=started,
            participants=people, tracks=tracks, transcript_path=transcript_path,
            content_hash=_content_hash(name, title, used, people),
            origin=self.origin(who, record_id))

    def _participants(self, apis: GoogleApis, conference: str
                      ) -> tuple[list[ParticipantInfo], dict[str, str]]:
        """(the people on the call, {participant resource name: display name}); signed-in
        users' e-mails from the People API where Google shows them."""
        people: list[ParticipantInfo] = []
        names: dict[str, str] = {}
        for participant in apis.children(conference, "participants"):
            signed_in = participant.get("signedinUser") or {}
            other = participant.get("anonymousUser") or participant.get("phoneUser") or {}
            name = str(signed_in.get("displayName") or other.get("displayName") or "")
            email = self._email_of(apis, str(signed_in["user"])) if signed_in.get("user") \
                else None
            names[str(participant.get("name") or "")] = name or email or "unknown"
            key = (email or name).lower()
            if key and not any((p.email or p.name).lower() == key for p in people):
                people.append(ParticipantInfo(name=name or email or "", email=email))
        return people, names

    def _email_of(self, apis: GoogleApis, user: str) -> str | None:
        if user not in self._people:
            try:
                person = apis.person(user)
            except (NotFound, MissingScope):
                person = {}
            addresses = person.get("emailAddresses") or []
            primary = next((a for a in addresses if (a.get("metadata") or {}).get("primary")),
                           addresses[0] if addresses else {})
            self._people[user] = str(primary.get("value") or "").strip() or None
        return self._people[user]

    def _calendar(self, apis: GoogleApis, record: dict, started: datetime, ended: datetime
                  ) -> tuple[str, list[ParticipantInfo]]:
        """(the calendar event's title, its attendees) for the conference's Meet code."""
        space = apis.space(str(record["space"])) if record.get("space") else {}
        code = str(space.get("meetingCode") or "")
        fallback = f"Google Meet {code}".strip()
        if not code:
            return fallback, []
        try:
            events = list(apis.events(started - timedelta(hours=12), ended + timedelta(hours=1)))
        except MissingScope:
            return fallback, []
        event = next((e for e in events
                      if (e.get("conferenceData") or {}).get("conferenceId") == code), None)
        if event is None:
            return fallback, []
        guests = [ParticipantInfo(name=str(a.get("displayName") or a["email"]),
                                  email=str(a["email"]))
                  for a in event.get("attendees") or () if a.get("email") and
                  not a.get("resource")]
        return str(event.get("summary") or fallback), guests

    def _write_vtt(self, apis: GoogleApis, transcript: str, started: datetime,
                   speakers: dict[str, str], emails: dict[str, str | None], dest: Path
                   ) -> Path:
        """The transcript's entries as WebVTT voiced by e-mail (else name), timed from the
        conference's start; kept once written (a generated transcript does not change)."""
        if dest.is_file():
            return dest
        lines = ["WEBVTT", ""]
        written = size = 0
        for entry in apis.entries(transcript):
            begin, end = _time(entry.get("startTime")), _time(entry.get("endTime"))
            text = " ".join(str(entry.get("text") or "").split())
            if begin is None or end is None or not text:
                continue
            speaker = speakers.get(str(entry.get("participant") or ""), "unknown")
            voice = emails.get(speaker) or speaker
            cue = [f"{_cue(begin - started)} --> {_cue(max(end, begin) - started)}",
                   f"<v {voice}>{text}</v>", ""]
            lines += cue
            written += 1
            size += sum(len(line.encode()) + 1 for line in cue)
            if size > self.settings.max_transcript_bytes:
                raise InputError("the Meet transcript is larger than the limit "
                                 "(COACHLOOP_MAX_TRANSCRIPT_BYTES)")
        if not written:
            raise InputError(f"the Meet transcript {transcript} has no entries")
        with written_into_place(dest, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))
        return dest


def _with_invitees(participants: list[ParticipantInfo], invited: list[ParticipantInfo]
                   ) -> list[ParticipantInfo]:
    """Participants whose e-mail Google hid, given it from the invite by name; while some
    stay unknown (anonymous, renamed), the invitees not seen are added as well, so identity
    resolution has every e-mail the meeting could have had."""
    known = {p.email.lower() for p in participants if p.email}
    unseen = [i for i in invited if i.email and i.email.lower() not in known]
    out = list(participants)
    for index, person in enumerate(out):
        if person.email is None:
            match = next((i for i in unseen if i.name.strip().lower() ==
                          person.name.strip().lower()), None)
            if match is not None:
                out[index] = ParticipantInfo(name=person.name, email=match.email)
                unseen.remove(match)
    if any(p.email is None for p in out):
        out += unseen
    return out


def _newest_ready(artifacts: list[dict]) -> dict | None:
    ready = [a for a in artifacts if a.get("state") == "FILE_GENERATED"]
    return max(ready, key=lambda a: str(a.get("endTime") or a.get("startTime") or ""),
               default=None)


def _cue(offset: timedelta) -> str:
    total = max(0.0, offset.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{seconds:06.3f}"


def _file_key(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:24]


def _content_hash(name: str, title: str, used: dict | None,
                  participants: tuple[ParticipantInfo, ...]) -> str:
    """sha256 over what Google says of the conference (ids and times of what we use):
    stable across re-reads, so re-ingesting an unchanged conference is a no-op."""
    used = used or {}
    described = {"conference": name, "title": title,
                 "artifact": [used.get("name"), used.get("startTime"), used.get("endTime")],
                 "participants": [[p.name, p.email] for p in participants]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

