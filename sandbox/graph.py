"""A wire-accurate Microsoft Entra ID + Microsoft Graph (Teams meetings) emulator.

`GraphSandbox` holds one tenant in memory behind a lock: an app registration (secret and,
optionally, a certificate), admin consent, users, Teams meetings with their transcripts and
recordings, calendar events, and change-notification subscriptions. `create_app()` serves
both hosts on one origin: Entra (`/{tenant}/v2.0/...`, `/{tenant}/oauth2/v2.0/token`) and
Graph (`/v1.0/...`); `start(tls)` runs it over HTTPS on loopback (sandbox.server.serve).

Facts checked (paths, field names, error codes; no text or code copied):
- msal 1.39 `authority.py`: with instance_discovery=False it GETs
  `{authority}/v2.0/.well-known/openid-configuration` and needs `authorization_endpoint` and
  `token_endpoint` (https, tenant segment); `application.py`: a certificate credential signs
  a PS256 assertion with `x5t#S256` (RS256 + `x5t` when given a SHA-1 thumbprint).
- entra-docs `v2-admin-consent.md` (redirect: admin_consent, tenant, scope, state);
  MicrosoftDocs/azure-docs#114009 (a declined consent redirects with error=access_denied,
  AADSTS65004, error_uri, admin_consent=True, state, no tenant); entra-docs
  `reference-error-codes.md` (AAD error body fields, AADSTS90002, 900144, 500011, 900971).
- docs-contrib `onlinemeeting-getalltranscripts.md` (function parameters, `skipToken` in
  `@odata.nextLink`, `#Collection(callTranscript)`, teamworkUserIdentity organizer),
  `calltranscript-get.md` (content is text/vtt with or without `$format=text/vtt`),
  `teams-changenotifications-callrecording-and-calltranscript.md` (notification resource is
  `communications/onlineMeetings('{id}')/transcripts('{id}')`, `#Microsoft.Graph.callTranscript`,
  lifecycle URL required beyond 1 h), `change-notifications-delivery-webhooks.md` and its
  validation include (validationToken, 10 s, 200 text/plain; PATCH 200; DELETE 204; duplicate
  subscriptions allowed), `change-notifications-lifecycle-events.md` (lifecycle body),
  `subscription-reauthorize.md` (204), `resources/subscription.md` (fields, clientState <= 128).
- Issues: msgraph-sdk-powershell#3348 (403 "General", "No application access policy found for
  this app."), microsoft-graph-docs-contrib#7726 (ExtensionError "Subscription expiration can
  only be N minutes in the future."), msgraph-sdk-php#221 (404 ResourceNotFound "The object was
  not found."), splunk/azure-functions-splunk#26 (ValidationError on a failed validation).
Guessed (no primary source found): the GraphAccessToTranscriptsDisabled body shape, the
messages for a wrong meetingOrganizerUserId, missing roles, bad $top, the default page size of
getAllTranscripts (100), the 4320-minute limit for transcript/recording subscriptions, and the
AAD codes for a bad client assertion.
"""

import base64
import hashlib
import json
import random
import re
import secrets
import time
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from sandbox.emulator import Emulator, ranged

DEFAULT_TENANT_ID = "5f7f4a5e-0c3a-4b1e-9a43-2b9d1c0e7a11"
DEFAULT_ROLES = ("OnlineMeetingTranscript.Read.All", "OnlineMeetingRecording.Read.All",
                 "OnlineMeetings.Read.All", "User.Read.All", "Calendars.Read")
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = (f"{GRAPH_RESOURCE}/.default", f"{GRAPH_APP_ID}/.default")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

ACCESS_TOKEN_TTL = 3600           # an hour (`expires_in` says 3599)
EXPIRES_IN = 3599
USERS_PAGE, USERS_MAX_PAGE = 100, 999
ARTIFACTS_PAGE = 100               # guessed: the docs do not say
CALENDAR_PAGE = 10                 # Outlook's default page size
SUBSCRIPTION_MAX_MINUTES = 4320    # onlineMeeting resources (see the module docstring)
LIFECYCLE_URL_AFTER = timedelta(hours=1)
CLIENT_STATE_MAX = 128
VALIDATION_TIMEOUT_S = 10.0
NOTIFY_TIMEOUT_S = 3.0
RATE_WINDOW_S = 10.0
FUNCTION_SAFE = "'=,:"              # kept readable in an OData function segment
JSON_MEDIA = ("application/json;odata.metadata=minimal;odata.streaming=true;"
              "IEEE754Compatible=false;charset=utf-8")

# The endpoint keys counted in `GraphSandbox.requests` (and accepted by fail_next and
# set_rate_limit).
OPENID = "GET /{tenant}/v2.0/.well-known/openid-configuration"
ADMIN_CONSENT = "GET /{tenant}/v2.0/adminconsent"
TOKEN = "POST /{tenant}/oauth2/v2.0/token"
USERS = "GET /v1.0/users"
USER = "GET /v1.0/users/{id}"
ALL_TRANSCRIPTS = "GET /v1.0/users/{userId}/onlineMeetings/getAllTranscripts"
ALL_RECORDINGS = "GET /v1.0/users/{userId}/onlineMeetings/getAllRecordings"
MEETING = "GET /v1.0/users/{userId}/onlineMeetings/{meetingId}"
TRANSCRIPTS = "GET /v1.0/users/{userId}/onlineMeetings/{meetingId}/transcripts"
TRANSCRIPT = "GET /v1.0/users/{userId}/onlineMeetings/{meetingId}/transcripts/{transcriptId}"
TRANSCRIPT_CONTENT = TRANSCRIPT + "/content"
RECORDINGS = "GET /v1.0/users/{userId}/onlineMeetings/{meetingId}/recordings"
RECORDING = "GET /v1.0/users/{userId}/onlineMeetings/{meetingId}/recordings/{recordingId}"
RECORDING_CONTENT = RECORDING + "/content"
CALENDAR_VIEW = "GET /v1.0/users/{userId}/calendarView"
SUBSCRIPTIONS_POST = "POST /v1.0/subscriptions"
SUBSCRIPTIONS_LIST = "GET /v1.0/subscriptions"
SUBSCRIPTION_GET = "GET /v1.0/subscriptions/{id}"
SUBSCRIPTION_PATCH = "PATCH /v1.0/subscriptions/{id}"
SUBSCRIPTION_DELETE = "DELETE /v1.0/subscriptions/{id}"
SUBSCRIPTION_REAUTHORIZE = "POST /v1.0/subscriptions/{id}/reauthorize"

BATCH = "POST /v1.0/$batch"
MAX_BATCH = 20  # requests in one JSON batch
ENDPOINTS = (OPENID, ADMIN_CONSENT, TOKEN, USERS, USER, ALL_TRANSCRIPTS, ALL_RECORDINGS,
             MEETING, TRANSCRIPTS, TRANSCRIPT, TRANSCRIPT_CONTENT, RECORDINGS, RECORDING,
             RECORDING_CONTENT, CALENDAR_VIEW, SUBSCRIPTIONS_POST, SUBSCRIPTIONS_LIST,
             SUBSCRIPTION_GET, SUBSCRIPTION_PATCH, SUBSCRIPTION_DELETE,
             SUBSCRIPTION_REAUTHORIZE, BATCH)

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


# ------------------------------------------------------------------------------ errors


class GraphError(Exception):
    """A Graph error, rendered as `{"error": {"code", "message", "innerError"}}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None,
                 inner_code: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.inner_code = headers or {}, inner_code


class AADError(Exception):
    """An Entra token-endpoint error: `error`, `error_description` (AADSTSnnnn: ... with
    trace, correlation and timestamp lines), `error_codes`, `timestamp`, ids, `error_uri`."""

    def __init__(self, status: int, error: str, code: int, message: str,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.error, self.code, self.message = status, error, code, message
        self.headers = headers or {}


class ConsentPageError(Exception):
    """An error Entra shows as a sign-in page (no redirect back to the app)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, {
        "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline'
                            f'.com/common/oauth2/authorize", client_id="{GRAPH_APP_ID}"'})


# ------------------------------------------------------------------------------ helpers


def _iso(moment: datetime) -> str:
    """Graph's DateTimeOffset: UTC with seven fractional digits and Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _outlook_time(moment: datetime) -> str:
    """Outlook's dateTimeTimeZone.dateTime: no offset, seven fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def _notify_time(moment: datetime) -> str:
    """subscriptionExpirationDateTime as notifications carry it (+00:00 offset)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def _parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strip().strip("'")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)   # .NET's 7 digits
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _query(params: dict) -> str:
    """A query string as Graph writes it in next links ($-names unencoded)."""
    return "&".join(f"{quote(str(k), safe='$')}={quote(str(v), safe='')}"
                    for k, v in params.items())


def _ssl_verify(verify: str | Path | bool):
    """httpx's `verify`: a CA bundle path becomes an SSLContext (str paths are deprecated)."""
    if isinstance(verify, (str, Path)):
        import ssl

        return ssl.create_default_context(cafile=str(verify))
    return verify


_CUE_TIME = re.compile(r"-->\s*(?:(\d+):)?(\d{1,2}):(\d\d)[.,](\d{1,3})")


