"""`ZoomSource`: recorded Zoom meetings (cloud recordings), polled or pushed by webhook.

Zoom's REST API is reached through zoomus' components, bent in three places: the bearer token
comes from our `TokenVault` (refreshed once when Zoom answers 401), every request goes through
one `requests.Session` that ignores the environment (REQUESTS_CA_BUNDLE would override our CA
bundle) and trusts `settings.ca_bundle`, and the base URL is `settings.zoom.api_base`.
Recording files are downloaded into the data dir (temp file, then rename), so the core gets
local paths, as it does from every other source. See /work/shared/reference/meetings.md §1.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from zoomus.components.past_meeting import PastMeetingComponentV2
from zoomus.components.recording import RecordingComponentV2
from zoomus.util import API_VERSION_2

from connectors.base import HostAllowList, SourceProblem, written_into_place
from connectors.connected import ConnectedSource
from core.connections import (
    ConnectionBroken,
    read_cursor,
    save_cursor,
)
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

STREAM = "recordings"  # the SyncCursor stream; its cursor is an ISO date (see list_meetings)
RECORDING_EVENTS = ("recording.completed", "recording.transcript_completed")
MAX_WINDOW_DAYS = 30  # Zoom lists at most about a month per call
PAGE_SIZE = 300  # Zoom's maximum
PROCESSING_RETRY_S = 60.0  # when Zoom is still processing a file, look again in a minute
PROCESSING_HOLD = timedelta(days=7)  # a file processing longer than this is reported, not awaited
TIMEOUT = (10, 120)  # connect, read (seconds)
MAX_REDIRECTS = 5
_CHUNK = 1 << 16

Progress = Callable[[float, str], None]  # (fraction done, what is being read)


# ------------------------------------------------------------------------ HTTP ----


class MissingScope(CoachloopError):
    """Zoom refused for want of a scope (code 4711): a user-managed app reading another
    user's recordings, or an app without the scopes coachloop asks for."""


class StillProcessing(TransientError):
    """Zoom has not finished processing a recording file we need: look again in a minute."""

    def __init__(self, what: str = "this meeting's recording"):
        super().__init__(f"Zoom is still processing {what}", retry_after=PROCESSING_RETRY_S)


class _ThroughApi:
    """zoomus components send with module-level `requests.get` and their own token; this
    sends their requests through `ZoomApi` (our session, our tokens) instead."""

    api: ZoomApi

    def get_request(self, endpoint, params=None, headers=None):
        # zoomus also puts the path's ids into the query (`?user_id=me&meeting_id=…`);
        # Zoom ignores them, but they leak uuids into logs and proxies, so drop them.
        params = {k: v for k, v in (params or {}).items() if k not in ("user_id", "meeting_id")}
        return self.api.get(self.url_for(endpoint), params)


class _Recordings(_ThroughApi, RecordingComponentV2):
    """zoomus' `recording` component over `ZoomApi`."""


class _PastMeetings(_ThroughApi, PastMeetingComponentV2):
    """zoomus' `past_meeting` component over `ZoomApi`."""


