"""`TeamsSource`: the transcripts and recordings of the org's reps' Teams meetings, read with
Microsoft Graph's app-only API (polled, or pushed by change notifications).

For each rep (the org's roster, found in the tenant by e-mail) Graph lists every transcript
and recording of the meetings they organized (`getAllTranscripts` / `getAllRecordings`, one
OData function call with a time window, paged by `@odata.nextLink`). One occurrence of a
meeting (a recurring meeting has many, under one meeting id) is one record: its transcript as
WebVTT with `<v Name>` voice tags when Teams made one (no ASR), else its recording streamed to
disk. Participants come from the online meeting (tenant users, by Entra id and UPN) and from
the organizer's calendar event (external guests by e-mail). See
/work/shared/reference/meetings.md §2.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from connectors.base import HostAllowList, SourceProblem, written_into_place
from connectors.connected import ConnectedSource
from core.connections import ConnectionBroken, save_cursor
from core.domain import AudioTrack, MeetingRecord, ParticipantInfo
from core.errors import (
    CoachloopError,
    ErrorRule,
    ErrorTable,
    InputError,
    NotFound,
    TransientError,
)
from core.settings import Settings

PAGE_SIZE = 100
MAX_BATCH = 20  # requests in one JSON batch (Graph's limit)
TIMEOUT = httpx.Timeout(30.0, read=120.0)
_CHUNK = 1 << 16
Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------ errors ----


class AccessPolicyMissing(CoachloopError):
    """No Teams application access policy lets the app read this user's meetings."""


class TranscriptsDisabled(CoachloopError):
    """The tenant turned off Graph access to meeting transcripts."""


class MissingPermission(ConnectionBroken):
    """The app lacks an application permission (or the admin's consent to it)."""


GRAPH_ERRORS = ErrorTable("Microsoft Teams", (
    ErrorRule(code="NoApplicationAccessPolicy", error=AccessPolicyMissing,
              message="Microsoft Teams refused: no application access policy lets coachloop "
                      "read this user's meetings; a Teams admin grants one with "
                      "New-CsApplicationAccessPolicy and Grant-CsApplicationAccessPolicy "
                      "(README: Microsoft Teams)"),
    ErrorRule(code="GraphAccessToTranscriptsDisabled", error=TranscriptsDisabled,
              message="your tenant has turned off Graph access to Teams transcripts; "
                      "coachloop transcribes the recordings instead ({message})"),
    ErrorRule(status=401, error=ConnectionBroken,
              message="Microsoft Graph refused a new token too ({message}); reconnect Teams"),
    ErrorRule(status=403, error=MissingPermission,
              message="Microsoft Teams refused: {message}; the app registration needs the "
                      "application permissions in the README, with an admin's consent "
                      "(reconnect Teams after adding them)"),
))


def raise_for_graph(response: httpx.Response) -> None:
    """Raise the classified error for a Graph error answer."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    raise graph_error(response.status_code, body, response.headers,
                      f"{response.request.method} {_path(str(response.request.url))}",
                      response.reason_phrase)


def graph_error(status: int, body: Any, headers: Any, where: str, reason: str = ""
                ) -> CoachloopError:
    """The classified error for one Graph answer (a response, or one step of a batch): its
    envelope is `{"error": {code, message, innerError: {code?, request-id, date}}}`."""
    from core.retry import retry_after

    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    inner = error.get("innerError") or error.get("innererror") or {}
    inner = inner if isinstance(inner, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or reason or "")
    if status == 403 and "application access policy" in message.lower():
        code = "NoApplicationAccessPolicy"
    elif inner.get("code") == "GraphAccessToTranscriptsDisabled":
        code = "GraphAccessToTranscriptsDisabled"
    headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    request_id = inner.get("request-id") or headers.get("request-id") or "?"
    detail = f"{where} → HTTP {status}, {code}: {message} (request-id {request_id})"
    return GRAPH_ERRORS.error(status, code, message, detail=detail,
                              retry_after=retry_after({"Retry-After": headers.get("retry-after",
                                                                                   "")}))


def _path(url: str) -> str:
    """A URL without its query, for error details."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _too_big(what: str, size: int, limit: int) -> InputError:
    return InputError(f"the Teams {what} is over {limit} bytes ({size}), more than the limit "
                      "(COACHLOOP_MAX_MEDIA_BYTES)")