def _vtt_end_seconds(text: str) -> float | None:
    ends = _CUE_TIME.findall(text)
    if not ends:
        return None
    h, m, s, ms = ends[-1]
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def teams_vtt(text: str) -> str:
    """WebVTT as Teams writes it: every cue line a `<v Speaker>text</v>` voice span
    ("Name: text" lines are converted; lines already in voice spans are kept)."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    if not lines or not lines[0].startswith("WEBVTT"):
        lines = ["WEBVTT", ""] + lines
    out, in_cue = [], False
    for line in lines:
        if "-->" in line:
            in_cue = True
            out.append(line)
            continue
        if not line.strip():
            in_cue = False
            out.append(line)
            continue
        if in_cue and not line.lstrip().startswith("<v "):
            said = re.match(r"^\s*([^:<>]{1,80}?):\s+(.*)$", line)
            line = f"<v {said.group(1).strip()}>{said.group(2)}</v>" if said else line
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------- state


@dataclass
class _User:
    id: str
    email: str
    name: str

    @property
    def given_surname(self) -> tuple[str | None, str | None]:
        first, _, last = self.name.partition(" ")
        return (first or None), (last or None)


@dataclass
class _Artifact:
    kind: str                       # "transcripts" | "recordings"
    id: str
    meeting_id: str
    created: datetime
    ended: datetime
    data: bytes
    media_type: str


@dataclass
class _Meeting:
    id: str
    thread_id: str
    subject: str
    organizer: _User
    start: datetime
    end: datetime
    created: datetime
    attendees: list[_User]
    external: list[tuple[str, str]]
    call_id: str
    correlation_id: str
    join_id: str
    passcode: str
    event_ids: dict[str, str] = field(default_factory=dict)   # user id -> calendar event id
    transcripts: list[_Artifact] = field(default_factory=list)
    recordings: list[_Artifact] = field(default_factory=list)


@dataclass
class _Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    expires: datetime
    client_state: str | None
    created: datetime
    latest_tls: str = "v1_2"
    reauthorization_required: bool = False


@dataclass
class _Certificate:
    public_key: object
    sha1: str            # base64url thumbprints, as JWT headers carry them
    sha256: str


class GraphSandbox(Emulator):
    """In-memory Entra tenant + Graph for one app: users, Teams meetings with transcripts and
    recordings, calendars, subscriptions; faults and counters for tests.

    Seed with `add_user` / `add_meeting`, serve with `start(tls)`; point msal at
    `authority=f"{url}/{tenant_id}"` (instance_discovery=False) and Graph calls at
    `f"{url}/v1.0"`. The app starts unconsented: run the admin-consent redirect (or call
    `grant_consent()`) before asking for tokens. `clock` returns epoch seconds;
    `advance(seconds)` moves it on.
    """

    endpoints, unscriptable, rate_window_s = ENDPOINTS, (ADMIN_CONSENT,), RATE_WINDOW_S

    def __init__(self, *, client_id: str = "sandbox-graph-client-id",
                 client_secret: str = "sandbox-graph-secret",
                 tenant_id: str = DEFAULT_TENANT_ID, roles: Iterable[str] = DEFAULT_ROLES,
                 clock: Callable[[], float] = time.time, consented: bool = False,
                 tenant_domain: str = "acme-analytics.onmicrosoft.com",
                 app_name: str = "coachloop", stable_ids: bool = False):
        self._init_emulator(clock)
        self.client_id, self.client_secret, self.tenant_id = client_id, client_secret, tenant_id
        # Ids drawn from what was seeded instead of at random: the same demo calls get the
        # same ids in every run, as a real tenant's meetings keep theirs.
        self.stable_ids = stable_ids
        self.tenant_domain, self.app_name = tenant_domain, app_name
        self.roles: tuple[str, ...] = tuple(roles)
        self.content_calls: Counter[str] = Counter()   # metered: artifact id -> downloads
        self.notification_log: list[tuple[str, dict, int | None]] = []
        self.service_principal_id = str(uuid_lib.uuid4())
        self._key = secrets.token_bytes(32)
        self._consented = consented
        self._declines = False
        self._policy: bool | set[str] = True
        self._transcripts_disabled = False
        self._users: dict[str, _User] = {}
        self._meetings: dict[str, _Meeting] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._pending: list[tuple[str, str, str]] = []   # (subscription, kind, artifact id)
        self._tokens: dict[str, float] = {}               # jti -> expiry (epoch)
        self._certificates: list[_Certificate] = []

    # ------------------------------------------------------------------- seeding

    def add_user(self, email: str, name: str = "") -> str:
        """A user of the tenant (userPrincipalName = mail = email); returns its id."""
        with self._lock:
            user = self._users.get(email.lower())
            if user is None:
                made = uuid_lib.uuid5(uuid_lib.NAMESPACE_URL, f"{self.tenant_id}/{email.lower()}") \
                    if self.stable_ids else uuid_lib.uuid4()
                user = _User(str(made), email, name or email.split("@")[0])
                self._users[email.lower()] = user
            elif name and user.name == user.email.split("@")[0]:
                user.name = name
            return user.id

    def user_id(self, email: str) -> str:
        """The id of a seeded user."""
        with self._lock:
            return self._users[email.lower()].id

    def add_meeting(self, subject: str, start: datetime | str, organizer_email: str,
                    attendees: Iterable[tuple[str, str]] = (),
                    external_attendees: Iterable[tuple[str, str]] = (),
                    transcript_vtt: str | Path | None = None,
                    recording: bytes | Path | None = None, recording_type: str = "video/mp4",
                    duration_s: float | None = None, notify: bool = True) -> str:
        """Seed a scheduled Teams meeting (and its calendar event); returns the meeting id.

        `attendees` are tenant users (added if unknown); `external_attendees` are guests and
        appear only on the calendar event. The transcript (WebVTT; "Name: text" cues become
        `<v Name>` spans) and recording are created at its start and available when it ends:
        start + duration, the duration taken from the last cue when not given, else 30
        minutes. With `notify`, live subscriptions covering them get a change notification,
        sent by `deliver_notifications()`.
        """
        attendees, external = list(attendees), list(external_attendees)
        organizer_name = next((n for n, e in attendees if e.lower() == organizer_email.lower()),
                              "")
        self.add_user(organizer_email, organizer_name)
        for name, email in attendees:
            self.add_user(email, name)
        vtt = None
        if transcript_vtt is not None:
            raw = (transcript_vtt.read_text(encoding="utf-8")
                   if isinstance(transcript_vtt, Path) else str(transcript_vtt))
            vtt = teams_vtt(raw)
        if duration_s is None:
            duration_s = (_vtt_end_seconds(vtt) if vtt else None) or 1800.0
        data = recording.read_bytes() if isinstance(recording, Path) else recording
        begin = _parse_time(start)
        end = begin + timedelta(seconds=float(duration_s))
        with self._lock:
            organizer = self._users[organizer_email.lower()]
            rng = random.Random(f"{organizer.id}|{subject}|{begin.isoformat()}") \
                if self.stable_ids else random.SystemRandom()

            def uuid4() -> uuid_lib.UUID:
                return uuid_lib.UUID(int=rng.getrandbits(128), version=4)

            thread = ""

            def meeting_key() -> str:
                nonlocal thread
                thread = f"19:meeting_{_b64url(rng.randbytes(30))}@thread.v2"
                return f"1*{organizer.id}*0**{thread}"

            meeting_id = self._opaque_id(meeting_key)
            meeting = _Meeting(
                id=meeting_id, thread_id=thread, subject=subject, organizer=organizer,
                start=begin, end=end, created=begin - timedelta(days=1),
                attendees=[self._users[e.lower()] for _, e in attendees
                           if e.lower() != organizer_email.lower()],
                external=external, call_id=str(uuid4()),
                correlation_id=str(uuid4()),
                join_id=str(rng.randrange(9 * 10**11) + 10**11),
                passcode=_b64url(rng.randbytes(6))[:6])
            for user in [organizer, *meeting.attendees]:
                meeting.event_ids[user.id] = "AAMkA" + _b64url(rng.randbytes(66))
            if vtt is not None:
                meeting.transcripts.append(_Artifact(
                    "transcripts", self._opaque_id(lambda: f"1##0##{uuid4()}"), meeting_id,
                    begin, end, vtt.encode(), "text/vtt"))
            if data is not None:
                meeting.recordings.append(_Artifact(
                    "recordings", self._opaque_id(
                        lambda: f"V2##1{organizer.id}{self.tenant_id}{rng.randbytes(20).hex()}"
                                f"##{uuid4()}"), meeting_id, begin, end, bytes(data),
                    recording_type))
            self._meetings[meeting_id] = meeting
            if notify:
                now = self.now()
                for artifact in meeting.transcripts + meeting.recordings:
                    for sub in self._live_subscriptions():
                        if sub.created <= now and self._covers(sub, meeting, artifact.kind):
                            self._pending.append((sub.id, artifact.kind, artifact.id))
            return meeting_id

    def transcripts_of(self, email: str) -> list[dict]:
        """The callTranscript objects of the meetings this user organized (no side effects)."""
        return self._artifacts_of(email, "transcripts")

    def recordings_of(self, email: str) -> list[dict]:
        """The callRecording objects of the meetings this user organized (no side effects)."""
        return self._artifacts_of(email, "recordings")

    def _artifacts_of(self, email: str, kind: str) -> list[dict]:
        base = self.base_url or "https://graph.microsoft.com"
        with self._lock:
            user = self._users[email.lower()]
            found = sorted((a for m in self._meetings.values() if m.organizer is user
                            for a in getattr(m, kind)), key=lambda a: a.created)
            return [self._artifact_json(a, base) for a in found]

    # ---------------------------------------------------------- tenant controls

    def grant_consent(self) -> None:
        """The tenant's admin has consented to the app (as the adminconsent flow records)."""
        with self._lock:
            self._consented = True

    def revoke_consent(self) -> None:
        """The admin removed the app (its service principal): token requests fail with
        AADSTS700016; tokens already issued work until they expire."""
        with self._lock:
            self._consented = False

    def decline_consent(self, declines: bool = True) -> None:
        """The admin clicks Cancel on the consent page: the redirect carries an error."""
        with self._lock:
            self._declines = declines

    def set_roles(self, roles: Iterable[str]) -> None:
        """The application permissions consented to; tokens issued from now on carry them."""
        with self._lock:
            self.roles = tuple(roles)

    def register_certificate(self, pem_public_cert: str | bytes) -> None:
        """Add a certificate credential to the app registration (client assertions)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        pem = pem_public_cert.encode() if isinstance(pem_public_cert, str) else pem_public_cert
        cert = x509.load_pem_x509_certificate(pem)
        with self._lock:
            self._certificates.append(_Certificate(
                cert.public_key(), _b64url(cert.fingerprint(hashes.SHA1())),
                _b64url(cert.fingerprint(hashes.SHA256()))))

    def expire_tokens(self) -> None:
        """Every access token issued so far is expired now."""
        with self._lock:
            stamp = self._epoch()
            for jti in self._tokens:
                self._tokens[jti] = min(self._tokens[jti], stamp)

    def set_access_policy(self, granted: bool | Iterable[str]) -> None:
        """The Teams application access policy: True (global), False (none), or the e-mails
        (or ids) of the users it was granted to. Meeting, transcript and recording calls for a user
        it does not cover answer 403."""
        with self._lock:
            self._policy = granted if isinstance(granted, bool) else {
                e.lower() for e in granted}

    def disable_transcript_access(self, disabled: bool = True) -> None:
        """The tenant turned off Graph access to transcripts (Teams admin center)."""
        with self._lock:
            self._transcripts_disabled = disabled

    # ------------------------------------------------------------- notifications

    def deliver_notifications(self) -> list:
        """POST every queued change notification that is due (its artifact exists by now,
        its subscription is live and not waiting for reauthorization); returns the
        receivers' responses. Failed deliveries stay queued for the next call."""
        import httpx

        with self._lock:
            now = self.now()
            due, keep = [], []
            for item in self._pending:
                sub_id, kind, artifact_id = item
                sub = self._live_subscription(sub_id)
                artifact = self._artifact(kind, artifact_id)
                if sub is None or artifact is None:
                    continue
                if sub.reauthorization_required or artifact.created > now:
                    keep.append(item)
                    continue
                due.append((item, sub.notification_url, self._notification(sub, artifact)))
            self._pending = keep
        responses = []
        with httpx.Client(verify=_ssl_verify(self.receiver_ca), timeout=NOTIFY_TIMEOUT_S) as client:
            for item, url, body in due:
                try:
                    reply = client.post(url, content=json.dumps(body).encode(), headers={
                        "content-type": "application/json; charset=utf-8"})
                except httpx.HTTPError:
                    reply = None
                with self._lock:
                    self.notification_log.append((url, body, reply and reply.status_code))
                    if reply is None or not reply.is_success:
                        self._pending.append(item)
                if reply is not None:
                    responses.append(reply)
        return responses

    def pending_notifications(self) -> int:
        """How many change notifications wait to be delivered (those whose subscription is
        gone are dropped)."""
        with self._lock:
            self._pending = [item for item in self._pending
                             if self._live_subscription(item[0]) is not None]
            return len(self._pending)

    def lifecycle_event(self, subscription_id: str, event: str):
        """POST a lifecycle notification to the subscription's lifecycleNotificationUrl;
        returns the receiver's response. `reauthorizationRequired` pauses its change
        notifications until it is reauthorized or renewed; `subscriptionRemoved` deletes it."""
        import httpx

        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event is one of {LIFECYCLE_EVENTS}")
        with self._lock:
            sub = self._live_subscription(subscription_id)
            if sub is None:
                raise KeyError(subscription_id)
            if not sub.lifecycle_url:
                raise ValueError("the subscription has no lifecycleNotificationUrl")
            item = {"subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": _notify_time(sub.expires),
                    "tenantId": self.tenant_id}
            if sub.client_state is not None:
                item["clientState"] = sub.client_state
            item["lifecycleEvent"] = event
            body, url = {"value": [item]}, sub.lifecycle_url
            if event == "reauthorizationRequired":
                sub.reauthorization_required = True
            elif event == "subscriptionRemoved":
                del self._subscriptions[sub.id]
        with httpx.Client(verify=_ssl_verify(self.receiver_ca), timeout=NOTIFY_TIMEOUT_S) as client:
            reply = client.post(url, content=json.dumps(body).encode(),
                                headers={"content-type": "application/json; charset=utf-8"})
        with self._lock:
            self.notification_log.append((url, body, reply.status_code))
        return reply

    def subscriptions(self) -> list[dict]:
        """The live subscriptions, as Graph lists them (no side effects on counters)."""
        with self._lock:
            return [self._subscription_json(s) for s in self._live_subscriptions()]

    def _notification(self, sub: _Subscription, artifact: _Artifact) -> dict:
        singular = "callTranscript" if artifact.kind == "transcripts" else "callRecording"
        resource = (f"communications/onlineMeetings('{artifact.meeting_id}')/"
                    f"{artifact.kind}('{artifact.id}')")
        item = {"subscriptionId": sub.id, "changeType": "created"}
        if sub.client_state is not None:
            item["clientState"] = sub.client_state
        item.update({"subscriptionExpirationDateTime": _notify_time(sub.expires),
                     "resource": resource,
                     "resourceData": {"id": artifact.id,
                                      "@odata.type": f"#Microsoft.Graph.{singular}",
                                      "@odata.id": resource},
                     "tenantId": self.tenant_id})
        return {"value": [item]}

    # ------------------------------------------------------------------ serving

    def create_app(self):
        """The FastAPI app emulating login.microsoftonline.com and graph.microsoft.com."""
        from fastapi import FastAPI, Request
        from fastapi.responses import (
            HTMLResponse,
            JSONResponse,
            RedirectResponse,
            Response,
        )

        app = FastAPI(title="Graph sandbox", docs_url=None, redoc_url=None, openapi_url=None)
        sandbox = self

        def ids_of(request: Request) -> tuple[str, str]:
            request_id = str(uuid_lib.uuid4())
            return request_id, request.headers.get("client-request-id") or request_id

        @app.exception_handler(GraphError)
        async def graph_error(request: Request, exc: GraphError):
            request_id, client_request_id = ids_of(request)
            inner = {"date": sandbox.now().strftime("%Y-%m-%dT%H:%M:%S"),
                     "request-id": request_id, "client-request-id": client_request_id}
            if exc.inner_code:
                inner = {"code": exc.inner_code, **inner}
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message, "innerError": inner}},
                status_code=exc.status, media_type=JSON_MEDIA,
                headers={**exc.headers, "request-id": request_id,
                         "client-request-id": client_request_id})

        @app.exception_handler(AADError)
        async def aad_error(_request: Request, exc: AADError):
            trace, correlation = str(uuid_lib.uuid4()), str(uuid_lib.uuid4())
            stamp = sandbox.now().strftime("%Y-%m-%d %H:%M:%SZ")
            return JSONResponse({
                "error": exc.error,
                "error_description": f"AADSTS{exc.code}: {exc.message}\r\nTrace ID: {trace}"
                                     f"\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}",
                "error_codes": [exc.code], "timestamp": stamp, "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}"},
                status_code=exc.status, headers={**exc.headers, "x-ms-request-id": trace})

        @app.exception_handler(ConsentPageError)
        async def consent_page(_request: Request, exc: ConsentPageError):
            return HTMLResponse(
                "<!DOCTYPE html><html><head><title>Sign in to your account</title></head>"
                "<body><h1>Sorry, but we're having trouble signing you in.</h1>"
                f"<p id=\"error\">AADSTS{exc.code}: {exc.message}</p></body></html>",
                status_code=400)

        def graph_json(body: dict, status: int = 200) -> Response:
            return JSONResponse(body, status_code=status, media_type=JSON_MEDIA)

        # Graph: subscriptions ---------------------------------------------------

        @app.post("/v1.0/subscriptions")
        async def create_subscription(request: Request):
            await sandbox._gate(SUBSCRIPTIONS_POST)
            roles = sandbox._bearer(request)
            body = await sandbox._json_body(request)
            made = await sandbox._create_subscription(roles, body)
            return graph_json(sandbox._subscription_json(made, sandbox._base_of(request)), 201)

        @app.get("/v1.0/subscriptions")
        async def list_subscriptions(request: Request):
            await sandbox._gate(SUBSCRIPTIONS_LIST)
            sandbox._bearer(request)
            base = sandbox._base_of(request)
            with sandbox._lock:
                value = [sandbox._subscription_json(s) for s in sandbox._live_subscriptions()]
            return graph_json({"@odata.context": f"{base}/v1.0/$metadata#subscriptions",
                               "value": value})

        @app.get("/v1.0/subscriptions/{subscription_id}")
        async def get_subscription(subscription_id: str, request: Request):
            await sandbox._gate(SUBSCRIPTION_GET)
            sandbox._bearer(request)
            sub = sandbox._subscription_or_404(subscription_id)
            return graph_json(sandbox._subscription_json(sub, sandbox._base_of(request)))

        @app.patch("/v1.0/subscriptions/{subscription_id}")
        async def renew_subscription(subscription_id: str, request: Request):
            await sandbox._gate(SUBSCRIPTION_PATCH)
            sandbox._bearer(request)
            body = await sandbox._json_body(request)
            sub = sandbox._renew(subscription_id, body)
            return graph_json(sandbox._subscription_json(sub, sandbox._base_of(request)))

        @app.delete("/v1.0/subscriptions/{subscription_id}")
        async def delete_subscription(subscription_id: str, request: Request):
            await sandbox._gate(SUBSCRIPTION_DELETE)
            sandbox._bearer(request)
            sub = sandbox._subscription_or_404(subscription_id)
            with sandbox._lock:
                sandbox._subscriptions.pop(sub.id, None)
            return Response(status_code=204)

        @app.post("/v1.0/subscriptions/{subscription_id}/reauthorize")
        async def reauthorize(subscription_id: str, request: Request):
            await sandbox._gate(SUBSCRIPTION_REAUTHORIZE)
            sandbox._bearer(request)
            sub = sandbox._subscription_or_404(subscription_id)
            with sandbox._lock:
                sub.reauthorization_required = False
            return Response(status_code=204)

        # Graph: JSON batching. Each step runs through this same app, as its own request
        # (counted, throttled and authorized on its own), with the batch's Authorization.

        @app.post("/v1.0/$batch")
        async def batch(request: Request):
            import httpx as _httpx

            await sandbox._gate(BATCH)
            sandbox._bearer(request)
            body = await sandbox._json_body(request)
            steps = body.get("requests")
            if not isinstance(steps, list) or not steps:
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            if len(steps) > MAX_BATCH:
                raise GraphError(400, "BadRequest", "Number of batch request steps exceeds "
                                 f"the maximum of {MAX_BATCH}.")
            ids = [str(step.get("id") or "") if isinstance(step, dict) else "" for step in steps]
            if "" in ids or len(set(ids)) != len(ids):
                raise GraphError(400, "BadRequest", "Each batch request needs a unique id.")
            answers = []
            transport = _httpx.ASGITransport(app=app)
            async with _httpx.AsyncClient(transport=transport,
                                          base_url=str(request.base_url)) as inner:
                for step in steps:
                    url = str(step.get("url") or "")
                    method = str(step.get("method") or "GET").upper()
                    if not url.startswith("/") or method not in ("GET", "POST", "PATCH",
                                                                 "DELETE"):
                        answers.append({"id": step["id"], "status": 400, "body": {"error": {
                            "code": "BadRequest", "message": "Invalid request URL or method: "
                            "batch URLs are relative to the version (/users…)."}}})
                        continue
                    reply = await inner.request(
                        method, "/v1.0" + url, json=step.get("body"),
                        headers={"authorization": request.headers.get("authorization", ""),
                                 **{k: str(v) for k, v in (step.get("headers") or {}).items()}})
                    try:
                        answer_body = reply.json()
                    except ValueError:
                        answer_body = reply.text
                    kept = {k: v for k, v in reply.headers.items()
                            if k.lower() in ("content-type", "retry-after", "location")}
                    answers.append({"id": step["id"], "status": reply.status_code,
                                    "headers": kept, "body": answer_body})
            answers.reverse()  # Graph does not promise the order: neither does the sandbox
            return graph_json({"responses": answers})

        # Graph: users, meetings, calendars (dispatched on the raw path, so ids that hold
        # '/', '=' or OData function segments survive) ------------------------------

        @app.get("/v1.0/users")
        @app.get("/v1.0/users/{rest:path}")
        async def users_tree(request: Request, rest: str = ""):
            raw = request.scope.get("raw_path") or request.url.path.encode()
            path = raw.decode("latin-1").split("?", 1)[0]
            segments = [unquote(s) for s in path.split("/")[3:] if s != ""]
            return await sandbox._dispatch_users(request, segments)

        # Entra -------------------------------------------------------------------

        @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
        async def openid_configuration(tenant: str, request: Request):
            await sandbox._gate(OPENID, aad=True)
            return JSONResponse(sandbox._openid(tenant, sandbox._base_of(request)))

        @app.get("/{tenant}/discovery/v2.0/keys")
        async def keys(tenant: str):
            return JSONResponse({"keys": []})   # tokens are HMAC-signed; only we check them

        @app.get("/{tenant}/v2.0/adminconsent")
        @app.get("/{tenant}/adminconsent")
        async def admin_consent(tenant: str, request: Request):
            await sandbox._gate(ADMIN_CONSENT, faults=False)
            v2 = request.url.path.endswith("/v2.0/adminconsent")
            return RedirectResponse(sandbox._admin_consent(tenant, request.query_params, v2),
                                    status_code=302)

        @app.post("/{tenant}/oauth2/v2.0/token")
        async def token(tenant: str, request: Request):
            await sandbox._gate(TOKEN, aad=True)
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                                  keep_blank_values=True))
            return JSONResponse(sandbox._token(tenant, form, sandbox._base_of(request)),
                                headers={"Cache-Control": "no-store, no-cache",
                                         "Pragma": "no-cache"})

        return app

    # ------------------------------------------------------------ Entra internals

    @staticmethod
    def _base_of(request) -> str:
        return str(request.base_url).rstrip("/")

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id.lower(), self.tenant_domain.lower())

    def _tenant_missing(self, tenant: str, error: str = "invalid_request") -> AADError:
        return AADError(400, error, 90002,
                        f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                        "tenant ID and are signing into the correct cloud. Check with your "
                        "subscription administrator, this may happen if there are no active "
                        "subscriptions for the tenant.")

    def _openid(self, tenant: str, base: str) -> dict:
        generic = tenant.lower() in ("organizations", "common")
        if not generic and not self._known_tenant(tenant):
            raise self._tenant_missing(tenant, "invalid_tenant")
        segment = tenant if generic else self.tenant_id
        issuer_tid = "{tenantid}" if generic else self.tenant_id
        return {
            "token_endpoint": f"{base}/{segment}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{segment}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{issuer_tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{segment}/oauth2/v2.0/devicecode",
            "http_logout_supported": True, "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{segment}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                                 "preferred_username", "name", "tid", "ver", "at_hash",
                                 "c_hash", "email"],
            "kerberos_endpoint": f"{base}/{segment}/kerberos",
            "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"}

    def _admin_consent(self, tenant: str, query, v2: bool) -> str:
        if tenant.lower() != "common" and tenant.lower() != "organizations" \
                and not self._known_tenant(tenant):
            raise ConsentPageError(90002, f"Tenant '{tenant}' not found. Check to make sure "
                                          "you have the correct tenant ID and are signing into "
                                          "the correct cloud.")
        redirect_uri = query.get("redirect_uri")
        if query.get("client_id") != self.client_id:
            raise ConsentPageError(700016, f"Application with identifier "
                                           f"'{query.get('client_id')}' was not found in the "
                                           f"directory '{self._directory_name()}'.")
        if not redirect_uri:
            raise ConsentPageError(900971, "No reply address provided.")
        if v2 and not query.get("scope"):
            raise ConsentPageError(900144, "The request body must contain the following "
                                           "parameter: 'scope'.")
        with self._lock:
            declined = self._declines
            if not declined:
                self._consented = True
        if declined:
            trace, correlation = uuid_lib.uuid4(), uuid_lib.uuid4()
            stamp = self.now().strftime("%Y-%m-%d %H:%M:%SZ")
            params = {"error": "access_denied",
                      "error_description": "AADSTS65004: User declined to consent to access the "
                                           f"app.\r\nTrace ID: {trace}\r\nCorrelation ID: "
                                           f"{correlation}\r\nTimestamp: {stamp}",
                      "error_uri": "https://login.microsoftonline.com/error?code=65004",
                      "admin_consent": "True"}
        else:
            params = {"admin_consent": "True", "tenant": self.tenant_id}
            if v2:
                params["scope"] = query.get("scope")
        if "state" in query:
            params["state"] = query["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return redirect_uri + sep + urlencode(params)

    def _directory_name(self) -> str:
        return self.tenant_domain.split(".")[0]

    def _token(self, tenant: str, form: dict, base: str) -> dict:
        if tenant.lower() in ("common", "consumers", "organizations"):
            raise AADError(400, "invalid_request", 9001023, "The grant type isn't supported "
                           "over the /common or /consumers endpoints. Please use the "
                           "/organizations or tenant-specific endpoint.")
        if not self._known_tenant(tenant):
            raise self._tenant_missing(tenant)
        grant = form.get("grant_type")
        if not grant:
            raise AADError(400, "invalid_request", 900144, "The request body must contain the "
                           "following parameter: 'grant_type'.")
        if grant != "client_credentials":
            raise AADError(400, "unsupported_grant_type", 70003, "The app requested an "
                           f"unsupported grant type '{grant}'.")
        client_id = form.get("client_id") or ""
        if not client_id:
            raise AADError(400, "invalid_request", 900144, "The request body must contain the "
                           "following parameter: 'client_id'.")
        with self._lock:
            known = client_id == self.client_id and self._consented
        if not known:
            raise AADError(400, "unauthorized_client", 700016, "Application with identifier "
                           f"'{client_id}' was not found in the directory "
                           f"'{self._directory_name()}'."
                           " This can happen if the application has not been installed by the "
                           "administrator of the tenant or consented to by any user in the "
                           "tenant. You may have sent your authentication request to the wrong "
                           "tenant.")
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if form.get("client_assertion_type") != JWT_BEARER:
                raise AADError(400, "invalid_request", 700010, "Invalid client assertion type.")
            self._check_assertion(form.get("client_assertion") or "",
                                  f"{base}/{tenant}/oauth2/v2.0/token",
                                  f"{base}/{self.tenant_id}/oauth2/v2.0/token")
            appidacr = "2"
        elif "client_secret" in form:
            if not secrets.compare_digest(form["client_secret"].encode(),
                                          self.client_secret.encode()):
                raise AADError(401, "invalid_client", 7000215, "Invalid client secret provided. "
                               "Ensure the secret being sent in the request is the client "
                               "secret value, not the client secret ID, for a secret added to "
                               f"app '{self.client_id}'.")
            appidacr = "1"
        else:
            raise AADError(401, "invalid_client", 7000216, "'client_assertion', "
                           "'client_secret' or 'request' is required for the "
                           "'client_credentials' grant type.")
        scope = (form.get("scope") or "").strip()
        if not scope:
            raise AADError(400, "invalid_request", 900144, "The request body must contain the "
                           "following parameter: 'scope'.")
        if any(not s.endswith("/.default") for s in scope.split()) or len(scope.split()) != 1:
            raise AADError(400, "invalid_scope", 1002012, f"The provided value for scope "
                           f"{scope} is not valid. Client credential flows must have a scope "
                           "value with /.default suffixed to the resource identifier "
                           "(application ID URI).")
        if scope not in GRAPH_SCOPES:
            resource = scope[:-len("/.default")]
            raise AADError(400, "invalid_resource", 500011, f"The resource principal named "
                           f"{resource} was not found in the tenant named "
                           f"{self._directory_name()}. This can happen if the application has "
                           "not been installed by the administrator of the tenant or consented "
                           "to by any user in the tenant. You might have sent your "
                           "authentication request to the wrong tenant.")
        return {"token_type": "Bearer", "expires_in": EXPIRES_IN, "ext_expires_in": EXPIRES_IN,
                "access_token": self._issue(appidacr)}

    def _check_assertion(self, assertion: str, *audiences: str) -> None:
        import jwt

        def refuse(code: int, message: str) -> AADError:
            return AADError(401, "invalid_client", code, message)

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise refuse(50027, "JWT token is invalid or malformed.") from None
        with self._lock:
            # msal keeps the base64url padding of the thumbprints; the JWS spec drops it.
            sha256 = str(header.get("x5t#S256") or "").rstrip("=")
            sha1 = str(header.get("x5t") or "").rstrip("=")
            cert = next((c for c in self._certificates if sha256 == c.sha256 or sha1 == c.sha1),
                        None)
        if cert is None:
            raise refuse(700027, "The certificate with identifier used to sign the client "
                                 "assertion is not registered on application.")
        if header.get("alg") not in ("RS256", "PS256"):
            raise refuse(700027, "Client assertion failed signature validation.")
        try:
            claims = jwt.decode(assertion, cert.public_key, algorithms=[header["alg"]],
                                options={"verify_aud": False, "verify_exp": False,
                                         "verify_nbf": False, "verify_iat": False})
        except jwt.PyJWTError:
            raise refuse(700027, "Client assertion failed signature validation.") from None
        if claims.get("aud") not in audiences:
            raise refuse(700212, "No matching federated identity record found for presented "
                                 "assertion audience.")
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            raise refuse(700021, "Client assertion application identifier doesn't match "
                                 "'client_id' parameter.")
        now = self._epoch()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now \
                or claims.get("nbf", 0) > now + 300:
            raise refuse(700024, "Client assertion is not within its valid time range.")

    def _issue(self, appidacr: str) -> str:
        import jwt

        now = int(self._epoch())
        jti = _b64url(secrets.token_bytes(16))
        with self._lock:
            roles = list(self.roles)
            self._tokens[jti] = now + ACCESS_TOKEN_TTL
        claims = {"aud": GRAPH_RESOURCE, "iss": f"https://sts.windows.net/{self.tenant_id}/",
                  "iat": now, "nbf": now, "exp": now + ACCESS_TOKEN_TTL,
                  "aio": _b64url(secrets.token_bytes(24)), "app_displayname": self.app_name,
                  "appid": self.client_id, "appidacr": appidacr,
                  "idp": f"https://sts.windows.net/{self.tenant_id}/", "idtyp": "app",
                  "oid": self.service_principal_id, "rh": "0.sandbox.", "roles": roles,
                  "sub": self.service_principal_id, "tenant_region_scope": "EU",
                  "tid": self.tenant_id, "uti": jti, "ver": "1.0", "xms_tcdt": now - 86400}
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": "JWT"})

    # ------------------------------------------------------------ Graph internals

    async def _gate(self, endpoint: str, *, faults: bool = True, aad: bool = False) -> None:
        """Count the request, then apply the rate limit and scripted faults."""
        due = self._due_fault(endpoint, faults=faults)
        if due is not None:
            raise self._fault(*due, aad)

    @staticmethod
    def _fault(status: int, retry_after: int | None, aad: bool) -> Exception:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None \
            and status in (429, 503) else {}
        if aad:
            if status == 429:
                return AADError(429, "temporarily_unavailable", 90055, "There are too many "
                                "incoming requests.", headers)
            return AADError(status, "temporarily_unavailable", 90006,
                            "The service is temporarily unavailable.", headers)
        if status == 429:
            return GraphError(429, "TooManyRequests", "Too many requests.", headers)
        if status == 503:
            return GraphError(503, "serviceNotAvailable", "Service unavailable.", headers)
        if status == 500:
            return GraphError(500, "UnknownError", "", headers)
        return GraphError(status, "generalException", "An error occurred.", headers)

    def _bearer(self, request) -> tuple[str, ...]:
        """The roles of the request's valid access token (else 401)."""
        import jwt

        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not value:
            raise _unauthorized("Access token is empty.")
        if value.count(".") != 2:
            raise _unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
        try:
            claims = jwt.decode(value, self._key, algorithms=["HS256"],
                                audience=GRAPH_RESOURCE,
                                options={"verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.InvalidAudienceError:
            raise _unauthorized("Invalid audience.") from None
        except jwt.PyJWTError:
            raise _unauthorized("Access token validation failure.") from None
        with self._lock:
            expires = self._tokens.get(claims.get("uti", ""), 0)
        if expires <= self._epoch():
            raise _unauthorized("Lifetime validation failed, the token is expired.")
        return tuple(claims.get("roles") or ())

    @staticmethod
    def _require(roles: tuple[str, ...], needed: str, *, directory: bool = False,
                 outlook: bool = False) -> None:
        if needed in roles:
            return
        if directory:
            raise GraphError(403, "Authorization_RequestDenied",
                             "Insufficient privileges to complete the operation.")
        if outlook:
            raise GraphError(403, "ErrorAccessDenied",
                             "Access is denied. Check credentials and try again.")
        raise GraphError(403, "Forbidden", f"Missing role permissions on the request. API "
                         f"requires one of '{needed}'. Roles on the request "
                         f"'{','.join(roles)}'.")

    def _policy_covers(self, user: _User) -> None:
        with self._lock:
            policy = self._policy
        if policy is True or (isinstance(policy, set)
                              and (user.email.lower() in policy or user.id in policy)):
            return
        raise GraphError(403, "General", "No application access policy found for this app.")

    def _transcripts_allowed(self) -> None:
        with self._lock:
            disabled = self._transcripts_disabled
        if disabled:
            raise GraphError(403, "Forbidden", "Graph API access to transcripts is disabled "
                             "for this tenant.", inner_code="GraphAccessToTranscriptsDisabled")

    async def _json_body(self, request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please "
                             "ensure Content-Type header is set and payload is of valid JSON "
                             "format.") from None
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "Invalid request.")
        return body

    def _find_user(self, key: str) -> _User | None:
        with self._lock:
            found = self._users.get(key.lower())
            return found or next((u for u in self._users.values() if u.id == key.lower()), None)

    def _user_or_404(self, key: str) -> _User:
        found = self._find_user(key)
        if found is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist "
                             "or one of its queried reference-property objects are not present.")
        return found

    @staticmethod
    def _select(obj: dict, params, *, always: tuple[str, ...] = ()) -> dict:
        raw = params.get("$select") or params.get("select")
        if not raw:
            return obj
        wanted = [*always, *(f.strip() for f in raw.split(",") if f.strip())]
        picked = {k: v for k, v in obj.items() if k.startswith("@odata.")}
        picked.update({k: obj[k] for k in wanted if k in obj})
        return picked

    @staticmethod
    def _top(params, default: int, maximum: int) -> int:
        raw = params.get("$top") or params.get("top")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise GraphError(400, "Request_UnsupportedQuery" if maximum == USERS_MAX_PAGE
                             else "BadRequest", f"Invalid page size specified: '{raw}'. Must be "
                             f"between 1 and {maximum} inclusive.")
        return int(raw)

    def _skip_token(self, params, scope: str) -> int:
        raw = next((v for k, v in params.items() if k.lower().lstrip("$") == "skiptoken"), None)
        if raw is None:
            return 0
        try:
            saved = json.loads(_b64url_decode(raw))
            if saved["s"] != scope:
                raise ValueError
            return int(saved["o"])
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "The skip token is invalid.") from None

    @staticmethod
    def _make_skip_token(scope: str, offset: int) -> str:
        return _b64url(json.dumps({"s": scope, "o": offset}).encode())

    @staticmethod
    def _scope_of(*parts) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    async def _dispatch_users(self, request, seg: list[str]):
        """Route /v1.0/users/... by (percent-decoded) segment."""
        from fastapi.responses import JSONResponse

        params = request.query_params
        base = self._base_of(request)

        def reply(body: dict):
            return JSONResponse(body, media_type=JSON_MEDIA)

        if not seg:
            await self._gate(USERS)
            roles = self._bearer(request)
            self._require(roles, "User.Read.All", directory=True)
            return reply(self._list_users(params, base))
        if len(seg) == 1:
            await self._gate(USER)
            roles = self._bearer(request)
            self._require(roles, "User.Read.All", directory=True)
            user = self._user_or_404(seg[0])
            body = {"@odata.context": f"{base}/v1.0/$metadata#users/$entity",
                    **self._user_json(user)}
            return reply(self._select(body, params))
        if len(seg) == 2 and seg[1] == "calendarView":
            await self._gate(CALENDAR_VIEW)
            roles = self._bearer(request)
            self._require(roles, "Calendars.Read", outlook=True)
            return reply(self._calendar_view(self._user_or_404(seg[0]), params, base))
        if len(seg) >= 3 and seg[1] == "onlineMeetings":
            fn = re.fullmatch(r"(getAllTranscripts|getAllRecordings)(\((.*)\))?", seg[2], re.DOTALL)
            if fn and len(seg) == 3:
                kind = "transcripts" if fn.group(1) == "getAllTranscripts" else "recordings"
                await self._gate(ALL_TRANSCRIPTS if kind == "transcripts" else ALL_RECORDINGS)
                roles = self._bearer(request)
                return reply(self._get_all(kind, roles, seg[0], fn.group(3), params, base))
            return await self._meeting_paths(request, seg, params, base)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment "
                         f"'{seg[1] if len(seg) > 1 else seg[0]}'.")

    def _list_users(self, params, base: str) -> dict:
        top = self._top(params, USERS_PAGE, USERS_MAX_PAGE)
        raw_filter = params.get("$filter") or ""
        with self._lock:
            users = list(self._users.values())
        if raw_filter:
            users = [u for u in users if self._matches(u, raw_filter)]
        scope = self._scope_of("users", raw_filter, params.get("$select"), top)
        start = self._skip_token(params, scope)
        page = users[start:start + top]
        select = params.get("$select")
        context = f"{base}/v1.0/$metadata#users" + (f"({select})" if select else "")
        body = {"@odata.context": context,
                "value": [self._select(self._user_json(u), params) for u in page]}
        if start + top < len(users):
            query = {k: v for k, v in params.items() if k.lower().lstrip("$") != "skiptoken"}
            query["$skiptoken"] = self._make_skip_token(scope, start + top)
            body["@odata.nextLink"] = f"{base}/v1.0/users?" + _query(query)
        return body

    @staticmethod
    def _matches(user: _User, expression: str) -> bool:
        """A small OData $filter: `field eq 'value'` clauses joined by `or` / `and`."""
        fields = {"mail": user.email, "userprincipalname": user.email, "id": user.id,
                  "displayname": user.name}
        clause = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
        for alternative in re.split(r"\s+or\s+", expression, flags=re.IGNORECASE):
            ok = True
            for part in re.split(r"\s+and\s+", alternative, flags=re.IGNORECASE):
                found = clause.match(part)
                if not found or found.group(1).lower() not in fields:
                    name = found.group(1) if found else part.strip().split(" ")[0]
                    raise GraphError(400, "Request_UnsupportedQuery", "Unsupported or invalid "
                                     f"query filter clause specified for property '{name}' of "
                                     "resource 'User'.")
                value = found.group(2).replace("''", "'")
                if fields[found.group(1).lower()].lower() != value.lower():
                    ok = False
            if ok:
                return True
        return False

    def _user_json(self, user: _User) -> dict:
        given, surname = user.given_surname
        return {"businessPhones": [], "displayName": user.name, "givenName": given,
                "jobTitle": None, "mail": user.email, "mobilePhone": None,
                "officeLocation": None, "preferredLanguage": None, "surname": surname,
                "userPrincipalName": user.email, "id": user.id}

    def _get_all(self, kind: str, roles: tuple[str, ...], user_key: str,
                 arguments: str | None, params, base: str) -> dict:
        needed = ("OnlineMeetingTranscript.Read.All" if kind == "transcripts"
                  else "OnlineMeetingRecording.Read.All")
        self._require(roles, needed)
        if kind == "transcripts":
            self._transcripts_allowed()
        user = self._find_user(user_key)
        if user is None:
            raise GraphError(404, "NotFound", f"User '{user_key}' was not found.")
        args = self._function_args(arguments or "")
        organizer = args.get("meetingorganizeruserid")
        flt = params.get("$filter") or ""
        by_filter = re.fullmatch(r"\s*MeetingOrganizer/User/Id\s+eq\s+'([^']+)'\s*", flt,
                                 re.IGNORECASE)
        if organizer is None and by_filter:
            organizer = by_filter.group(1)
        if organizer is None:
            raise GraphError(400, "BadRequest", "The meetingOrganizerUserId parameter or a "
                             "$filter on MeetingOrganizer/User/Id is required.")
        if self._find_user(organizer) is not user:
            raise GraphError(400, "BadRequest", "meetingOrganizerUserId must be the same user "
                             "as the one in the request URL.")
        self._policy_covers(user)
        try:
            start = _parse_time(args["startdatetime"]) if "startdatetime" in args else None
            end = _parse_time(args["enddatetime"]) if "enddatetime" in args else None
        except ValueError:
            raise GraphError(400, "BadRequest", "Invalid startDateTime or endDateTime.") \
                from None
        now = self.now()
        with self._lock:
            found = sorted((a for m in self._meetings.values() if m.organizer is user
                            for a in getattr(m, kind)
                            if a.ended <= now
                            and (start is None or a.created >= start)
                            and (end is None or a.created < end)),
                           key=lambda a: a.created)
        top = self._top(params, ARTIFACTS_PAGE, 1000)
        scope = self._scope_of(kind, user.id, arguments, flt, top)
        offset = self._skip_token(params, scope)
        page = found[offset:offset + top]
        singular = "callTranscript" if kind == "transcripts" else "callRecording"
        body = {"@odata.context": f"{base}/v1.0/$metadata#Collection({singular})",
                "value": [self._artifact_json(a, base, typed=True) for a in page]}
        if offset + top < len(found):
            fn = "getAllTranscripts" if kind == "transcripts" else "getAllRecordings"
            query = {k: v for k, v in params.items() if k.lower().lstrip("$") != "skiptoken"}
            query["skipToken"] = self._make_skip_token(scope, offset + top)
            call = "" if arguments is None else f"({quote(arguments, safe=FUNCTION_SAFE)})"
            body["@odata.nextLink"] = (f"{base}/v1.0/users/{quote(user.id, safe='')}/"
                                       f"onlineMeetings/{fn}{call}?" + _query(query))
        return body

    @staticmethod
    def _function_args(text: str) -> dict[str, str]:
        """`name='quoted',name=2026-01-01T00:00:00Z` → {lowercased name: value}."""
        args = {}
        for part in re.finditer(r"\s*(\w+)\s*=\s*('(?:[^']|'')*'|[^,]*)\s*(?:,|$)", text):
            value = part.group(2).strip()
            if value.startswith("'") and value.endswith("'") and len(value) >= 2:
                value = value[1:-1].replace("''", "'")
            args[part.group(1).lower()] = value
        return args

    async def _meeting_paths(self, request, seg: list[str], params, base: str):
        from fastapi.responses import JSONResponse, Response

        user_key, meeting_id, rest = seg[0], seg[2], seg[3:]
        kinds = {"transcripts": (TRANSCRIPTS, TRANSCRIPT, TRANSCRIPT_CONTENT,
                                 "OnlineMeetingTranscript.Read.All"),
                 "recordings": (RECORDINGS, RECORDING, RECORDING_CONTENT,
                                "OnlineMeetingRecording.Read.All")}
        if not rest:
            endpoint, needed, kind = MEETING, "OnlineMeetings.Read.All", None
        elif rest[0] in kinds and len(rest) <= 3 and (len(rest) < 3 or rest[2] == "content"):
            kind = rest[0]
            endpoint = kinds[kind][len(rest) - 1]
            needed = kinds[kind][3]
        else:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment "
                             f"'{rest[-1] if rest else meeting_id}'.")
        await self._gate(endpoint)
        roles = self._bearer(request)
        self._require(roles, needed)
        if kind == "transcripts":
            self._transcripts_allowed()
        user = self._find_user(user_key)
        if user is None:
            raise GraphError(404, "NotFound", f"User '{user_key}' was not found.")
        self._policy_covers(user)
        with self._lock:
            meeting = self._meetings.get(meeting_id)
        if meeting is None or meeting.organizer is not user:
            raise GraphError(404, "NotFound", "The requested resource was not found.")
        if kind is None:
            body = {"@odata.context": f"{base}/v1.0/$metadata#users('{user.id}')/"
                                      "onlineMeetings/$entity", **self._meeting_json(meeting)}
            return JSONResponse(self._select(body, params), media_type=JSON_MEDIA)
        now = self.now()
        artifacts = [a for a in getattr(meeting, kind) if a.ended <= now]
        context = f"{base}/v1.0/$metadata#users('{user.id}')/onlineMeetings('{meeting.id}')/{kind}"
        if len(rest) == 1:
            return JSONResponse({"@odata.context": context,
                                 "value": [self._artifact_json(a, base) for a in artifacts]},
                                media_type=JSON_MEDIA)
        artifact = next((a for a in artifacts if a.id == rest[1]), None)
        if artifact is None:
            raise GraphError(404, "NotFound", "The requested resource was not found.")
        if len(rest) == 2:
            body = {"@odata.context": context + "/$entity", **self._artifact_json(artifact, base)}
            return JSONResponse(self._select(body, params), media_type=JSON_MEDIA)
        with self._lock:
            self.content_calls[artifact.id] += 1
        if kind == "transcripts":
            wanted = params.get("$format") or params.get("format")
            if wanted and wanted.split(";")[0].strip().lower() != "text/vtt":
                raise GraphError(400, "BadRequest", f"The requested format '{wanted}' is not "
                                 "supported; transcripts are available as text/vtt.")
            return Response(artifact.data, media_type="text/vtt")
        return ranged(artifact.data, artifact.media_type, request.headers.get("range"))

    def _artifact(self, kind: str, artifact_id: str) -> _Artifact | None:
        for meeting in self._meetings.values():
            for artifact in getattr(meeting, kind):
                if artifact.id == artifact_id:
                    return artifact
        return None

    def _artifact_json(self, artifact: _Artifact, base: str, *, typed: bool = False) -> dict:
        meeting = self._meetings[artifact.meeting_id]
        url = (f"{base}/v1.0/users/{meeting.organizer.id}/onlineMeetings/{meeting.id}/"
               f"{artifact.kind}/{artifact.id}/content")
        singular = "callTranscript" if artifact.kind == "transcripts" else "callRecording"
        body = {"@odata.type": f"#microsoft.graph.{singular}"} if typed else {}
        body.update({
            "id": artifact.id, "meetingId": meeting.id, "callId": meeting.call_id,
            "contentCorrelationId": meeting.correlation_id,
            "createdDateTime": _iso(artifact.created), "endDateTime": _iso(artifact.ended),
            ("transcriptContentUrl" if artifact.kind == "transcripts"
             else "recordingContentUrl"): url,
            "meetingOrganizer": {"application": None, "device": None, "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": meeting.organizer.id, "displayName": None,
                "userIdentityType": "aadUser", "tenantId": self.tenant_id}}})
        return body

    def _participant(self, user: _User, role: str) -> dict:
        return {"upn": user.email, "role": role, "identity": {
            "application": None, "device": None, "user": {
                "id": user.id, "displayName": user.name, "tenantId": self.tenant_id,
                "identityProvider": "AAD"}}}

    def _join_url(self, meeting: _Meeting) -> str:
        context = quote(json.dumps({"Tid": self.tenant_id, "Oid": meeting.organizer.id},
                                   separators=(",", ":")), safe="")
        return ("https://teams.microsoft.com/l/meetup-join/" + quote(meeting.thread_id, safe="")
                + f"/0?context={context}")

    def _meeting_json(self, meeting: _Meeting) -> dict:
        return {
            "id": meeting.id, "creationDateTime": _iso(meeting.created),
            "startDateTime": _iso(meeting.start), "endDateTime": _iso(meeting.end),
            "joinWebUrl": self._join_url(meeting), "subject": meeting.subject,
            "isBroadcast": False, "isEntryExitAnnounced": True,
            "allowedPresenters": "everyone", "allowMeetingChat": "enabled",
            "allowTeamworkReactions": True, "allowAttendeeToEnableMic": True,
            "allowAttendeeToEnableCamera": True, "recordAutomatically": False,
            "allowTranscription": True, "allowRecording": True,
            "externalId": None, "videoTeleconferenceId": None,
            "joinMeetingIdSettings": {"isPasscodeRequired": True,
                                      "joinMeetingId": meeting.join_id,
                                      "passcode": meeting.passcode},
            "chatInfo": {"threadId": meeting.thread_id, "messageId": "0",
                         "replyChainMessageId": None},
            "participants": {
                "organizer": self._participant(meeting.organizer, "presenter"),
                "attendees": [self._participant(u, "attendee") for u in meeting.attendees]}}

    def _calendar_view(self, user: _User, params, base: str) -> dict:
        raw_start, raw_end = params.get("startDateTime"), params.get("endDateTime")
        if not raw_start or not raw_end:
            raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window "
                             "specified by the query string parameters StartDateTime and "
                             "EndDateTime.")
        try:
            start, end = _parse_time(raw_start), _parse_time(raw_end)
        except ValueError:
            raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter "
                             "'StartDateTime' or 'EndDateTime' is invalid.") from None
        with self._lock:
            found = sorted((m for m in self._meetings.values()
                            if user.id in m.event_ids and m.start < end and m.end > start),
                           key=lambda m: m.start)
        top = self._top(params, CALENDAR_PAGE, 1000)
        raw_skip = params.get("$skip") or "0"
        skip = int(raw_skip) if raw_skip.isdigit() else 0
        page = found[skip:skip + top]
        body = {"@odata.context": f"{base}/v1.0/$metadata#users('{user.id}')/calendarView",
                "value": [self._select(self._event_json(m, user), params, always=("id",))
                          for m in page]}
        if skip + top < len(found):
            query = dict(params.items())
            query["$skip"] = str(skip + top)
            body["@odata.nextLink"] = (f"{base}/v1.0/users/{user.id}/calendarView?"
                                       + _query(query))
        return body

    def _event_json(self, meeting: _Meeting, viewer: _User) -> dict:
        organizer = meeting.organizer
        people = [(u.name, u.email) for u in meeting.attendees] + list(meeting.external)
        return {
            "@odata.etag": 'W/"' + _b64url(hashlib.sha256(meeting.id.encode()).digest()[:16]) + '"',
            "id": meeting.event_ids[viewer.id], "subject": meeting.subject,
            "iCalUId": "040000008200E00074C5B7101A82E008" + meeting.correlation_id.replace("-", ""),
            "isOrganizer": viewer is organizer,
            "start": {"dateTime": _outlook_time(meeting.start), "timeZone": "UTC"},
            "end": {"dateTime": _outlook_time(meeting.end), "timeZone": "UTC"},
            "organizer": {"emailAddress": {"name": organizer.name, "address": organizer.email}},
            "attendees": [{"type": "required",
                           "status": {"response": "accepted", "time": _iso(meeting.created)},
                           "emailAddress": {"name": name, "address": email}}
                          for name, email in people],
            "isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness",
            "onlineMeeting": {"joinUrl": self._join_url(meeting)},
            "responseStatus": {"response": "organizer" if viewer is organizer else "accepted",
                               "time": _iso(meeting.created)}}

    # ------------------------------------------------------------- subscriptions

    def _live_subscriptions(self) -> list[_Subscription]:
        now = self.now()
        with self._lock:
            for sub_id in [s.id for s in self._subscriptions.values() if s.expires <= now]:
                del self._subscriptions[sub_id]
            return list(self._subscriptions.values())

    def _live_subscription(self, sub_id: str) -> _Subscription | None:
        with self._lock:
            sub = self._subscriptions.get(sub_id)
            if sub is not None and sub.expires <= self.now():
                del self._subscriptions[sub_id]
                return None
            return sub

    def _subscription_or_404(self, sub_id: str) -> _Subscription:
        sub = self._live_subscription(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def _covers(self, sub: _Subscription, meeting: _Meeting, kind: str) -> bool:
        fn = "getAllTranscripts" if kind == "transcripts" else "getAllRecordings"
        resource = sub.resource
        if resource == f"communications/onlineMeetings/{fn}":
            return True
        per_user = re.fullmatch(rf"users/([^/]+)/onlineMeetings/{fn}", resource)
        return bool(per_user) and self._find_user(per_user.group(1)) is meeting.organizer

    def _check_resource(self, resource: str, roles: tuple[str, ...]) -> str:
        for fn, role in (("getAllTranscripts", "OnlineMeetingTranscript.Read.All"),
                         ("getAllRecordings", "OnlineMeetingRecording.Read.All")):
            per_user = re.fullmatch(rf"users/([^/]+)/onlineMeetings/{fn}", resource)
            if resource == f"communications/onlineMeetings/{fn}" or per_user:
                self._require(roles, role)
                if fn == "getAllTranscripts":
                    self._transcripts_allowed()
                if per_user and self._find_user(per_user.group(1)) is None:
                    raise GraphError(404, "NotFound", f"User '{per_user.group(1)}' was not "
                                     "found.")
                return resource
        raise GraphError(400, "InvalidRequest", f"The resource '{resource}' is not supported "
                         "for subscriptions by this sandbox.")

    def _check_expiry(self, raw, has_lifecycle: bool) -> datetime:
        try:
            expires = _parse_time(str(raw))
        except ValueError:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid "
                             "DateTimeOffset.") from None
        now = self.now()
        if expires <= now or expires - now > timedelta(minutes=SUBSCRIPTION_MAX_MINUTES):
            raise GraphError(400, "ExtensionError", "Subscription expiration can only be "
                             f"{SUBSCRIPTION_MAX_MINUTES} minutes in the future.")
        if expires - now > LIFECYCLE_URL_AFTER and not has_lifecycle:
            raise GraphError(400, "ValidationError", "lifecycleNotificationUrl is required for "
                             "subscription creation on this resource when the "
                             "expirationDateTime value exceeds 1 hour.")
        return expires

    async def _create_subscription(self, roles: tuple[str, ...], body: dict) -> _Subscription:
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(name):
                raise GraphError(400, "InvalidRequest", f"The property '{name}' is required.")
        resource = str(body["resource"]).strip().lstrip("/")
        self._check_resource(resource, roles)
        change = str(body["changeType"])
        if change != "created":
            raise GraphError(400, "InvalidRequest", f"The changeType '{change}' is not "
                             "supported for this resource; it supports 'created'.")
        urls = {"notificationUrl": str(body["notificationUrl"]),
                "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl")}
        for name, url in urls.items():
            if url is not None and urlsplit(str(url)).scheme.lower() != "https":
                raise GraphError(400, "ValidationError", f"The {name} must be an https URL.")
        client_state = body.get("clientState")
        if client_state is not None and len(str(client_state)) > CLIENT_STATE_MAX:
            raise GraphError(400, "ValidationError", "clientState must be at most "
                             f"{CLIENT_STATE_MAX} characters long.")
        if body.get("includeResourceData"):
            if not body.get("encryptionCertificate"):
                raise GraphError(400, "ValidationError", "encryptionCertificate is required "
                                 "when includeResourceData is true.")
            raise GraphError(400, "ValidationError", "The sandbox does not send rich "
                             "notifications: includeResourceData must be false.")
        expires = self._check_expiry(body["expirationDateTime"],
                                     bool(urls["lifecycleNotificationUrl"]))
        for url in filter(None, urls.values()):
            await self._validate_endpoint(str(url))
        made = _Subscription(
            id=str(uuid_lib.uuid4()), resource=resource, change_type=change,
            notification_url=urls["notificationUrl"],
            lifecycle_url=urls["lifecycleNotificationUrl"], expires=expires,
            client_state=None if client_state is None else str(client_state),
            created=self.now(), latest_tls=str(body.get("latestSupportedTlsVersion") or "v1_2"))
        with self._lock:
            self._subscriptions[made.id] = made
        return made

    async def _validate_endpoint(self, url: str) -> None:
        """Graph's handshake: POST {url}?validationToken=…, expect 200 text/plain with the
        token as the body, within 10 s."""
        import httpx

        token = (f"Validation: Testing client application reachability for subscription "
                 f"Request-Id: {uuid_lib.uuid4()}")
        sep = "&" if "?" in url else "?"
        target = f"{url}{sep}validationToken={quote(token, safe='')}"
        try:
            async with httpx.AsyncClient(verify=_ssl_verify(self.receiver_ca),
                                         timeout=VALIDATION_TIMEOUT_S) as client:
                reply = await client.post(target, content=b"", headers={
                    "content-type": "text/plain; charset=utf-8"})
        except httpx.TimeoutException:
            raise GraphError(400, "ValidationError", "Subscription validation request "
                             "timed out.") from None
        except httpx.HTTPError:
            raise GraphError(400, "ValidationError", "Subscription validation request failed. "
                             "Notification endpoint must respond with 200 OK to validation "
                             "request.") from None
        if reply.status_code != 200:
            raise GraphError(400, "ValidationError", "Subscription validation request failed. "
                             "Notification endpoint must respond with 200 OK to validation "
                             "request.")
        media = reply.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "text/plain" or reply.text != token:
            raise GraphError(400, "ValidationError", "Subscription validation request failed. "
                             "Response must exactly match validationToken query parameter.")

    def _renew(self, sub_id: str, body: dict) -> _Subscription:
        sub = self._subscription_or_404(sub_id)
        unknown = set(body) - {"expirationDateTime"}
        if unknown:
            raise GraphError(400, "InvalidRequest", "Only expirationDateTime can be updated "
                             f"by the sandbox; got {sorted(unknown)}.")
        if not body.get("expirationDateTime"):
            raise GraphError(400, "InvalidRequest", "The property 'expirationDateTime' is "
                             "required.")
        expires = self._check_expiry(body["expirationDateTime"], bool(sub.lifecycle_url))
        with self._lock:
            sub.expires, sub.reauthorization_required = expires, False
        return sub

    def _subscription_json(self, sub: _Subscription, base: str | None = None) -> dict:
        body = {"@odata.context": f"{base}/v1.0/$metadata#subscriptions/$entity"} if base else {}
        body.update({
            "id": sub.id, "resource": sub.resource, "applicationId": self.client_id,
            "changeType": sub.change_type, "clientState": sub.client_state,
            "notificationUrl": sub.notification_url, "notificationQueryOptions": None,
            "lifecycleNotificationUrl": sub.lifecycle_url,
            "expirationDateTime": _iso(sub.expires), "creatorId": self.service_principal_id,
            "includeResourceData": False, "latestSupportedTlsVersion": sub.latest_tls,
            "encryptionCertificate": None, "encryptionCertificateId": None,
            "notificationUrlAppId": None})
        return body

    # ------------------------------------------------------------------ misc

    @staticmethod
    def _opaque_id(make: Callable[[], str]) -> str:
        """A Graph-style opaque id: base64 of `make()`, drawn again until it holds no '/' or
        '+' (real ids may, and clients must percent-encode them; the sandbox spares its own
        routing)."""
        while True:
            made = base64.b64encode(make().encode()).decode()
            if "/" not in made and "+" not in made:
                return made