class ZoomApi:
    """Zoom's REST API for one connection: the calls the source needs, classified errors.

    `token(rejected)` returns a bearer token; given the token Zoom just rejected, it returns
    a refreshed one (the vault refreshes unless another worker already has).
    """

    def __init__(self, base_uri: str, token: Callable[[str | None], str], *,
                 verify: str | bool = True, page_size: int = PAGE_SIZE,
                 hosts: HostAllowList | None = None):
        self.page_size = page_size
        self.base_uri = base_uri
        self.hosts = hosts or HostAllowList.of([base_uri], ["zoom.us", "zoom.com"])
        self._token_for = token
        self._token: str | None = None
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides `verify`
        self.session.verify = verify
        # zoomus' ZoomClient fetches a server-to-server token in its constructor, so we build
        # only the components we use; they read the token from `config` (unused: see above).
        config = {"version": API_VERSION_2, "token": None}
        self.recording = _Recordings(base_uri=base_uri, config=config, api=self)
        self.past_meeting = _PastMeetings(base_uri=base_uri, config=config, api=self)

    def close(self) -> None:
        self.session.close()

    def _current(self) -> str:
        if self._token is None:
            self._token = self._token_for(None)
        return self._token

    def _refreshed(self, rejected: str) -> str:
        self._token = self._token_for(rejected)
        return self._token

    def _send(self, url: str, params: dict | None, token: str | None, *,
              stream: bool = False) -> requests.Response:
        """GET `url`; redirects are followed here, one hop at a time, each checked against
        the allow-list, and the token goes only to the host that was asked first."""
        headers = {"Accept": "application/json"}
        first = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            if not self.hosts.allows(url):
                raise InputError(f"refusing to fetch from {urlsplit(url).netloc or url!r}: "
                                 "not one of Zoom's hosts (COACHLOOP_ZOOM__DOWNLOAD_DOMAINS)")
            if token and urlsplit(url).netloc == first:
                headers["Authorization"] = f"Bearer {token}"
            else:
                headers.pop("Authorization", None)
            try:
                response = self.session.get(url, params=params, stream=stream,
                                            timeout=TIMEOUT, headers=headers,
                                            allow_redirects=False)
            except requests.RequestException as exc:
                raise TransientError(f"Zoom could not be reached ({type(exc).__name__})",
                                     detail=f"GET {_path(url)}: {exc}") from None
            if not response.is_redirect:
                return response
            response.close()
            url, params = requests.compat.urljoin(url, response.headers["location"]), None
        raise TransientError(f"Zoom redirected more than {MAX_REDIRECTS} times",
                             detail=f"GET {_path(url)}")

    def get(self, url: str, params: dict | None = None) -> requests.Response:
        """GET with our bearer token; on 401 one refresh and one retry; errors classified."""
        token = self._current()
        response = self._send(url, params, token)
        if response.status_code == 401:
            response = self._send(url, params, self._refreshed(token))
        raise_for_zoom(response)
        return response

    # The endpoints ---------------------------------------------------------

    def me(self) -> dict:
        """`GET /users/me`: the user the token acts for (a cheap check that it works)."""
        return self.get(f"{self.base_uri}/users/me").json()

    def list_recordings(self, frm: date, to: date, page_token: str | None = None, *,
                        user_id: str = "me") -> dict:
        """One page of a user's recordings that started between two dates ("me": the
        connected user; another user's e-mail needs an admin-managed app)."""
        params: dict[str, Any] = {"from": frm.isoformat(), "to": to.isoformat(),
                                  "page_size": self.page_size}
        if page_token:
            params["next_page_token"] = page_token
        return self.recording.list(user_id=user_id, **params).json()

    def meeting_recordings(self, uuid: str) -> dict:
        """One meeting's recording files, participant audio files included."""
        # zoomus' recording.get does not encode the uuid (its past_meeting calls do).
        return self.recording.get(meeting_id=encode_uuid(uuid)).json()

    def participants(self, uuid: str) -> list[dict]:
        """Everyone who joined the meeting (one row per join); [] if Zoom has no record."""
        rows: list[dict] = []
        page_token = ""
        while True:
            try:
                page = self.past_meeting.get_participants(
                    meeting_id=encode_uuid(uuid), page_size=self.page_size,
                    next_page_token=page_token).json()
            except NotFound:  # 3001: too old, or not a meeting this account hosted
                return rows
            rows += page.get("participants") or []
            page_token = page.get("next_page_token") or ""
            if not page_token:
                return rows

    def download(self, url: str, dest: Path, *, size: int | None, max_bytes: int,
                 download_token: str | None = None, what: str = "file") -> Path:
        """Stream `url` (which 302-redirects to a signed URL) to `dest`, at most `max_bytes`.

        Kept if `dest` already has the expected size. Written to a temp file in the same
        folder and renamed, so a crash never leaves a partial file under the final name.
        """
        # zoomus has no download call; this uses the same session and the same tokens.
        if size is not None and dest.is_file() and dest.stat().st_size == size:
            return dest
        if size is not None and size > max_bytes:
            raise _too_big(what, size, max_bytes)
        token = download_token or self._current()
        refreshed = False
        while True:
            response = self._send(url, None, token, stream=True)
            if response.status_code != 401:
                break
            response.close()
            if token == download_token:  # the event's token (24 h) has expired: use ours
                token = self._current()
            elif not refreshed:
                token, refreshed = self._refreshed(token), True
            else:
                break
        try:
            raise_for_zoom(response)
        except NotFound as exc:
            response.close()
            if "processing" in exc.message.lower():
                raise StillProcessing(f"the {what}") from None
            raise
        announced = response.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > max_bytes:
            response.close()
            raise _too_big(what, int(announced), max_bytes)
        written = 0
        try:
            with written_into_place(dest) as out, response:
                for chunk in response.iter_content(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_big(what, written, max_bytes, at_least=True)
                    out.write(chunk)
                if size is not None and written != size:
                    raise TransientError(f"the {what} download stopped early ({written} of "
                                         f"{size} bytes)")
        except requests.RequestException as exc:
            raise TransientError(f"the {what} download failed ({type(exc).__name__})") from None
        return dest


def encode_uuid(uuid: str) -> str:
    """A meeting uuid as a path segment. Zoom wants uuids that start with "/" or contain "//"
    double-encoded; we double-encode any "/" (one %2F would be decoded into a path separator
    by the server's router) and single-encode everything else ("+", "=")."""
    once = quote(uuid, safe="")
    return quote(once, safe="") if "/" in uuid else once


def _zoom_errors() -> ErrorTable:
    """Zoom's answers, merged over the shared ones (core.errors.ErrorTable). Its codes:
    4711 a missing scope; 3301 no recording, 3001 no such meeting, 1001 no such user (404)."""
    return ErrorTable("Zoom", (
        ErrorRule(code=4711, error=MissingScope,
                  message="Zoom refused: {message} Reading the reps' recordings needs an "
                          "admin-managed Zoom app with the :admin scopes (README: Zoom)"),
        ErrorRule(status=401, error=ConnectionBroken,
                  message="Zoom refused the connection's token even after a refresh "
                          "({message}); reconnect Zoom"),
        ErrorRule(status=403, error=ConnectionBroken,
                  message="Zoom refused: {message}; the app may lack a scope "
                          "(cloud_recording:read…, meeting:read:list_past_participants) — "
                          "reconnect Zoom after adding it"),
    ))


ZOOM_ERRORS = _zoom_errors()


def raise_for_zoom(response: requests.Response) -> None:
    """Raise the classified error for a Zoom error response (through `ZOOM_ERRORS`)."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code, message = body.get("code"), str(body.get("message") or response.reason or "")
    detail = f"GET {_path(response.url)} → HTTP {status}, code {code}: {message}"
    if status == 429:  # Zoom says which limit: per second (QPS) or the day's
        kind = response.headers.get("X-RateLimit-Type") or "rate"
        raise TransientError(f"Zoom's {kind} limit was reached; try again later",
                             retry_after=retry_after(response.headers), detail=detail)
    raise ZOOM_ERRORS.error(status, code, message, detail=detail,
                            retry_after=retry_after(response.headers))


def retry_after(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds to wait: `Retry-After` when Zoom sends it, else 1 s for a per-second (QPS)
    limit; None when Zoom does not say."""
    from core.retry import retry_after as http_retry_after

    seconds = http_retry_after(headers, now)
    if seconds is None and (headers.get("X-RateLimit-Type") or "").upper() == "QPS":
        return 1.0
    return seconds


def _too_big(what: str, size: int, limit: int, at_least: bool = False) -> InputError:
    return InputError(f"the Zoom {what} is {'over ' if at_least else ''}{size} bytes, more than "
                      f"the {limit}-byte limit (COACHLOOP_MAX_MEDIA_BYTES)")


def _path(url: str) -> str:
    """A URL without its query (signatures, tokens) for error details."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# ---------------------------------------------------------------------- source ----


class ZoomSource(ConnectedSource):
    """The cloud recordings of one org's Zoom connection.

    Each meeting becomes a `MeetingRecord` with local files: the platform transcript (VTT)
    when Zoom made one, else the per-participant audio files (one track per speaker) when
    the account records them, else the mixed audio. `origin` is "zoom:<connection id>:<uuid>".
    """

    name = "zoom"
    label = "Zoom"

    def __init__(self, settings: Settings, org_id: int, connection_id: int, vault: Any, *,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(settings, org_id, connection_id, vault, clock=clock)
        zoom = settings.zoom
        self.api = ZoomApi(zoom.api_base.rstrip("/"), self._token,
                           verify=settings.ca_bundle or True,
                           hosts=HostAllowList.of([zoom.api_base, zoom.oauth_base],
                                                  zoom.download_domains))

    # Construction ----------------------------------------------------------

    @classmethod
    def record_for(cls, origin: str) -> MeetingRecord:
        """Re-read the meeting of `origin` ("zoom:<connection id>:<meeting uuid>")."""
        prefix, _, rest = origin.partition(":")
        connection, _, uuid = rest.partition(":")
        if prefix != cls.name or not connection.isdigit() or not uuid:
            raise InputError(f"not a Zoom meeting origin: {origin!r} (expected "
                             "'zoom:<connection id>:<meeting uuid>')")
        source = cls.for_connection(int(connection))
        try:
            return source.read_meeting(uuid)
        finally:
            source.close()

    def origin(self, uuid: str) -> str:
        """What `record_for` takes to re-read this meeting."""
        return f"{self.name}:{self.connection_id}:{uuid}"

    # Operations ------------------------------------------------------------

    def check(self) -> None:
        """Raise unless Zoom answers a recordings list with this connection's token."""
        today = self._clock().date()
        self.api.list_recordings(today, today)

    def list_meetings(self, since: datetime | None = None, *, progress: Progress | None = None
                      ) -> Iterator[MeetingRecord | SourceProblem]:
        """Yield the recorded meetings from `since` (default: where the last sync stopped,
        less `zoom.lookback_days`; on the first sync, `zoom.backfill_days` ago) to today.

        Zoom lists at most a month per call, newest first, with page tokens that expire in
        15 minutes, so the cursor (an ISO date: everything before it has been read) is saved
        after each window of dates, not mid-window. A meeting whose files Zoom is still
        processing, or that failed transiently, holds the cursor at its date so the next sync
        reads it again; it is reported as a `SourceProblem` meanwhile.
        """
        zoom = self.settings.zoom
        today = self._clock().date()
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            start = since.date()
        elif saved := read_cursor(self.connection_id, STREAM):
            start = date.fromisoformat(saved) - timedelta(days=zoom.lookback_days)
        else:
            start = today - timedelta(days=zoom.backfill_days)
        windows = date_windows(min(start, today), today)
        hold: date | None = None
        seen: set[str] = set()
        users = self._hosts()
        refused: set[str] = set()
        # Zoom's recordings lists name no host e-mail (only webhooks do): the host is the
        # user whose recordings are listed, "me" being the connected user (asked for once,
        # when one of theirs is listed).
        host_of = {user_id: user_id for user_id in users if user_id != "me"}
        for index, (frm, to) in enumerate(windows):
            for user_id in users:
                page_token: str | None = None
                while user_id not in refused:
                    try:
                        page = self.api.list_recordings(frm, to, page_token, user_id=user_id)
                    except NotFound:
                        if user_id != "me" and index == 0:
                            yield SourceProblem(f"zoom:{user_id}", None, "no Zoom user has this "
                                                "e-mail (or the app may not read their recordings)")
                        break
                    except MissingScope as exc:
                        if user_id == "me":  # not even its own user's: the app is wrong
                            raise ConnectionBroken(exc.message, detail=exc.detail) from None
                        # One rep the app may not read: say so, and read everyone else's.
                        refused.add(user_id)
                        yield SourceProblem(f"zoom:{user_id}", None, exc.message)
                        break
                    for meeting in page.get("meetings") or ():
                        uuid = str(meeting.get("uuid") or "")
                        if not uuid or uuid in seen:
                            continue
                        seen.add(uuid)
                        if user_id not in host_of:
                            host_of[user_id] = str(self.api.me().get("email") or "")
                        if host_of[user_id] and not meeting.get("host_email"):
                            meeting = {**meeting, "host_email": host_of[user_id]}
                        started = _start_of(meeting)
                        if since is not None and started is not None and started < since:
                            continue
                        item, held = self._poll_one(meeting, started)
                        if held is not None:
                            hold = held if hold is None else min(hold, held)
                        if item is not None:
                            yield item
                    page_token = page.get("next_page_token") or None
                    if not page_token:
                        break
            done = to + timedelta(days=1)
            save_cursor(self.connection_id, STREAM,
                        (done if hold is None else min(done, hold)).isoformat())
            if progress:
                progress((index + 1) / len(windows), f"Zoom recordings {frm} to {to}")

    def _poll_one(self, meeting: dict, started: datetime | None
                  ) -> tuple[MeetingRecord | SourceProblem | None, date | None]:
        """One listed meeting as a record or a problem, and the date to hold the cursor at."""
        uuid = str(meeting["uuid"])
        origin = self.origin(uuid)
        day = started.date() if started else None
        fresh = started is None or self._clock() - started < PROCESSING_HOLD
        if _processing(_chosen_files(meeting)):
            if not fresh:
                return SourceProblem(origin, "recording_files", "Zoom has been processing "
                                     "this recording for over a week; giving up on it"), None
            return SourceProblem(origin, "recording_files", "Zoom is still processing this "
                                 "recording; a later sync reads it"), day
        try:
            return self._record(meeting, fetched=False), None
        except StillProcessing as exc:
            return SourceProblem(origin, "recording_files",
                                 f"{exc.message}; a later sync reads it"), day
        except TransientError as exc:
            if exc.retry_after is not None:
                raise  # rate-limited: stop the sync (the cursor stays before this window)
            return SourceProblem(origin, None, f"{exc.message}; a later sync retries"), day
        except CoachloopError as exc:
            return SourceProblem(origin, None, exc.message), None
        except (KeyError, TypeError, ValueError) as exc:  # a meeting object of an odd shape
            return SourceProblem(origin, None, f"unexpected Zoom meeting object "
                                 f"({type(exc).__name__}: {exc})"), None

    def _hosts(self) -> list[str]:
        """Whose recordings to list: the connected user, and every rep on the roster (an
        admin-managed Zoom app may read any user's recordings by e-mail)."""
        return ["me", *self.rep_emails()]

    def read_meeting(self, uuid: str, *, download_token: str | None = None) -> MeetingRecord:
        """The meeting as Zoom has it now, files downloaded; `TransientError` while Zoom is
        still processing a file it needs, `NotFound` if the meeting has no recording."""
        return self._record(self.api.meeting_recordings(uuid), fetched=True,
                            download_token=download_token)

    def meetings_from_event(self, event: Any) -> Iterator[MeetingRecord | SourceProblem]:
        """The meeting of a `recording.completed` / `recording.transcript_completed` event
        (files fetched with the event's download token); other events give nothing."""
        if not isinstance(event, dict) or event.get("event") not in RECORDING_EVENTS:
            return
        meeting = (event.get("payload") or {}).get("object")
        if not isinstance(meeting, dict) or not meeting.get("uuid"):
            raise InputError("the Zoom recording event has no payload.object.uuid")
        yield self._record(meeting, fetched=False, download_token=event.get("download_token"))

    # One meeting -----------------------------------------------------------

    def _record(self, meeting: dict, *, fetched: bool, download_token: str | None = None
                ) -> MeetingRecord:
        """Build the record for a meeting object (listed, fetched, or from an event).

        A listed meeting carries no `participant_audio_files`, and an event may carry stale
        statuses: re-fetch the meeting in those cases before deciding what to download.
        """
        uuid = str(meeting["uuid"])
        no_transcript = _transcript_file(meeting) is None
        stale = _processing(_chosen_files(meeting))
        if not fetched and ((no_transcript and "participant_audio_files" not in meeting)
                            or stale):
            meeting = {**meeting, **self.api.meeting_recordings(uuid)}
            download_token = None  # ours works for what we fetched ourselves
        files = _chosen_files(meeting)
        if not files:
            raise NotFound(f"Zoom meeting {meeting.get('topic')!r} has no transcript or audio "
                           "recording")
        if _processing(files):
            raise StillProcessing()
        participants = self._participants(uuid, meeting)
        emails = {p.name.lower(): p.email for p in participants if p.email}
        folder = self.media_dir / _folder_name(uuid)
        max_bytes = self.settings.max_media_bytes
        transcript_path, tracks = None, []
        for kind, file in files:
            dest = folder / _file_name(kind, file)
            what = {"transcript": "transcript", "speaker": f"audio of {file.get('file_name')}",
                    "audio": "audio recording"}[kind]
            self.api.download(str(file["download_url"]), dest, size=_size(file),
                              max_bytes=max_bytes, download_token=download_token, what=what)
            if kind == "transcript":
                transcript_path = str(dest)
            else:
                tracks.append(AudioTrack(path=str(dest), speaker_email=_speaker_email(
                    file, emails) if kind == "speaker" else None))
        started = _start_of(meeting)
        if started is None:
            raise InputError(f"Zoom meeting {uuid} has no valid start_time")
        return MeetingRecord(
            source=self.name, external_id=uuid,
            title=str(meeting.get("topic") or "Zoom meeting"), started_at=started,
            participants=participants, tracks=tuple(tracks), transcript_path=transcript_path,
            content_hash=_content_hash(meeting, files, participants),
            origin=self.origin(uuid))

    def _participants(self, uuid: str, meeting: dict) -> tuple[ParticipantInfo, ...]:
        """Each person once (by e-mail, else name), the host first if Zoom omitted them."""
        people: dict[str, ParticipantInfo] = {}
        for row in self.api.participants(uuid):
            name = str(row.get("name") or "").strip()
            email = str(row.get("user_email") or "").strip() or None
            key = (email or name).lower()
            if key and key not in people:
                people[key] = ParticipantInfo(name=name or email or "", email=email)
        host = str(meeting.get("host_email") or "").strip()
        if host and host.lower() not in people:
            people = {host.lower(): ParticipantInfo(name=host.split("@")[0], email=host),
                      **people}
        return tuple(people.values())


# ------------------------------------------------------------- meeting objects ----


def date_windows(start: date, end: date, days: int = MAX_WINDOW_DAYS
                 ) -> list[tuple[date, date]]:
    """Consecutive (from, to) date ranges, both inclusive, of at most `days` days."""
    windows = []
    while start <= end:
        to = min(start + timedelta(days=days - 1), end)
        windows.append((start, to))
        start = to + timedelta(days=1)
    return windows


def _transcript_file(meeting: dict) -> dict | None:
    return next((f for f in meeting.get("recording_files") or ()
                 if f.get("file_type") == "TRANSCRIPT" and f.get("download_url")), None)


def _chosen_files(meeting: dict) -> list[tuple[str, dict]]:
    """What to download, as (kind, file): the transcript if there is one; else each
    participant's audio; else the mixed audio (audio-only, or the video's sound)."""
    transcript = _transcript_file(meeting)
    if transcript is not None:
        return [("transcript", transcript)]
    speakers = [f for f in meeting.get("participant_audio_files") or () if f.get("download_url")]
    if speakers:
        return [("speaker", f) for f in sorted(speakers, key=lambda f: str(f.get("id")))]
    media = [f for f in meeting.get("recording_files") or ()
             if f.get("file_type") in ("M4A", "MP4") and f.get("download_url")]
    media.sort(key=lambda f: (f.get("file_type") != "M4A",
                              f.get("recording_type") != "audio_only", str(f.get("id"))))
    return [("audio", media[0])] if media else []


def _processing(files: list[tuple[str, dict]]) -> bool:
    return any(f.get("status", "completed") != "completed" for _, f in files)


def _speaker_email(file: dict, emails: dict[str, str | None]) -> str | None:
    """The participant a per-participant audio file belongs to. Zoom names these files
    "Audio only - <name>"; the e-mail comes from the participant list via the name."""
    if file.get("user_email"):
        return str(file["user_email"])
    name = str(file.get("file_name") or "").split(" - ", 1)[-1].strip()
    if "@" in name:
        return name
    return emails.get(name.lower())


def _start_of(meeting: dict) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(meeting.get("start_time")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _size(file: dict) -> int | None:
    size = file.get("file_size")
    return int(size) if isinstance(size, int | float) and size >= 0 else None


def _folder_name(uuid: str) -> str:
    """A meeting's folder: the uuid, percent-encoded (base64 uuids hold "/" and "+")."""
    return "m-" + quote(uuid, safe="")


def _file_name(kind: str, file: dict) -> str:
    ident = re.sub(r"[^A-Za-z0-9_-]", "_", str(file.get("id") or "file"))
    ext = re.sub(r"[^a-z0-9]", "", str(file.get("file_extension") or "").lower())
    return f"{kind}-{ident}.{ext or 'bin'}"


def _content_hash(meeting: dict, files: list[tuple[str, dict]],
                  participants: tuple[ParticipantInfo, ...]) -> str:
    """sha256 over what Zoom says about the meeting and the files we use (ids, sizes,
    statuses): stable across re-reads, so re-ingesting an unchanged meeting is a no-op."""
    described = {
        "uuid": meeting.get("uuid"), "topic": meeting.get("topic"),
        "start_time": meeting.get("start_time"),
        "files": [[kind, f.get("id"), f.get("file_type"), f.get("file_size"), f.get("status")]
                  for kind, f in files],
        "participants": [[p.name, p.email] for p in participants],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
