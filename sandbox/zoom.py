"""A wire-accurate Zoom emulator: OAuth, cloud-recording API, downloads, signed webhooks.

`ZoomSandbox` holds the state (users, meetings, recordings, tokens) in memory behind a lock;
`create_app()` returns the ASGI app that `sandbox.server.serve` runs over HTTPS on loopback.
Field names, error shapes, the 302 download redirect and the webhook signature follow Zoom's
public docs and zoom/rivet-javascript types (see /work/shared/reference/meetings.md §1).
"""


import asyncio
import base64
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
import uuid as uuid_lib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode

ACCESS_TOKEN_TTL = 3600          # Zoom access tokens live one hour
EXPIRES_IN = 3599                # what Zoom reports in `expires_in`
REFRESH_TOKEN_TTL = 90 * 86400   # common refresh-token lifetime (secondary source)
AUTH_CODE_TTL = 600
PAGE_TOKEN_TTL = 15 * 60         # next_page_token expires after 15 min
DOWNLOAD_TOKEN_TTL = 24 * 3600   # webhook download_token
SIGNED_URL_TTL = 300
MAX_WINDOW_DAYS = 31             # list recordings: at most ~1 month per call
MAX_PAGE_SIZE = 300

# Rate-limit labels of the endpoints emulated (Zoom API reference).
RATE_CATEGORIES = {
    "GET /v2/users/{userId}/recordings": "Medium",
    "GET /v2/meetings/{meetingId}/recordings": "Light",
    "GET /v2/past_meetings/{meetingId}/participants": "Medium",
    "GET /rec/download/{fileId}": "Light",
    "POST /oauth/token": "Light",
}

# Granular scopes, per app type. A user-managed app gets the plain scopes and acts for the
# user who installed it; an admin-managed (or server-to-server) app gets the `:admin` ones and
# may read any user's recordings in the account (developers.zoom.us, OAuth scopes).
USER_SCOPES = ("cloud_recording:read:list_user_recordings",
               "cloud_recording:read:list_recording_files",
               "meeting:read:list_past_participants", "user:read:user")
ADMIN_SCOPES = tuple(f"{scope}:admin" for scope in USER_SCOPES)

AUDIO_MEDIA = {".m4a": "audio/mp4", ".mp4": "video/mp4", ".ogg": "audio/ogg",
               ".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac",
               ".vtt": "text/vtt", ".txt": "text/plain"}


class ZoomError(Exception):
    """A response in Zoom's error shape, raised inside a handler."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def _api_error(status: int, code: int, message: str, headers: dict | None = None) -> ZoomError:
    return ZoomError(status, {"code": code, "message": message}, headers)


def _oauth_error(status: int, error: str, reason: str) -> ZoomError:
    return ZoomError(status, {"reason": reason, "error": error})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).astimezone(UTC)


async def _form(request) -> dict[str, str]:
    """An OAuth request's form body; Zoom also reads the query string."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    for key, value in request.query_params.items():
        form.setdefault(key, value)
    return form


def _hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_webhook(secret_token: str, timestamp: str, raw_body: bytes | str) -> str:
    """The `x-zm-signature` value Zoom sends: v0= + hex HMAC-SHA256 of v0:{ts}:{body}."""
    body = raw_body.decode() if isinstance(raw_body, bytes) else raw_body
    return "v0=" + _hmac_hex(secret_token, f"v0:{timestamp}:{body}")


def _ssl_verify(verify: "str | Path | bool"):
    """httpx's `verify`: a CA bundle path becomes an SSLContext (str paths are deprecated)."""
    if isinstance(verify, (str, Path)):
        import ssl

        return ssl.create_default_context(cafile=str(verify))
    return verify


def srt_to_vtt(text: str) -> str:
    """An SRT transcript as WebVTT (Zoom serves transcripts as VTT)."""
    body = re.sub(r"(\d\d:\d\d:\d\d),(\d\d\d)", r"\1.\2", text.replace("\r\n", "\n")).strip()
    return "WEBVTT\n\n" + body + "\n"


def _vtt_end_seconds(text: str) -> float | None:
    ends = re.findall(r"-->\s*(?:(\d+):)?(\d\d):(\d\d)[.,](\d\d\d)", text)
    if not ends:
        return None
    h, m, s, ms = ends[-1]
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _ogg_seconds(data: bytes) -> float | None:
    """Length of an Ogg Opus/Vorbis file from its last page's granule position."""
    last = data.rfind(b"OggS")
    if not data.startswith(b"OggS") or last < 0 or len(data) < last + 14:
        return None
    granule = int.from_bytes(data[last + 6:last + 14], "little")
    if b"OpusHead" in data[:200]:
        return granule / 48000
    head = data.find(b"\x01vorbis", 0, 200)
    if head >= 0:
        rate = int.from_bytes(data[head + 12:head + 16], "little")
        return granule / rate if rate else None
    return None


@dataclass
class _User:
    id: str
    email: str
    name: str


@dataclass
class _File:
    id: str
    meeting_uuid: str
    file_type: str
    file_extension: str
    recording_type: str
    data: bytes
    media_type: str
    file_name: str
    status: str = "completed"
    participant_email: str | None = None