# ------------------------------------------------------------------------------- demo

def teams_demo_calls(demo_dir: str | Path) -> frozenset[str]:
    """The demo calls Teams delivers in `coachloop demo`: those with a WebVTT transcript (the
    format Teams makes); Zoom delivers the others."""
    from sandbox.demo_calls import calls_with_transcript

    return calls_with_transcript(demo_dir, ".vtt")


def demo_seed(sandbox: GraphSandbox, demo_dir: str | Path, stems: frozenset[str]
              ) -> dict[str, str]:
    """Seed the demo calls named by `stems` as Teams meetings the rep organized: colleagues
    (the org's domains in `team.yaml`) as tenant attendees, buyers as guests on the calendar
    invite, the transcript in Teams' voice-tagged WebVTT and the recording. Returns
    {external_id: meeting id}."""
    import yaml

    from sandbox.demo_calls import demo_team

    demo_dir = Path(demo_dir)
    team = demo_team(demo_dir)
    for user in team.users:
        sandbox.add_user(user["email"], user.get("name", ""))
    seeded = {}
    for stem in sorted(stems):
        call = yaml.safe_load((demo_dir / f"{stem}.yaml").read_text(encoding="utf-8")) or {}
        people = [(p["name"], p["email"]) for p in call["participants"]]
        host = next((e for _, e in people if e.lower() in team.reps), people[0][1])
        ours = [(n, e) for n, e in people if team.ours(e)]
        guests = [(n, e) for n, e in people if not team.ours(e)]
        recording = demo_dir / call["recording"] if call.get("recording") else None
        seeded[call.get("external_id", stem)] = sandbox.add_meeting(
            call.get("title", stem), str(call["started_at"]), host, attendees=ours,
            external_attendees=guests, transcript_vtt=demo_dir / call["transcript"],
            recording=recording if recording and recording.is_file() else None,
            recording_type="video/mp4")
    return seeded