# ------------------------------------------------------------------------- Graph ----


def graph_time(moment: datetime) -> str:
    """A Graph `DateTimeOffset` literal (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphApi:
    """Microsoft Graph for one consented tenant: the calls the source needs, errors
    classified. `token(rejected)` gives a bearer token (a new one when passed the token Graph
    just rejected). Requests go only to the Graph host: a `@odata.nextLink` elsewhere is
    refused, and no redirect is followed."""

    def __init__(self, base: str, token: Callable[[str | None], str], *,
                 verify: Any = True, page_size: int = PAGE_SIZE):
        from core.oauth import tls_verify

        self.base = base.rstrip("/")
        self.page_size = page_size
        self.hosts = HostAllowList.of([self.base], [])
        self._token_for = token
        self._token: str | None = None
        self.client = httpx.Client(verify=tls_verify(verify), timeout=TIMEOUT, trust_env=False,
                                   follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def _send(self, url: str, params: dict | None, *, accept: str = "application/json",
              stream: bool = False, method: str = "GET", body: dict | None = None
              ) -> httpx.Response:
        if not self.hosts.allows(url):
            raise InputError(f"refusing to fetch from {urlsplit(url).netloc or url!r}: not "
                             "the Microsoft Graph host (COACHLOOP_TEAMS__GRAPH_BASE)")
        for attempt in range(2):
            if self._token is None or attempt:
                self._token = self._token_for(self._token if attempt else None)
            request = self.client.build_request(method, url, params=params, json=body, headers={
                "Authorization": f"Bearer {self._token}", "Accept": accept})
            try:
                response = self.client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise TransientError(f"Microsoft Graph could not be reached "
                                     f"({type(exc).__name__})",
                                     detail=f"{method} {_path(url)}: {exc}") from None
            if response.status_code != 401 or attempt:
                break
            response.close()
        if response.status_code >= 400:
            if stream:
                response.read()
            raise_for_graph(response)
        return response

    def get(self, path_or_url: str, params: dict | None = None) -> dict:
        url = path_or_url if path_or_url.startswith("https://") or path_or_url.startswith(
            "http://") else f"{self.base}{path_or_url}"
        body = self._send(url, params).json()
        if not isinstance(body, dict):
            raise TransientError("Microsoft Graph answered something that is not an object")
        return body

    def change(self, method: str, path: str, body: dict | None = None) -> dict:
        """POST, PATCH or DELETE a Graph object; its JSON answer ({} when it has none)."""
        response = self._send(f"{self.base}{path}", None, method=method, body=body)
        if not response.content:
            return {}
        answer = response.json()
        return answer if isinstance(answer, dict) else {}

    def pages(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a collection, following `@odata.nextLink` to the end."""
        page = self.get(path, params)
        while True:
            yield from page.get("value") or ()
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get(str(link))

    # The endpoints ---------------------------------------------------------

    def batch_get(self, paths: dict[str, str]) -> dict[str, dict | CoachloopError]:
        """GETs (paths with their query, relative to the Graph base) sent in JSON batches of
        `MAX_BATCH`: one request per twenty. Each answer is its body, or its classified
        error; a throttled step raises (the whole sync waits)."""
        from core.errors import TransientError

        answers: dict[str, dict | CoachloopError] = {}
        items = list(paths.items())
        for start in range(0, len(items), MAX_BATCH):
            chunk = items[start:start + MAX_BATCH]
            response = self._send(f"{self.base}/$batch", None, method="POST", body={
                "requests": [{"id": key, "method": "GET", "url": path} for key, path in chunk]})
            for answer in response.json().get("responses") or ():
                key, status = str(answer.get("id")), int(answer.get("status") or 500)
                body = answer.get("body")
                if status < 400:
                    answers[key] = body if isinstance(body, dict) else {}
                    continue
                error = graph_error(status, body, answer.get("headers") or {},
                                    f"GET {self.base}{dict(chunk).get(key, '')} (batched)")
                if isinstance(error, TransientError):
                    raise error
                answers[key] = error
        missing = set(paths) - set(answers)
        if missing:
            raise TransientError(f"Microsoft Graph's batch answer left out {len(missing)} "
                                 "request(s)")
        return answers

    def users_by_email(self, emails: list[str]) -> dict[str, dict | None]:
        """The tenant user with each e-mail (mail or UPN), or None; looked up in batches."""
        def lookup(email: str) -> str:
            quoted = email.replace("'", "''")
            return "/users?" + urlencode({
                "$filter": f"mail eq '{quoted}' or userPrincipalName eq '{quoted}'",
                "$select": "id,displayName,mail,userPrincipalName"}, quote_via=quote)

        found = self.batch_get({str(i): lookup(email) for i, email in enumerate(emails)})
        users = {}
        for i, email in enumerate(emails):
            answer = found[str(i)]
            if isinstance(answer, CoachloopError):
                raise answer
            listed = answer.get("value") or []
            users[email] = listed[0] if listed else None
        return users

    def user(self, user_id: str) -> dict:
        return self.get(f"/users/{quote(user_id, safe='')}",
                        {"$select": "id,displayName,mail,userPrincipalName"})

    def artifacts(self, kind: str, organizer_id: str, start: datetime, end: datetime
                  ) -> Iterator[dict]:
        """Every transcript (`kind` "Transcripts") or recording ("Recordings") of the
        meetings `organizer_id` organized, created in [start, end)."""
        organizer = organizer_id.replace("'", "''")
        path = (f"/users/{quote(organizer_id, safe='')}/onlineMeetings/getAll{kind}("
                f"meetingOrganizerUserId='{organizer}',startDateTime={graph_time(start)},"
                f"endDateTime={graph_time(end)})")
        yield from self.pages(path, {"$top": self.page_size})

    def meeting(self, organizer_id: str, meeting_id: str) -> dict:
        return self.get(f"/users/{quote(organizer_id, safe='')}/onlineMeetings/"
                        f"{quote(meeting_id, safe='')}")

    def meeting_artifacts(self, kind: str, organizer_id: str, meeting_id: str) -> list[dict]:
        """One meeting's transcripts (`kind` "transcripts") or recordings ("recordings")."""
        return list(self.pages(f"/users/{quote(organizer_id, safe='')}/onlineMeetings/"
                               f"{quote(meeting_id, safe='')}/{kind}"))

    def calendar(self, user_id: str, start: datetime, end: datetime) -> list[dict]:
        """The user's calendar events between two moments."""
        return list(self.pages(f"/users/{quote(user_id, safe='')}/calendarView", {
            "startDateTime": graph_time(start), "endDateTime": graph_time(end),
            "$select": "subject,start,end,organizer,attendees,onlineMeeting,isOnlineMeeting",
            "$top": 50}))

    def download(self, path: str, dest: Path, *, accept: str, params: dict | None,
                 max_bytes: int, what: str) -> Path:
        """Stream a content endpoint to `dest` (a temp file renamed into place, so a crash
        never leaves a partial file under the final name), at most `max_bytes`. A file
        already there is kept: `dest` names one transcript or recording, which never
        changes, and Microsoft bills each content download."""
        if dest.is_file():
            return dest
        response = self._send(f"{self.base}{path}", params, accept=accept, stream=True)
        announced = response.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > max_bytes:
            response.close()
            raise _too_big(what, int(announced), max_bytes)
        written = 0
        try:
            with written_into_place(dest) as out:
                for chunk in response.iter_bytes(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_big(what, written, max_bytes)
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise TransientError(f"the Teams {what} download failed ({type(exc).__name__})"
                                 ) from None
        finally:
            response.close()
        return dest


# ---------------------------------------------------------------------- source ----


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an online meeting: its transcript and/or recording (Graph links the
    two by `contentCorrelationId`)."""

    organizer_id: str
    meeting_id: str
    key: str
    transcript: dict | None
    recording: dict | None

    @property
    def created(self) -> datetime | None:
        return min((t for t in (_time((self.transcript or {}).get("createdDateTime")),
                                _time((self.recording or {}).get("createdDateTime")))
                    if t is not None), default=None)


def occurrences(organizer_id: str, transcripts: list[dict], recordings: list[dict]
                ) -> list[Occurrence]:
    """Transcripts and recordings grouped per meeting occurrence, oldest first."""
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    for kind, items in (("transcript", transcripts), ("recording", recordings)):
        for item in items:
            meeting_id = str(item.get("meetingId") or "")
            key = str(item.get("contentCorrelationId") or item.get("callId") or item.get("id")
                      or "")
            if meeting_id and key:
                grouped.setdefault((meeting_id, key), {}).setdefault(kind, item)
    found = [Occurrence(organizer_id, meeting_id, key, parts.get("transcript"),
                        parts.get("recording"))
             for (meeting_id, key), parts in grouped.items()]
    return sorted(found, key=lambda o: (o.created or datetime.max.replace(tzinfo=UTC), o.key))


class TeamsSource(ConnectedSource):
    """The Teams meetings of one org's consented tenant. `origin` is
    "teams:<connection id>:<organizer id>:<meeting id>:<occurrence key>"."""

    name = "teams"
    label = "Teams"
    delivery = "notification"
    delivered_from = "a tenant"

    def __init__(self, settings: Settings, org_id: int, connection_id: int, vault: Any, *,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(settings, org_id, connection_id, vault, clock=clock)
        self.api = GraphApi(settings.teams.graph_base, self._token,
                            verify=settings.ca_bundle or True)

    # Construction ----------------------------------------------------------

    @classmethod
    def record_for(cls, origin: str) -> MeetingRecord:
        """Re-read the meeting occurrence of `origin`."""
        parts = origin.split(":", 4)
        if len(parts) != 5 or parts[0] != cls.name or not parts[1].isdigit() or \
                not all(parts[2:]):
            raise InputError(f"not a Teams meeting origin: {origin!r} (expected "
                             "'teams:<connection>:<organizer>:<meeting>:<occurrence>')")
        source = cls.for_connection(int(parts[1]))
        try:
            return source.read_occurrence(parts[2], parts[3], parts[4])
        finally:
            source.close()

    def origin(self, occurrence: Occurrence) -> str:
        return (f"{self.name}:{self.connection_id}:{occurrence.organizer_id}:"
                f"{occurrence.meeting_id}:{occurrence.key}")

    # Operations ------------------------------------------------------------

    def check(self) -> None:
        """Raise unless Graph answers a users list with this connection's token."""
        self.api.get("/users", {"$top": 1, "$select": "id"})

    def cursor_stream(self, organizer_id: str) -> str:
        return f"meetings:{organizer_id}"

    def organizers(self) -> Iterator[tuple[str, dict | None]]:
        """The org's reps as (e-mail, tenant user or None when the tenant has none)."""
        reps = self.rep_emails()
        found = self.api.users_by_email(reps) if reps else {}
        for email in reps:
            yield email, found[email]

    def list_meetings(self, since: datetime | None = None, *, progress: Progress | None = None
                      ) -> Iterator[MeetingRecord | SourceProblem]:
        """Yield the org's reps' recorded or transcribed Teams meetings from `since` (default:
        where each rep's last sync stopped, less `teams.lookback_days`; the first time,
        `teams.backfill_days` ago) to now.

        Each rep has a cursor (everything they organized before it has been read), saved
        after their whole window is read, so a sync that dies resumes with the rep it was
        on. An occurrence that failed transiently, or whose transcript is still being made,
        holds that rep's cursor at its time and is reported as a `SourceProblem` meanwhile.
        """
        now = self._clock()
        reps = list(self.organizers())
        for index, (email, user) in enumerate(reps):
            if user is None:
                yield SourceProblem(f"teams:{email}", None, "no user in the Microsoft 365 "
                                    "tenant has this e-mail")
                continue
            organizer_id = str(user["id"])
            stream = self.cursor_stream(organizer_id)
            start = self.window_start(stream, since, now)
            try:
                transcripts = self._listed("Transcripts", organizer_id, start, now)
                recordings = self._listed("Recordings", organizer_id, start, now)
            except AccessPolicyMissing as exc:  # this rep only: say so, read everyone else's
                yield SourceProblem(f"teams:{email}", None, exc.message)
                continue
            hold: datetime | None = None
            for occurrence in occurrences(organizer_id, transcripts, recordings):
                item, held = self.read_one(self.origin(occurrence),
                                           lambda o=occurrence: self._record(o),
                                           occurrence.created)
                if held is not None:
                    hold = held if hold is None else min(hold, held)
                if item is not None:
                    yield item
            save_cursor(self.connection_id, stream, (now if hold is None else hold).isoformat())
            if progress:
                progress((index + 1) / len(reps), f"Teams meetings of {email}")

    def _listed(self, kind: str, organizer_id: str, start: datetime, end: datetime
                ) -> list[dict]:
        try:
            return list(self.api.artifacts(kind, organizer_id, start, end))
        except TranscriptsDisabled:
            return []  # the recordings are read instead (and transcribed here)

    def read_occurrence(self, organizer_id: str, meeting_id: str, key: str) -> MeetingRecord:
        """One occurrence as Graph has it now (its transcript and recording re-listed)."""
        found = [o for o in occurrences(
            organizer_id, self._meeting_listed("transcripts", organizer_id, meeting_id),
            self._meeting_listed("recordings", organizer_id, meeting_id)) if o.key == key]
        if not found:
            raise NotFound(f"Teams meeting {meeting_id} has no transcript or recording "
                           f"{key!r}")
        return self._record(found[0])

    def _meeting_listed(self, kind: str, organizer_id: str, meeting_id: str) -> list[dict]:
        try:
            return self.api.meeting_artifacts(kind, organizer_id, meeting_id)
        except TranscriptsDisabled:
            return []

    def meetings_from_event(self, event: Any) -> Iterator[MeetingRecord | SourceProblem]:
        """The occurrences a change notification names (a new transcript or recording). A
        lifecycle notification: a removed subscription is recreated, one needing
        reauthorization is reauthorized, and after `missed` notifications the reps'
        meetings are polled since their cursors."""
        from connectors.teams.subscriptions import on_lifecycle
        from connectors.teams.webhooks import artifact_refs, lifecycle_events

        for subscription_id, happened in lifecycle_events(event):
            if happened == "missed":
                yield from self.list_meetings()
            else:
                on_lifecycle(self.api, org_id=self.org_id, connection_id=self.connection_id,
                             settings=self.settings, subscription_id=subscription_id,
                             event=happened)

        for organizer_id, meeting_id, kind, artifact_id in artifact_refs(event):
            listed = self._meeting_listed(kind, organizer_id, meeting_id)
            item = next((a for a in listed if a.get("id") == artifact_id), None)
            if item is None:
                yield SourceProblem(f"teams:{meeting_id}", None, f"Graph has no {kind[:-1]} "
                                    f"{artifact_id!r} in that meeting (yet)")
                continue
            key = str(item.get("contentCorrelationId") or item.get("callId") or item["id"])
            yield self.read_occurrence(organizer_id, meeting_id, key)

    # One occurrence ----------------------------------------------------------

    def _record(self, occurrence: Occurrence) -> MeetingRecord:
        transcript, recording = occurrence.transcript, occurrence.recording
        if transcript is not None and not transcript.get("endDateTime") and recording is None:
            raise TransientError("Teams is still making this meeting's transcript")
        meeting = self.api.meeting(occurrence.organizer_id, occurrence.meeting_id)
        started = occurrence.created or _time(meeting.get("startDateTime"))
        if started is None:
            raise InputError(f"Teams meeting {occurrence.meeting_id} has no valid start time")
        participants = self._participants(occurrence.organizer_id, meeting, started)
        folder = self.media_dir / ("m-" + hashlib.sha256(
            f"{occurrence.meeting_id}:{occurrence.key}".encode()).hexdigest()[:32])
        base = (f"/users/{quote(occurrence.organizer_id, safe='')}/onlineMeetings/"
                f"{quote(occurrence.meeting_id, safe='')}")
        transcript_path, tracks = None, ()
        if transcript is not None:
            transcript_path = str(self.api.download(
                f"{base}/transcripts/{quote(str(transcript['id']), safe='')}/content",
                folder / f"transcript-{_name(transcript['id'])}.vtt", accept="text/vtt",
                params={"$format": "text/vtt"},
                max_bytes=self.settings.max_transcript_bytes, what="transcript"))
        else:
            path = self.api.download(
                f"{base}/recordings/{quote(str(recording['id']), safe='')}/content",
                folder / f"recording-{_name(recording['id'])}.mp4", accept="video/mp4",
                params=None,
                max_bytes=self.settings.max_media_bytes, what="recording")
            tracks = (AudioTrack(path=str(path)),)
        return MeetingRecord(
            source=self.name, external_id=f"{occurrence.meeting_id}:{occurrence.key}",
            title=str(meeting.get("subject") or "Teams meeting"), started_at=started,
            participants=participants, tracks=tracks, transcript_path=transcript_path,
            content_hash=_content_hash(occurrence, meeting, participants),
            origin=self.origin(occurrence))

    def _participants(self, organizer_id: str, meeting: dict, started: datetime
                      ) -> tuple[ParticipantInfo, ...]:
        """The organizer first, then attendees: tenant users by UPN (else their e-mail from
        the directory), then the calendar event's guests by e-mail."""
        people: dict[str, ParticipantInfo] = {}

        def add(name: str, email: str | None) -> None:
            key = (email or name).strip().lower()
            if key and key not in people:
                people[key] = ParticipantInfo(name=name.strip() or email or "", email=email)

        roster = meeting.get("participants") or {}
        for info in [roster.get("organizer") or {}, *(roster.get("attendees") or [])]:
            user = ((info.get("identity") or {}).get("user") or {})
            email = str(info.get("upn") or "").strip() or None
            if email is None and user.get("id"):
                try:
                    found = self.api.user(str(user["id"]))
                    email = found.get("mail") or found.get("userPrincipalName")
                except NotFound:
                    email = None
            add(str(user.get("displayName") or ""), email)
        join_url = meeting.get("joinWebUrl")
        if join_url:
            for event in self.api.calendar(organizer_id, started - timedelta(hours=12),
                                           started + timedelta(hours=12)):
                if (event.get("onlineMeeting") or {}).get("joinUrl") != join_url:
                    continue
                for attendee in event.get("attendees") or ():
                    address = attendee.get("emailAddress") or {}
                    if address.get("address"):
                        add(str(address.get("name") or ""), str(address["address"]))
        return tuple(people.values())


def _name(artifact_id: Any) -> str:
    """A file name for an artifact id (Graph's ids are long base64)."""
    return hashlib.sha256(str(artifact_id).encode()).hexdigest()[:24]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _content_hash(occurrence: Occurrence, meeting: dict,
                  participants: tuple[ParticipantInfo, ...]) -> str:
    """sha256 over what Graph says about the occurrence (ids and times of what we use):
    stable across re-reads, so re-ingesting an unchanged meeting is a no-op."""
    used = occurrence.transcript or occurrence.recording or {}
    described = {"meeting": occurrence.meeting_id, "key": occurrence.key,
                 "subject": meeting.get("subject"),
                 "artifact": [used.get("id"), used.get("createdDateTime"),
                              used.get("endDateTime"), occurrence.transcript is not None],
                 "participants": [[p.name, p.email] for p in participants]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