@dataclass
class _Meeting:
    uuid: str
    id: int
    host: _User
    topic: str
    start: datetime
    duration_s: float
    timezone: str
    share_id: str
    participants: list[tuple[str, str]]
    invited: frozenset[str] = frozenset()  # e-mails on the calendar invite (or registered)
    files: list[_File] = field(default_factory=list)
    participant_files: list[_File] = field(default_factory=list)
    processing_polls: int = 0


@dataclass
class _Token:
    kind: str                  # "access" | "refresh" | "download"
    client_id: str
    user_email: str | None     # None: account-level (S2S)
    expires_at: float
    meeting_uuid: str | None = None
    scopes: tuple[str, ...] = ()


class ZoomSandbox:
    """In-memory Zoom account: one OAuth app, users, recorded meetings, faults and counters.

    Seed with `add_meeting`, serve `create_app()` (or call `start(tls)`), point clients at
    `{url}/v2` and `{url}/oauth/token`. `clock` returns epoch seconds; tests inject their own
    to expire tokens without waiting.
    """

    def __init__(self, *, client_id: str = "sandbox-client-id",
                 client_secret: str = "sandbox-client-secret",
                 account_id: str = "sandbox-account-id",
                 owner_email: str = "owner@acme-analytics.example",
                 clock: Callable[[], float] = time.time, seed: int = 0,
                 rate_limits: dict[str, float] | None = None,
                 error_rate: float = 0.0, latency_s: float = 0.0,
                 app_type: str = "admin"):
        if app_type not in ("admin", "user"):
            raise ValueError("app_type is 'admin' (admin-managed) or 'user' (user-managed)")
        self.app_type = app_type  # which scopes user OAuth grants
        self.client_id, self.client_secret, self.account_id = client_id, client_secret, account_id
        self.owner_email = owner_email
        self.clock = clock
        self.rate_limits: dict[str, float] = dict(rate_limits or {})
        self.error_rate, self.latency_s = error_rate, latency_s
        self.requests: Counter[str] = Counter()
        self.base_url: str | None = None
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._fault_rng = random.Random(seed + 1)
        self._sign_key = secrets.token_bytes(32)
        self._users: dict[str, _User] = {}
        self._meetings: dict[str, _Meeting] = {}
        self._files: dict[str, _File] = {}
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, _Token] = {}
        self._page_tokens: dict[str, tuple[tuple, int, float]] = {}
        self._hits: dict[str, deque] = {}
        self._scripted: dict[str, deque] = {}  # endpoint → (status, retry_after) to answer
        self.add_user(owner_email, "Account Owner")

    # ----------------------------------------------------------------- seeding

    def add_user(self, email: str, name: str = "") -> str:
        """Register a licensed user of the account; returns its Zoom user id."""
        with self._lock:
            user = self._users.get(email.lower())
            if user is None:
                user = _User(self._random_id(22), email, name or email.split("@")[0])
                self._users[email.lower()] = user
            return user.id

    def add_meeting(self, topic: str, start_time: str | datetime, host_email: str,
                    participants: Iterable[tuple[str, str]] = (), audio_path: str | Path | None = None,
                    transcript_vtt: str | Path | None = None,
                    participant_audio: dict[str, str | Path] | None = None, *,
                    duration_s: float | None = None, timezone_name: str = "UTC",
                    processing_polls: int = 0, meeting_uuid: str | None = None,
                    meeting_id: int | None = None, invited: Iterable[str] = ()) -> str:
        """Seed a past, recorded meeting; returns its uuid.

        `transcript_vtt` is a path (.vtt, or .srt converted to VTT) or the VTT text itself.
        Files stay `processing` for the next `processing_polls` reads of the meeting.
        `invited`: guests' e-mails on the calendar invite; Zoom shows other guests' e-mails
        to nobody (users of the account are always shown).
        """
        participants = list(participants)
        host_name = next((n for n, e in participants if e.lower() == host_email.lower()), "")
        self.add_user(host_email, host_name)
        transcript = self._transcript_text(transcript_vtt)
        if duration_s is None and audio_path is not None and str(audio_path).endswith(".ogg"):
            duration_s = _ogg_seconds(Path(audio_path).read_bytes())
        if duration_s is None:
            duration_s = (_vtt_end_seconds(transcript) if transcript else None) or 1800.0
        with self._lock:
            muuid = meeting_uuid or base64.b64encode(self._rng.randbytes(16)).decode()
            meeting = _Meeting(
                uuid=muuid, id=meeting_id or self._rng.randrange(10**10, 10**11),
                host=self._users[host_email.lower()], topic=topic, start=_parse_time(start_time),
                duration_s=float(duration_s), timezone=timezone_name,
                share_id=self._random_id(32), participants=participants,
                invited=frozenset(e.lower() for e in invited),
                processing_polls=processing_polls)
            status = "processing" if processing_polls else "completed"
            if audio_path is not None:
                meeting.files.append(self._make_file(muuid, Path(audio_path), status))
            if transcript is not None:
                meeting.files.append(_File(
                    str(uuid_lib.UUID(int=self._rng.getrandbits(128))), muuid, "TRANSCRIPT", "VTT",
                    "audio_transcript", transcript.encode(), "text/vtt", "Audio transcript",
                    status))
            for email, path in (participant_audio or {}).items():
                name = next((n for n, e in participants if e.lower() == email.lower()), email)
                made = self._make_file(muuid, Path(path), status)
                made.file_name, made.participant_email = f"Audio only - {name}", email
                meeting.participant_files.append(made)
            for made in meeting.files + meeting.participant_files:
                self._files[made.id] = made
            self._meetings[muuid] = meeting
            return muuid

    def complete_processing(self, meeting_uuid: str | None = None) -> None:
        """Mark the files of one meeting (default: all meetings) as `completed`."""
        with self._lock:
            for meeting in self._meetings.values():
                if meeting_uuid in (None, meeting.uuid):
                    self._complete(meeting)

    def meeting(self, meeting_uuid: str, base_url: str | None = None) -> dict:
        """The meeting as `GET /meetings/{uuid}/recordings` would return it (no side effects)."""
        with self._lock:
            return self._meeting_json(self._meetings[meeting_uuid], base_url or self._base())

    # ------------------------------------------------------------------ faults

    def revoke_tokens(self) -> None:
        """Invalidate every access, refresh and download token (app deactivated)."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, endpoint: str, status: int, times: int = 1,
                  retry_after: float | None = None) -> None:
        """The next `times` requests to `endpoint` ("GET /v2/users/{userId}/recordings") fail
        with `status`: 429 as Zoom's daily limit (Retry-After an ISO time `retry_after` s
        ahead), 500 or 503 as its server errors."""
        with self._lock:
            self._scripted.setdefault(endpoint, deque()).extend([(status, retry_after)] * times)

    def set_rate_limit(self, endpoint: str, qps: float | None) -> None:
        """Per-second limit for one endpoint ("GET /v2/users/{userId}/recordings"); None: off."""
        with self._lock:
            if qps is None:
                self.rate_limits.pop(endpoint, None)
            else:
                self.rate_limits[endpoint] = qps

    # ------------------------------------------------------------------ tokens

    def issue_access_token(self, user_email: str | None = None,
                           scopes: Iterable[str] | None = None) -> str:
        """Mint an access token directly (tests that do not exercise OAuth); by default with
        the scopes this app type grants (account-level tokens: the `:admin` ones)."""
        if scopes is None:
            scopes = self.granted_scopes if user_email else ADMIN_SCOPES
        return self._issue("access", self.client_id, user_email, ACCESS_TOKEN_TTL,
                           scopes=tuple(scopes))

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        """What user OAuth grants for this app type (configured in the Marketplace; the
        `scope` parameter of the authorize URL does not change it)."""
        return ADMIN_SCOPES if self.app_type == "admin" else USER_SCOPES

    # ---------------------------------------------------------------- webhooks

    def webhook_payload(self, event: str, meeting_uuid: str) -> dict:
        """The body of a `recording.completed` / `recording.transcript_completed` event."""
        with self._lock:
            meeting = self._meetings[meeting_uuid]
            obj = self._meeting_json(meeting, self._base(), participant_audio=True)
            obj["host_email"] = meeting.host.email
            if event == "recording.transcript_completed":
                obj["recording_files"] = [f for f in obj["recording_files"]
                                          if f["file_type"] == "TRANSCRIPT"]
                obj.pop("participant_audio_files", None)
            elif event != "recording.completed":
                raise ValueError(f"unsupported event {event!r}")
        download_token = self._issue("download", self.client_id, None, DOWNLOAD_TOKEN_TTL,
                                     meeting_uuid=meeting_uuid)
        return {"event": event, "event_ts": int(self.clock() * 1000),
                "download_token": download_token,
                "payload": {"account_id": self.account_id, "object": obj}}

    def deliver(self, event: str, meeting_uuid: str, url: str, secret_token: str, *,
                times: int = 1, verify: str | bool = True, timeout: float = 3.0) -> list:
        """POST a signed recording event to `url`, `times` times (at-least-once delivery).

        Returns the receiver's httpx responses. `verify` is the receiver's CA bundle path.
        """
        import httpx

        raw = json.dumps(self.webhook_payload(event, meeting_uuid), separators=(",", ":"))
        responses = []
        with httpx.Client(verify=_ssl_verify(verify), timeout=timeout) as client:
            for _ in range(times):
                responses.append(client.post(url, content=raw.encode(),
                                             headers=self._webhook_headers(secret_token, raw)))
        return responses

    def validate_endpoint(self, url: str, secret_token: str, *, verify: str | bool = True,
                          timeout: float = 3.0) -> bool:
        """Zoom's `endpoint.url_validation` handshake; True when the receiver answers right."""
        import httpx

        plain = secrets.token_urlsafe(16)
        raw = json.dumps({"payload": {"plainToken": plain}, "event_ts": int(self.clock() * 1000),
                          "event": "endpoint.url_validation"}, separators=(",", ":"))
        with httpx.Client(verify=_ssl_verify(verify), timeout=timeout) as client:
            reply = client.post(url, content=raw.encode(),
                                headers=self._webhook_headers(secret_token, raw))
        if reply.status_code != 200:
            return False
        try:
            body = reply.json()
        except ValueError:
            return False
        return (body.get("plainToken") == plain and
                hmac.compare_digest(str(body.get("encryptedToken", "")),
                                    _hmac_hex(secret_token, plain)))

    def _webhook_headers(self, secret_token: str, raw: str) -> dict:
        ts = str(int(self.clock()))
        return {"content-type": "application/json; charset=utf-8",
                "user-agent": "Zoom Marketplace/1.1a",
                "x-zm-request-timestamp": ts,
                "x-zm-signature": sign_webhook(secret_token, ts, raw),
                "x-zm-trackingid": "v=2.0;clid=us06;rid=" + secrets.token_hex(8)}

    # ----------------------------------------------------------------- serving

    def start(self, tls, *, port: int = 0):
        """Serve over HTTPS on loopback (sandbox.server.serve); remembers the base URL."""
        from sandbox.server import serve

        running = serve(self.create_app(), tls, port=port)
        self.base_url = running.url
        return running

    def create_app(self):
        """The FastAPI app emulating zoom.us (OAuth, /rec) and api.zoom.us (/v2) on one host."""
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, RedirectResponse, Response

        app = FastAPI(title="Zoom sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        sandbox = self

        @app.exception_handler(ZoomError)
        async def zoom_error(_request, exc: ZoomError):
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

        def base_of(request: Request) -> str:
            return str(request.base_url).rstrip("/")

        @app.get("/oauth/authorize")
        async def authorize(request: Request):
            await sandbox._gate("GET /oauth/authorize", faults=False)
            q = request.query_params
            if q.get("client_id") != sandbox.client_id:
                raise _oauth_error(400, "invalid_client", "Invalid client_id")
            if q.get("response_type") != "code":
                raise _oauth_error(400, "unsupported_response_type",
                                   "Unsupported response type")
            redirect_uri = q.get("redirect_uri")
            if not redirect_uri:
                raise _oauth_error(400, "invalid_request", "Redirect URI mismatch.")
            method = q.get("code_challenge_method", "plain" if q.get("code_challenge") else None)
            if method not in (None, "plain", "S256"):
                raise _oauth_error(400, "invalid_request", "Invalid code_challenge_method")
            code = secrets.token_urlsafe(24)
            with sandbox._lock:
                sandbox._codes[code] = {
                    "redirect_uri": redirect_uri, "challenge": q.get("code_challenge"),
                    "method": method, "user": q.get("login_hint") or sandbox.owner_email,
                    "expires_at": sandbox.clock() + AUTH_CODE_TTL}
            params = {"code": code}
            if "state" in q:
                params["state"] = q["state"]
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)

        @app.post("/oauth/token")
        async def token(request: Request):
            await sandbox._gate("POST /oauth/token")
            form = await _form(request)
            return JSONResponse(sandbox._token_grant(request.headers.get("authorization"), form,
                                                     base_of(request)))

        @app.post("/oauth/revoke")
        async def revoke(request: Request):
            await sandbox._gate("POST /oauth/revoke")
            form = await _form(request)
            sandbox._revoke(request.headers.get("authorization"), form)
            return JSONResponse({"status": "success"})

        @app.get("/v2/users/{userId}")
        async def get_user(userId: str, request: Request):
            await sandbox._gate("GET /v2/users/{userId}")
            tok = sandbox._bearer(request)
            user = sandbox._user_for(tok, userId)
            sandbox._require(tok, "user:read:user", own=sandbox._own(tok, user))
            first, _, last = user.name.partition(" ")
            return JSONResponse({"id": user.id, "email": user.email, "first_name": first,
                                 "last_name": last, "display_name": user.name, "type": 2,
                                 "account_id": sandbox.account_id, "status": "active"})

        @app.get("/v2/users/{userId}/recordings")
        async def list_recordings(userId: str, request: Request):
            await sandbox._gate("GET /v2/users/{userId}/recordings")
            tok = sandbox._bearer(request)
            return JSONResponse(sandbox._list_recordings(tok, userId, request.query_params,
                                                         base_of(request)))

        @app.get("/v2/meetings/{meetingId}/recordings")
        async def meeting_recordings(meetingId: str, request: Request):
            await sandbox._gate("GET /v2/meetings/{meetingId}/recordings")
            tok = sandbox._bearer(request)
            return JSONResponse(sandbox._meeting_recordings(tok, meetingId, request.query_params,
                                                            base_of(request)))

        @app.get("/v2/past_meetings/{meetingId}/participants")
        async def participants(meetingId: str, request: Request):
            await sandbox._gate("GET /v2/past_meetings/{meetingId}/participants")
            tok = sandbox._bearer(request)
            return JSONResponse(sandbox._participants(tok, meetingId, request.query_params))

        @app.get("/rec/download/{fileId}")
        async def download(fileId: str, request: Request):
            await sandbox._gate("GET /rec/download/{fileId}")
            location = sandbox._download_redirect(fileId, request, base_of(request))
            return RedirectResponse(location, status_code=302)

        @app.get("/rec/signed/{fileId}")
        async def signed(fileId: str, sig: str = "", expires: int = 0):
            await sandbox._gate("GET /rec/signed/{fileId}", faults=False)
            made = sandbox._signed_file(fileId, sig, expires)
            filename = quote(f"{made.file_name}.{made.file_extension.lower()}")
            return Response(made.data, media_type=made.media_type, headers={
                "content-disposition": f"attachment; filename*=UTF-8''{filename}"})

        return app

    # ------------------------------------------------------------- internals

    def _base(self) -> str:
        if not self.base_url:
            raise RuntimeError("ZoomSandbox.base_url is not set: start(tls) it first")
        return self.base_url

    def _random_id(self, length: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    def _transcript_text(self, transcript: str | Path | None) -> str | None:
        if transcript is None:
            return None
        if isinstance(transcript, Path) or (len(str(transcript)) < 4096
                                            and "\n" not in str(transcript)
                                            and Path(str(transcript)).is_file()):
            path = Path(transcript)
            text = path.read_text(encoding="utf-8")
            return srt_to_vtt(text) if path.suffix.lower() == ".srt" else text
        return str(transcript)

    def _make_file(self, muuid: str, path: Path, status: str) -> _File:
        suffix = path.suffix.lower()
        video = suffix == ".mp4"
        return _File(str(uuid_lib.UUID(int=self._rng.getrandbits(128))), muuid,
                     "MP4" if video else "M4A", suffix.lstrip(".").upper() or "M4A",
                     "shared_screen_with_speaker_view" if video else "audio_only",
                     path.read_bytes(), AUDIO_MEDIA.get(suffix, "application/octet-stream"),
                     "Recording" if video else "Audio only", status)

    def _complete(self, meeting: _Meeting) -> None:
        meeting.processing_polls = 0
        for made in meeting.files + meeting.participant_files:
            made.status = "completed"

    def _polled(self, meeting: _Meeting) -> None:
        """One read of a processing meeting; its files complete after the seeded count."""
        if meeting.processing_polls > 0:
            meeting.processing_polls -= 1
            if meeting.processing_polls == 0:
                self._complete(meeting)

    def _issue(self, kind: str, client_id: str, user_email: str | None, ttl: float,
               meeting_uuid: str | None = None, scopes: tuple[str, ...] = ()) -> str:
        value = "eyJ" + secrets.token_urlsafe(48)   # opaque; real ones are JWTs
        with self._lock:
            self._tokens[value] = _Token(kind, client_id, user_email, self.clock() + ttl,
                                         meeting_uuid, scopes)
        return value

    def _require(self, tok: _Token, scope: str, *, own: bool) -> None:
        """Zoom's scope check: a user's own resources take the plain scope or its `:admin`
        form; anyone else's take the `:admin` form (4711, naming both)."""
        admin = f"{scope}:admin"
        if admin in tok.scopes or (own and scope in tok.scopes):
            return
        raise _api_error(400, 4711, f"Invalid access token, does not contain scopes:[{scope}, "
                                    f"{admin}].")

    def _own(self, tok: _Token, user: _User) -> bool:
        """Whether a user token acts for this user (account-level tokens own nothing)."""
        return tok.user_email is not None and tok.user_email.lower() == user.email.lower()

    async def _gate(self, endpoint: str, *, faults: bool = True) -> None:
        """Count the request, then apply latency, rate limit and injected errors."""
        with self._lock:
            self.requests[endpoint] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        with self._lock:
            qps = self.rate_limits.get(endpoint)
            if qps is not None:
                now = self.clock()
                hits = self._hits.setdefault(endpoint, deque())
                while hits and hits[0] <= now - 1.0:
                    hits.popleft()
                limit = max(1, int(qps))
                if len(hits) >= limit:
                    raise _api_error(429, 429, "You have reached the maximum per-second rate "
                                     "limit for this API. Try again later.", {
                                         "X-RateLimit-Category":
                                             RATE_CATEGORIES.get(endpoint, "Light"),
                                         "X-RateLimit-Type": "QPS",
                                         "X-RateLimit-Limit": str(limit),
                                         "X-RateLimit-Remaining": "0",
                                         "Retry-After": "1"})
                hits.append(now)
            scripted = self._scripted.get(endpoint)
            if faults and scripted:
                status, retry_after = scripted.popleft()
                if status == 429:  # the day's limit: Zoom says until when, as an ISO time
                    until = datetime.fromtimestamp(self.clock() + (retry_after or 60), UTC)
                    raise _api_error(429, 429, "You have reached the maximum daily rate limit "
                                     "for this API. Refer to the response header for details "
                                     "on when you can make another request.", {
                                         "X-RateLimit-Category":
                                             RATE_CATEGORIES.get(endpoint, "Light"),
                                         "X-RateLimit-Type": "Daily-limit",
                                         "Retry-After": until.strftime("%Y-%m-%dT%H:%M:%SZ")})
                raise _api_error(status, status, "Internal Error." if status == 500
                                 else "Service Unavailable.")
            if faults and self.error_rate and self._fault_rng.random() < self.error_rate:
                status = self._fault_rng.choice((500, 503))
                raise _api_error(status, status, "Internal Error." if status == 500
                                 else "Service Unavailable.")

    def _valid_token(self, value: str | None, kinds: tuple[str, ...]) -> _Token | None:
        with self._lock:
            tok = self._tokens.get(value or "")
            if tok is None or tok.kind not in kinds:
                return None
            return tok

    def _bearer(self, request) -> _Token:
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else None
        tok = self._valid_token(value, ("access",))
        if tok is None:
            raise _api_error(401, 124, "Invalid access token.")
        if tok.expires_at <= self.clock():
            raise _api_error(401, 124, "Access token is expired.")
        return tok

    # OAuth ------------------------------------------------------------------

    def _client(self, authorization: str | None, form: dict) -> str:
        """The OAuth app authenticating (HTTP Basic, or client_id/secret parameters)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(
                    authorization[6:].strip()).decode().partition(":")
            except ValueError:
                raise _oauth_error(401, "invalid_client",
                                   "Invalid client_id or client_secret") from None
        if not client_id or not client_secret:
            raise _oauth_error(401, "invalid_client", "Client ID or client secret is missing.")
        if not (hmac.compare_digest(client_id, self.client_id)
                and hmac.compare_digest(client_secret, self.client_secret)):
            raise _oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        return client_id

    def _revoke(self, authorization: str | None, form: dict) -> None:
        """`POST /oauth/revoke`: revoking a token deauthorizes the app for that user, so every
        token of theirs for this app ends (access and refresh); unknown tokens are refused."""
        client_id = self._client(authorization, form)
        value = form.get("token") or ""
        if not value:
            raise _oauth_error(400, "invalid_request", "Token cannot be empty.")
        with self._lock:
            tok = self._tokens.get(value)
            if tok is None or tok.kind not in ("access", "refresh") \
                    or tok.client_id != client_id:
                raise _oauth_error(400, "invalid_request", "Invalid Token!")
            for key, other in list(self._tokens.items()):
                if other.client_id == client_id and other.user_email == tok.user_email \
                        and other.kind in ("access", "refresh"):
                    del self._tokens[key]

    def _token_grant(self, authorization: str | None, form: dict, base: str) -> dict:
        client_id = self._client(authorization, form)
        grant = form.get("grant_type")
        if not grant:
            raise _oauth_error(400, "invalid_request", "Missing grant type.")
        now = self.clock()
        if grant == "account_credentials":
            if form.get("account_id") != self.account_id:
                raise _oauth_error(400, "invalid_request", "Invalid account_id")
            return {"access_token": self._issue("access", client_id, None, ACCESS_TOKEN_TTL,
                                                scopes=ADMIN_SCOPES),
                    "token_type": "bearer", "expires_in": EXPIRES_IN,
                    "scope": " ".join(ADMIN_SCOPES),
                    "api_url": base}
        if grant == "authorization_code":
            with self._lock:
                code = self._codes.pop(form.get("code") or "", None)
            if code is None or code["expires_at"] <= now:
                raise _oauth_error(400, "invalid_grant", "Invalid authorization code")
            if form.get("redirect_uri") != code["redirect_uri"]:
                raise _oauth_error(400, "invalid_request", "Redirect URI mismatch.")
            if code["challenge"]:
                verifier = form.get("code_verifier") or ""
                if code["method"] == "S256":
                    verifier = base64.urlsafe_b64encode(
                        hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if not hmac.compare_digest(verifier, code["challenge"]):
                    raise _oauth_error(400, "invalid_grant", "Invalid code_verifier")
            return self._user_tokens(client_id, code["user"])
        if grant == "refresh_token":
            value = form.get("refresh_token") or ""
            with self._lock:
                tok = self._tokens.get(value)
                if tok is None or tok.kind != "refresh" or tok.expires_at <= now:
                    raise _oauth_error(400, "invalid_grant", "Invalid Token!")
                del self._tokens[value]   # rotation: the old refresh token dies
            return self._user_tokens(client_id, tok.user_email)
        raise _oauth_error(400, "unsupported_grant_type",
                           "Grant type is not supported from token endpoint.")

    def _user_tokens(self, client_id: str, user_email: str | None) -> dict:
        scopes = self.granted_scopes
        return {"access_token": self._issue("access", client_id, user_email, ACCESS_TOKEN_TTL,
                                            scopes=scopes),
                "token_type": "bearer",
                "refresh_token": self._issue("refresh", client_id, user_email,
                                             REFRESH_TOKEN_TTL, scopes=scopes),
                "expires_in": EXPIRES_IN, "scope": " ".join(scopes)}

    # API --------------------------------------------------------------------

    def _user_for(self, tok: _Token, user_id: str) -> _User:
        with self._lock:
            if user_id == "me":
                return self._users[(tok.user_email or self.owner_email).lower()]
            found = self._users.get(user_id.lower()) or next(
                (u for u in self._users.values() if u.id == user_id), None)
        if found is None:
            raise _api_error(404, 1001, f"User does not exist: {user_id}.")
        return found

    @staticmethod
    def _page_size(params, default: int = 30) -> int:
        raw = params.get("page_size") or str(default)
        if not raw.isdigit() or int(raw) < 1:
            raise _api_error(400, 300, "Invalid field.")
        return min(int(raw), MAX_PAGE_SIZE)

    def _date_param(self, params, name: str, default: date) -> date:
        raw = params.get(name)
        if not raw:
            return default
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            raise _api_error(400, 300, f"Invalid parameter: {name}.") from None

    def _page(self, query: tuple, params, total: int, page_size: int) -> tuple[int, str]:
        """Start offset for this request and the next_page_token ('' on the last page)."""
        start = 0
        token = params.get("next_page_token")
        now = self.clock()
        with self._lock:
            if token:
                saved = self._page_tokens.get(token)
                if saved is None or saved[0] != query or saved[2] <= now:
                    raise _api_error(400, 300, "The next page token is invalid or expired.")
                start = saved[1]
            nxt = ""
            if start + page_size < total:
                nxt = secrets.token_urlsafe(24)
                self._page_tokens[nxt] = (query, start + page_size, now + PAGE_TOKEN_TTL)
        return start, nxt

    def _list_recordings(self, tok: _Token, user_id: str, params, base: str) -> dict:
        user = self._user_for(tok, user_id)
        self._require(tok, "cloud_recording:read:list_user_recordings", own=self._own(tok, user))
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        to = self._date_param(params, "to", today)
        frm = self._date_param(params, "from", to - timedelta(days=1))
        if frm > to:
            raise _api_error(400, 300, "The from date must be earlier than the to date.")
        if (to - frm).days > MAX_WINDOW_DAYS:
            raise _api_error(400, 300, "The date range must be within one month.")
        page_size = self._page_size(params)
        with self._lock:
            found = sorted((m for m in self._meetings.values()
                            if m.host is user and frm <= m.start.date() <= to),
                           key=lambda m: m.start, reverse=True)
            start, nxt = self._page(("list", user.id, frm, to, page_size), params,
                                    len(found), page_size)
            chosen = found[start:start + page_size]
            meetings = [self._meeting_json(m, base) for m in chosen]  # no host_email here
            for meeting in chosen:
                self._polled(meeting)
        return {"from": frm.isoformat(), "to": to.isoformat(),
                "page_count": math.ceil(len(found) / page_size), "page_size": page_size,
                "total_records": len(found), "next_page_token": nxt, "meetings": meetings}

    def _find_meeting(self, meeting_id: str) -> _Meeting | None:
        if "%" in meeting_id:           # double-encoded uuid: the server decoded one layer
            meeting_id = unquote(meeting_id)
        with self._lock:
            if meeting_id.isdigit():     # numeric id: the latest instance
                instances = [m for m in self._meetings.values() if m.id == int(meeting_id)]
                return max(instances, key=lambda m: m.start) if instances else None
            return self._meetings.get(meeting_id)

    def _meeting_recordings(self, tok: _Token, meeting_id: str, params, base: str) -> dict:
        meeting = self._find_meeting(meeting_id)
        if meeting is None or not (meeting.files or meeting.participant_files):
            raise _api_error(404, 3301, "There is no recording for this meeting.")
        self._require(tok, "cloud_recording:read:list_recording_files",
                      own=self._own(tok, meeting.host))
        with self._lock:
            body = self._meeting_json(meeting, base, participant_audio=True)
            self._polled(meeting)
        body["password"] = ""
        body["recording_play_passcode"] = ""
        if "download_access_token" in (params.get("include_fields") or "").split(","):
            ttl = params.get("ttl")
            ttl_s = int(ttl) if ttl and ttl.isdigit() else DOWNLOAD_TOKEN_TTL
            body["download_access_token"] = self._issue(
                "download", self.client_id, None, min(ttl_s, 604800) or DOWNLOAD_TOKEN_TTL,
                meeting_uuid=meeting.uuid)
        return body

    def _participants(self, tok: _Token, meeting_id: str, params) -> dict:
        meeting = self._find_meeting(meeting_id)
        if meeting is None:
            raise _api_error(404, 3001, f"Meeting does not exist: {meeting_id}.")
        self._require(tok, "meeting:read:list_past_participants",
                      own=self._own(tok, meeting.host))
        page_size = self._page_size(params)
        join, leave = meeting.start, meeting.start + timedelta(seconds=meeting.duration_s)
        rows = []
        with self._lock:
            for name, email in meeting.participants:
                user = self._users.get(email.lower())
                # Since 2022 Zoom shows a guest's e-mail only if they registered or were on
                # the calendar invite (the account's own users always).
                shown = email if user or email.lower() in meeting.invited else ""
                rows.append({"id": user.id if user else "", "user_id": str(16778240 + len(rows)),
                             "name": name, "user_email": shown, "join_time": _iso(join),
                             "leave_time": _iso(leave), "duration": int(meeting.duration_s),
                             "failover": False, "status": "in_meeting"})
        start, nxt = self._page(("participants", meeting.uuid, page_size), params,
                                len(rows), page_size)
        return {"page_count": math.ceil(len(rows) / page_size), "page_size": page_size,
                "total_records": len(rows), "next_page_token": nxt,
                "participants": rows[start:start + page_size]}

    def _meeting_json(self, meeting: _Meeting, base: str, *,
                      participant_audio: bool = False) -> dict:
        end = meeting.start + timedelta(seconds=meeting.duration_s)

        def file_json(made: _File) -> dict:
            row = {"id": made.id, "meeting_id": meeting.uuid,
                   "recording_start": _iso(meeting.start), "recording_end": _iso(end),
                   "file_type": made.file_type, "file_extension": made.file_extension,
                   "file_size": len(made.data),
                   "play_url": f"{base}/rec/play/{made.id}",
                   "download_url": f"{base}/rec/download/{made.id}",
                   "status": made.status, "recording_type": made.recording_type}
            if made.participant_email:
                row = {k: v for k, v in row.items() if k not in ("meeting_id", "recording_type")}
                row["file_name"] = made.file_name
            return row

        body = {"uuid": meeting.uuid, "id": meeting.id, "account_id": self.account_id,
                "host_id": meeting.host.id,
                "topic": meeting.topic, "type": 2, "start_time": _iso(meeting.start),
                "timezone": meeting.timezone, "duration": max(1, round(meeting.duration_s / 60)),
                "total_size": sum(len(f.data) for f in meeting.files),
                "recording_count": len(meeting.files),
                "share_url": f"{base}/rec/share/{meeting.share_id}",
                "recording_files": [file_json(f) for f in meeting.files]}
        if participant_audio and meeting.participant_files:
            body["participant_audio_files"] = [file_json(f) for f in meeting.participant_files]
        return body

    # Downloads --------------------------------------------------------------

    def _download_redirect(self, file_id: str, request, base: str) -> str:
        header = request.headers.get("authorization", "")
        value = (header[7:].strip() if header.lower().startswith("bearer ")
                 else request.query_params.get("access_token"))
        with self._lock:
            made = self._files.get(file_id)
        tok = self._valid_token(value, ("access", "download"))
        if tok is None or tok.expires_at <= self.clock():
            raise _api_error(401, 124, "Invalid access token.")
        if made is None or (tok.kind == "download" and tok.meeting_uuid != made.meeting_uuid):
            raise _api_error(404, 3301, "This recording does not exist.")
        if made.status != "completed":
            raise _api_error(404, 3301, "This recording is still processing.")
        expires = int(self.clock()) + SIGNED_URL_TTL
        return f"{base}/rec/signed/{file_id}?" + urlencode(
            {"sig": self._sig(file_id, expires), "expires": expires})

    def _sig(self, file_id: str, expires: int) -> str:
        return hmac.new(self._sign_key, f"{file_id}:{expires}".encode(),
                        hashlib.sha256).hexdigest()

    def _signed_file(self, file_id: str, sig: str, expires: int) -> _File:
        with self._lock:
            made = self._files.get(file_id)
        if (made is None or not hmac.compare_digest(sig, self._sig(file_id, expires))
                or expires <= self.clock()):
            raise ZoomError(403, {"code": 403, "message": "Access denied: bad or expired signature."})
        return made


def demo_seed(sandbox: ZoomSandbox, demo_dir: str | Path,
              work_dir: str | Path | None = None, *,
              skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Seed the committed demo calls (manifests *.yaml) as Zoom meetings hosted by the rep.

    The host is the first participant who is a rep in `team.yaml` next to the calls folder
    (else the first participant); everyone was on the calendar invite. A dual-channel call (`channels:` in its manifest) becomes a
    mixed recording plus one audio file per participant, as Zoom's "record a separate audio
    file of each participant" gives; the per-channel files are written under `work_dir`.
    Calls whose manifest stem is in `skip` are left out (another platform's). Returns
    {external_id: meeting uuid}.
    """
    import tempfile

    import yaml

    demo_dir = Path(demo_dir)
    reps: set[str] = set()
    for team_file in (demo_dir / "team.yaml", demo_dir.parent / "team.yaml"):
        if team_file.is_file():
            team = yaml.safe_load(team_file.read_text(encoding="utf-8")) or {}
            reps = {u["email"].lower() for u in team.get("users", []) if u.get("role") == "rep"}
            break
    seeded = {}
    for manifest in sorted(demo_dir.glob("*.yaml")):
        call = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
        if "started_at" not in call or not call.get("participants") or manifest.stem in skip:
            continue
        people = [(p["name"], p["email"]) for p in call["participants"]]
        host = next((e for _, e in people if e.lower() in reps), people[0][1])
        recording = demo_dir / call["recording"] if call.get("recording") else None
        transcript = demo_dir / call["transcript"] if call.get("transcript") else None
        per_person = None
        if recording and recording.is_file() and call.get("channels"):
            work_dir = Path(work_dir or tempfile.mkdtemp(prefix="zoom-sandbox-"))
            per_person = split_channels(recording, call["channels"], work_dir / manifest.stem)
        seeded[call.get("external_id", manifest.stem)] = sandbox.add_meeting(
            call.get("title", manifest.stem), str(call["started_at"]), host, people,
            audio_path=recording if recording and recording.is_file() else None,
            transcript_vtt=transcript if transcript and transcript.is_file() else None,
            participant_audio=per_person,
            # Sales calls are scheduled: the buyers were on the calendar invite, so Zoom
            # shows their e-mails (a guest who joined by link alone stays nameless).
            invited=[e for _, e in people])
    return seeded


def split_channels(recording: Path, channels: dict, dest: Path) -> dict[str, Path]:
    """One 16 kHz mono WAV per channel of `recording`, named for the participant on it."""
    import wave

    import av
    import numpy as np

    dest.mkdir(parents=True, exist_ok=True)
    with av.open(str(recording)) as container:
        resampler = av.AudioResampler(format="s16p", rate=16000)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    samples = np.concatenate(chunks, axis=1)  # (channels, n), int16
    files = {}
    for index, email in channels.items():
        path = dest / f"channel-{int(index)}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(np.ascontiguousarray(samples[int(index)]).tobytes())
        files[email] = path
    return files
