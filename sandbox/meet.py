"""A wire-accurate Google Meet + Workspace emulator: OAuth (user consent, refresh, service
accounts with domain-wide delegation), Meet REST v2, Drive v3 (recordings, transcript Docs),
Calendar v3, People v1, Admin SDK Directory v1, Workspace Events v1 and Pub/Sub push.

`MeetSandbox` holds one Workspace in memory behind a lock: its people (and people of other
Google accounts), the OAuth client and its grants, service accounts, conferences with their
spaces, participants, transcripts, recordings, Drive files and calendar events, and the event
subscriptions. `create_app()` serves every Google host on one origin, at the paths a
discovery-based client reaches with `client_options={"api_endpoint": BASE + servicePath}`:
Meet `/v2/...`, Drive `/drive/v3/...`, Calendar `/calendar/v3/...`, People `/v1/people/...`,
Admin `/admin/directory/v1/...`, Workspace Events `/v1/subscriptions...`, `/v1/operations/...`
and Google OAuth (`/o/oauth2/v2/auth`, `/token`, `/revoke`, `/oauth2/v3/certs`,
`/.well-known/openid-configuration`); `start(tls)` runs it over HTTPS on loopback.
The accounts part lives in `sandbox.meet_oauth`, the events part in `sandbox.meet_events`,
Google's wire conventions in `sandbox.meet_wire`.

Checked (facts only, no text or code copied):
- The discovery documents shipped in google-api-python-client 2.202 (meet.v2 rev 20261029,
  drive.v3, calendar.v3, people.v1, admin.directory_v1, workspaceevents.v1 rev 20261004) are
  read at run time: every served path is servicePath + flatPath, each handler's query
  parameters are declared in `METHODS` and must be the method's (tests/test_sandbox_meet.py),
  the scopes a method accepts are the document's `scopes`, `fields` selections are checked
  against the response schema. From their descriptions: page sizes (conference records 25/100,
  participants 100/250, transcripts, entries and recordings 10/100, subscriptions 50/100;
  larger values are coerced), the conference-record filter fields (`space.meeting_code`,
  `space.name`, `start_time`, `end_time`, `end_time IS NULL`), the participants filter
  (`earliest_start_time`, `latest_end_time`), `totalSize` only when the field mask asks,
  participants ordered by join time descending, conference records newest first, the 30-day
  `expireTime`, the states STARTED/ENDED/FILE_GENERATED, `spaces.get` by meeting code,
  the subscription filter (`event_types:"..."` with OR, `AND target_resource="..."`, required),
  subscription fields (`authority`/`userAuthority` read "users/{id}", ttl input-only),
  `payloadOptions` only for Chat and Drive, one subscription per user and target resource
  (ALREADY_EXISTS), delete's `etag` (ABORTED), `allowMissing`, `validateOnly`.
- google/apps/events/subscriptions/v1 `Subscription.expiration` (as rendered on
  mechiru.github.io): 7 days without resource data in the payload; reminders 12 h and 1 h
  before expiry. Workspace Events guides (events-meet, events-lifecycle, subscriptions.create):
  Meet event types and target resources (`//meet.googleapis.com/spaces/{space}`,
  `//cloudidentity.googleapis.com/users/{user}`), lifecycle event types and their data
  `{"subscription": ...}` with source and subject the subscription's full name, create's
  Operation with the Subscription as its response.
- googleapis/google-cloudevents `docs/spec/pubsub.md`: binary mode, attributes `ce-` +
  lower-case name (`ce-datacontenttype` in its example). Eventarc docs: the push body
  (`message.attributes`, `data`, `messageId`, `publishTime`, `subscription`). Pub/Sub
  "Authentication for push subscriptions": the push JWT (RS256, 40-hex `kid`; `aud`, `azp`
  = `sub` the service account's numeric id, `email`, `email_verified`, `iss`
  https://accounts.google.com, `exp` = `iat` + 3600); `PushConfig.OidcToken`: the audience
  defaults to the push endpoint.
- google-auth 2.63 source: the service-account assertion (`iss`, `sub`, `scope`, `iat`,
  `exp` = iat + 3600, `aud` always https://oauth2.googleapis.com/token, `kid` = private key
  id), `id_token.verify_token` accepting a JWK set. googleapiclient: `api_endpoint` replaces
  rootUrl + servicePath; it retries 429 and 5xx.
- Public issue threads: the 401 bodies ("Request had invalid authentication credentials…",
  "Request is missing required authentication credential…", status UNAUTHENTICATED).
Taken as the task's brief gives them or as they are widely quoted, not re-checked against a
primary source: 403 "Request had insufficient authentication scopes." with ErrorInfo
ACCESS_TOKEN_SCOPE_INSUFFICIENT; Drive's legacy errors ("File not found: {id}.", notFound on
`fileId`, "Invalid Credentials", "Insufficient Permission"); OAuth's invalid_grant "Bad
Request" / "Token has been expired or revoked.", invalid_client "Unauthorized", invalid_scope
"Invalid OAuth scope or ID token audience provided.", the DWD unauthorized_client text; the
protobuf JSON mapping's timestamps (Z, 0, 3, 6 or 9 fractional digits).
Guessed (no primary source found): the shapes of ids (conference records as UUIDs, spaces 12
characters, participants numeric, subscriptions `meet-space-…`/`cloudidentity-user-…`,
operations), the message and ErrorInfo (`SUBSCRIPTION_ALREADY_EXISTS`, metadata
`current_subscription`) of ALREADY_EXISTS, refusing (not clamping) a ttl over 7 days, 403
(exists, not yours) versus 404 (absent or expired) on conference records and spaces, transcript
entries listed only once the transcript is FILE_GENERATED, subject = the target resource on
Meet events, the gRPC method names in ErrorInfo outside Meet, Drive file names, export text
(BOM, CRLF), Calendar's "The requested ordering is not available for the particular query.",
the Admin SDK's non-admin 403, the token endpoint's texts for bad PKCE verifiers and
assertions, no Retry-After on rate-limit 429s, HTTPS-only push endpoints, and that a refresh
token comes only with the first offline consent unless `prompt=consent` (widely reported,
not in a reference page).
"""

import hashlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

from sandbox.emulator import Emulator, ranged
from sandbox.meet_events import Happening, WorkspaceEvents
from sandbox.meet_oauth import AccessToken, GoogleAccounts, Person
from sandbox.meet_wire import (
    ConsentPageError,
    Cue,
    GoogleError,
    OAuthError,
    apply_fields,
    as_datetime,
    b64url,
    check_fields,
    compare,
    comparisons,
    discovery_method,
    error_info,
    evaluate,
    invalid_argument,
    make_page_token,
    millis_time,
    page_size,
    parse_cues,
    parse_fields,
    parse_filter,
    parse_rfc3339,
    proto_time,
    read_page_token,
    schema_resolver,
    scope_of,
    seconds_time,
)

AUTH = "https://www.googleapis.com/auth/"
SCOPES = {
    "meetings.space.readonly": AUTH + "meetings.space.readonly",
    "drive.meet.readonly": AUTH + "drive.meet.readonly",
    "drive.readonly": AUTH + "drive.readonly",
    "calendar.readonly": AUTH + "calendar.readonly",
    "calendar.events.readonly": AUTH + "calendar.events.readonly",
    "directory.readonly": AUTH + "directory.readonly",
    "admin.directory.user.readonly": AUTH + "admin.directory.user.readonly",
    "openid": "openid",
    "email": "email",
}

RECORD_RETENTION = timedelta(days=30)    # conference records are deleted 30 days after the end
RATE_WINDOW_S = 60.0
GOOGLE_DOC = "application/vnd.google-apps.document"
RECORDING_MEDIA = "video/mp4"
MEET_ICON = ("https://fonts.gstatic.com/s/i/productlogos/meet_2020q4/v6/web-512dp/"
             "logo_meet_2020q4_color_2x_web_512dp.png")

# ------------------------------------------------------------------- endpoint keys
# Counted in `MeetSandbox.requests`, accepted by `fail_next` and `set_rate_limit`.

OPENID_CONFIGURATION = "GET /.well-known/openid-configuration"
AUTHORIZE = "GET /o/oauth2/v2/auth"
TOKEN = "POST /token"
REVOKE = "POST /revoke"
CERTS = "GET /oauth2/v3/certs"
USERINFO = "GET /v1/userinfo"
CONFERENCE_RECORDS = "GET /v2/conferenceRecords"
CONFERENCE_RECORD = "GET /v2/conferenceRecords/{conferenceRecordsId}"
PARTICIPANTS = CONFERENCE_RECORD + "/participants"
PARTICIPANT = PARTICIPANTS + "/{participantsId}"
PARTICIPANT_SESSIONS = PARTICIPANT + "/participantSessions"
PARTICIPANT_SESSION = PARTICIPANT_SESSIONS + "/{participantSessionsId}"
TRANSCRIPTS = CONFERENCE_RECORD + "/transcripts"
TRANSCRIPT = TRANSCRIPTS + "/{transcriptsId}"
TRANSCRIPT_ENTRIES = TRANSCRIPT + "/entries"
TRANSCRIPT_ENTRY = TRANSCRIPT_ENTRIES + "/{entriesId}"
RECORDINGS = CONFERENCE_RECORD + "/recordings"
RECORDING = RECORDINGS + "/{recordingsId}"
SPACE = "GET /v2/spaces/{spacesId}"
DRIVE_FILE = "GET /drive/v3/files/{fileId}"
DRIVE_MEDIA = "GET /drive/v3/files/{fileId}?alt=media"
DRIVE_EXPORT = "GET /drive/v3/files/{fileId}/export"
CALENDAR_EVENTS = "GET /calendar/v3/calendars/{calendarId}/events"
PERSON = "GET /v1/people/{peopleId}"
DIRECTORY_USER = "GET /admin/directory/v1/users/{userKey}"
SUBSCRIPTIONS_CREATE = "POST /v1/subscriptions"
SUBSCRIPTIONS_LIST = "GET /v1/subscriptions"
SUBSCRIPTION_GET = "GET /v1/subscriptions/{subscriptionsId}"
SUBSCRIPTION_PATCH = "PATCH /v1/subscriptions/{subscriptionsId}"
SUBSCRIPTION_DELETE = "DELETE /v1/subscriptions/{subscriptionsId}"
SUBSCRIPTION_REACTIVATE = "POST /v1/subscriptions/{subscriptionsId}:reactivate"
OPERATION = "GET /v1/operations/{operationsId}"

OAUTH_ENDPOINTS = (OPENID_CONFIGURATION, AUTHORIZE, TOKEN, REVOKE, CERTS, USERINFO)


@dataclass(frozen=True)
class Method:
    """A served API method: where it is in its discovery document, its gRPC name (as
    ErrorInfo reports it) and the query parameters its handler reads."""

    key: str
    api: str
    version: str
    method: str                 # dotted path in the document: "conferenceRecords.list"
    rpc: str
    service: str
    params: frozenset

    @property
    def scopes(self) -> frozenset:
        found = discovery_method(self.api, self.version, self.method)
        return frozenset(found.get("scopes", ()))

    @property
    def response(self) -> dict | None:
        found = discovery_method(self.api, self.version, self.method)
        return found.get("response")


def _meet(key: str, method: str, rpc: str, *params: str) -> Method:
    service = "SpacesService" if method.startswith("spaces") else "ConferenceRecordsService"
    return Method(key, "meet", "v2", method, f"google.apps.meet.v2.{service}.{rpc}",
                  "meet.googleapis.com", frozenset(("fields", *params)))


def _events(key: str, method: str, rpc: str, *params: str) -> Method:
    prefix = ("google.longrunning.Operations" if method.startswith("operations")
              else "google.apps.events.subscriptions.v1.SubscriptionsService")
    return Method(key, "workspaceevents", "v1", method, f"{prefix}.{rpc}",
                  "workspaceevents.googleapis.com", frozenset(("fields", *params)))


PAGING = ("pageSize", "pageToken")
METHODS: dict[str, Method] = {m.key: m for m in (
    _meet(CONFERENCE_RECORDS, "conferenceRecords.list", "ListConferenceRecords",
          "filter", *PAGING),
    _meet(CONFERENCE_RECORD, "conferenceRecords.get", "GetConferenceRecord"),
    _meet(PARTICIPANTS, "conferenceRecords.participants.list", "ListParticipants",
          "filter", *PAGING),
    _meet(PARTICIPANT, "conferenceRecords.participants.get", "GetParticipant"),
    _meet(PARTICIPANT_SESSIONS, "conferenceRecords.participants.participantSessions.list",
          "ListParticipantSessions", *PAGING),
    _meet(PARTICIPANT_SESSION, "conferenceRecords.participants.participantSessions.get",
          "GetParticipantSession"),
    _meet(TRANSCRIPTS, "conferenceRecords.transcripts.list", "ListTranscripts", *PAGING),
    _meet(TRANSCRIPT, "conferenceRecords.transcripts.get", "GetTranscript"),
    _meet(TRANSCRIPT_ENTRIES, "conferenceRecords.transcripts.entries.list",
          "ListTranscriptEntries", *PAGING),
    _meet(TRANSCRIPT_ENTRY, "conferenceRecords.transcripts.entries.get",
          "GetTranscriptEntry"),
    _meet(RECORDINGS, "conferenceRecords.recordings.list", "ListRecordings", *PAGING),
    _meet(RECORDING, "conferenceRecords.recordings.get", "GetRecording"),
    _meet(SPACE, "spaces.get", "GetSpace"),
    Method(DRIVE_FILE, "drive", "v3", "files.get", "google.apps.drive.v3.DriveFiles.Get",
           "drive.googleapis.com", frozenset(("fields", "alt", "supportsAllDrives"))),
    Method(DRIVE_MEDIA, "drive", "v3", "files.get", "google.apps.drive.v3.DriveFiles.Get",
           "drive.googleapis.com", frozenset(("alt", "supportsAllDrives"))),
    Method(DRIVE_EXPORT, "drive", "v3", "files.export", "google.apps.drive.v3.DriveFiles.Export",
           "drive.googleapis.com", frozenset(("mimeType",))),
    Method(CALENDAR_EVENTS, "calendar", "v3", "events.list", "calendar.v3.Events.List",
           "calendar-json.googleapis.com",
           frozenset(("fields", "timeMin", "timeMax", "singleEvents", "orderBy", "maxResults",
                      "pageToken", "q", "showDeleted", "iCalUID"))),
    Method(PERSON, "people", "v1", "people.get", "google.people.v1.PeopleService.GetPerson",
           "people.googleapis.com",
           frozenset(("fields", "personFields", "requestMask.includeField"))),
    Method(DIRECTORY_USER, "admin", "directory_v1", "users.get",
           "ccc.hosted.frontend.directory.v1.DirectoryUsers.Get", "admin.googleapis.com",
           frozenset(("fields", "projection", "viewType"))),
    _events(SUBSCRIPTIONS_CREATE, "subscriptions.create", "CreateSubscription",
            "validateOnly"),
    _events(SUBSCRIPTIONS_LIST, "subscriptions.list", "ListSubscriptions", "filter", *PAGING),
    _events(SUBSCRIPTION_GET, "subscriptions.get", "GetSubscription"),
    _events(SUBSCRIPTION_PATCH, "subscriptions.patch", "UpdateSubscription", "updateMask",
            "validateOnly"),
    _events(SUBSCRIPTION_DELETE, "subscriptions.delete", "DeleteSubscription", "etag",
            "allowMissing", "validateOnly"),
    _events(SUBSCRIPTION_REACTIVATE, "subscriptions.reactivate", "ReactivateSubscription"),
    _events(OPERATION, "operations.get", "GetOperation"),
)}
ENDPOINTS = OAUTH_ENDPOINTS + tuple(METHODS)

# Which query parameters each discovery method is read with, over all its endpoints.
DECLARED_PARAMETERS: dict[tuple[str, str, str], frozenset] = {}
for _m in METHODS.values():
    _k = (_m.api, _m.version, _m.method)
    DECLARED_PARAMETERS[_k] = DECLARED_PARAMETERS.get(_k, frozenset()) | _m.params
del _m, _k

# Legacy `errors` lists come with these (v3-era) APIs.
LEGACY_PREFIXES = ("/drive/", "/calendar/", "/admin/")


class _Query:
    """The query parameters one handler may read: only those `METHODS` declares for it, so
    the emulator never depends on a parameter the discovery document does not define."""

    def __init__(self, params, method: Method):
        self._params, self._method = params, method

    def get(self, name: str, default=None):
        if name not in self._method.params:
            raise AssertionError(f"{self._method.key} reads {name!r}, which METHODS does not "
                                 "declare for it")
        return self._params.get(name, default)


@dataclass
class _Call:
    """An authenticated API request: its method, token and readable parameters."""

    method: Method
    token: AccessToken
    query: _Query

    @property
    def person(self) -> Person:
        return self.token.person


# ---------------------------------------------------------------------------- model


@dataclass
class _Space:
    id: str
    code: str
    organizer: Person


@dataclass
class _Session:
    id: str
    start: datetime
    end: datetime


@dataclass
class _Participant:
    id: str
    kind: str                         # "signedinUser" | "anonymousUser" | "phoneUser"
    display_name: str
    person: Person | None
    sessions: list[_Session]

    @property
    def earliest(self) -> datetime:
        return min(s.start for s in self.sessions)

    @property
    def latest(self) -> datetime:
        return max(s.end for s in self.sessions)


@dataclass
class _DriveFile:
    id: str
    name: str
    mime_type: str
    owner: Person
    readers: set                      # person ids
    created: datetime
    data: bytes                       # the blob, or the Doc's text/plain export
    folder: str


@dataclass
class _Entry:
    id: str
    participant: _Participant
    text: str
    start: datetime
    end: datetime


@dataclass
class _Artifact:
    kind: str                         # "transcripts" | "recordings"
    id: str
    start: datetime
    end: datetime
    ready: datetime                   # FILE_GENERATED from then on
    file: _DriveFile
    entries: list[_Entry] = field(default_factory=list)


@dataclass
class _Conference:
    id: str
    space: _Space
    title: str
    organizer: Person
    start: datetime
    end: datetime
    participants: list[_Participant]
    artifacts: list[_Artifact]
    event_id: str
    ical_uid: str
    event_created: datetime
    invitees: list[tuple[str, str, str]]   # (name, email, responseStatus), organizer first
    calendars: set                         # ids of the people whose calendars hold it

    @property
    def name(self) -> str:
        return f"conferenceRecords/{self.id}"


def _token(rng, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
DRIVE_ALPHABET = ALNUM + "-_"
BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


def _transcript_cues(transcript) -> list[Cue] | None:
    if transcript is None:
        return None
    if isinstance(transcript, Path):
        return parse_cues(transcript.read_text(encoding="utf-8"))
    if isinstance(transcript, str):
        if "-->" in transcript:
            return parse_cues(transcript)
        return parse_cues(Path(transcript).read_text(encoding="utf-8"))
    return [Cue(str(s), float(a), float(b), str(t)) for s, a, b, t in transcript]


class MeetSandbox(WorkspaceEvents, GoogleAccounts, Emulator):
    """In-memory Google Workspace for one OAuth client: people, conferences with their
    artifacts, calendars, Drive files, event subscriptions; faults and counters for tests.

    Seed with `add_user` / `add_external_user` / `add_conference`, serve with `start(tls)`,
    point discovery-based clients at `base_url + servicePath`. `clock` returns epoch seconds
    (record states, expiry, token lifetimes); `advance(seconds)` moves it on. `retention`:
    how long conference records live after their end (None: for ever; Google: 30 days).
    """

    endpoints, rate_window_s = ENDPOINTS, RATE_WINDOW_S
    rate_limit_says_wait = False  # Google's quota errors carry no Retry-After

    def __init__(self, *, client_id: str = "sandbox-meet-client.apps.googleusercontent.com",
                 client_secret: str = "sandbox-meet-secret",
                 domain: str = "acme-analytics.example", project_id: str = "coachloop-sandbox",
                 clock: Callable[[], float] = time.time, stable_ids: bool = False,
                 redirect_uris: Iterable[str] | None = None,
                 retention: timedelta | None = RECORD_RETENTION,
                 wall_clock: Callable[[], float] = time.time):
        self._init_emulator(clock)
        self.domain, self.project_id = domain, project_id
        self.wall_clock = wall_clock
        # Ids drawn from what was seeded instead of at random: the same demo calls get the
        # same ids in every run.
        self.stable_ids = stable_ids
        self.retention = retention
        self.downloads: Counter[str] = Counter()      # Drive file id -> media/export calls
        self._conferences: dict[str, _Conference] = {}
        self._files: dict[str, _DriveFile] = {}
        self._folders: dict[str, str] = {}            # person id -> "Meet Recordings" folder
        self._init_accounts(client_id, client_secret, redirect_uris)
        self._init_events()

    # ------------------------------------------------------------------ seeding

    def add_conference(self, organizer_email: str, start: datetime | str, *,
                       title: str = "Meeting", duration_s: float = 1800,
                       participants: Iterable[tuple[str, str]] = (),
                       anonymous: Iterable[str] = (), phone: Iterable[str] = (),
                       external_attendees: Iterable[tuple[str, str]] = (),
                       transcript=None, recording: bytes | Path | None = None,
                       transcript_delay_s: float = 0.0, notify: bool = True) -> str:
        """A conference in a new space the organizer owns, and its calendar event; returns
        the record's name ("conferenceRecords/{id}").

        `participants`: (name, e-mail) joining signed in (people added when unknown: in the
        domain as its users, others as external Google accounts); the organizer always
        joins. `anonymous`, `phone`: display names. `external_attendees`: (name, e-mail) on
        the calendar invite. `transcript`: (speaker, start s, end s, text) entries, or WebVTT
        / SRT text or file whose cues read "Name: text" (the speaker is the participant with
        that display name). `recording`: the media bytes (or file), served from Drive as
        video/mp4. Transcript and recording are STARTED until the end, ENDED for
        `transcript_delay_s` more, then FILE_GENERATED. With `notify`, covering
        subscriptions hear of it (published as the clock passes each moment).
        """
        people = list(participants)
        begin = as_datetime(start)
        end = begin + timedelta(seconds=float(duration_s))
        cues = _transcript_cues(transcript)
        data = recording.read_bytes() if isinstance(recording, Path) else recording
        organizer_name = next((n for n, e in people if e.lower() == organizer_email.lower()),
                              "")
        organizer = self._ensure(organizer_name, organizer_email)
        joined = [self._ensure(n, e) for n, e in people
                  if e.lower() != organizer_email.lower()]
        with self._lock:
            rng = random.Random(f"{organizer.id}|{title}|{begin.isoformat()}") \
                if self.stable_ids else random.SystemRandom()
            record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            space = _Space(_token(rng, ALNUM, 12),
                           "-".join(_token(rng, "abcdefghijklmnopqrstuvwxyz", n)
                                    for n in (3, 4, 3)), organizer)
            roster = self._roster(rng, organizer, joined, anonymous, phone, begin, end, cues)
            readers = {organizer.id} | {p.id for p in joined if p.internal}
            ready = end + timedelta(seconds=float(transcript_delay_s))
            stamp = begin.strftime("%Y/%m/%d %H:%M UTC")
            artifacts = []
            if cues is not None:
                entries = self._entries(rng, title, roster, cues, begin)
                text = "\ufeff" + "".join(f"{e.participant.display_name}: {e.text}\r\n"
                                          for e in entries)
                doc = self._new_file(rng, 44, f"{title} - {stamp} - Transcript", GOOGLE_DOC,
                                     organizer, readers, ready, text.encode("utf-8"))
                artifacts.append(_Artifact("transcripts", _token(rng, ALNUM, 28), begin, end,
                                           ready, doc, entries))
            if data is not None:
                video = self._new_file(rng, 33, f"{title} - {stamp} - Recording",
                                       RECORDING_MEDIA, organizer, readers, ready, bytes(data))
                artifacts.append(_Artifact("recordings", _token(rng, ALNUM, 28), begin, end,
                                           ready, video))
            event_id = _token(rng, BASE32HEX, 26)
            conference = _Conference(
                record_id, space, title, organizer, begin, end, roster, artifacts, event_id,
                f"{event_id}@google.com",
                begin - timedelta(days=2, seconds=rng.randrange(0, 36000)),
                self._invitees(organizer, joined, external_attendees), set(readers))
            self._conferences[record_id] = conference
            if notify:
                self._schedule(self._happenings(conference))
                self._tick_events()
            return conference.name

    @staticmethod
    def _roster(rng, organizer: Person, joined: list[Person], anonymous, phone,
                begin: datetime, end: datetime, cues: list[Cue] | None) -> list[_Participant]:
        """Who joined: the organizer at the start, the others a little later (never after
        their first words), everyone leaving at (or a little before) the end."""
        first_cue: dict[str, float] = {}
        last_cue: dict[str, float] = {}
        for cue in cues or ():
            key = cue.speaker.lower()
            first_cue.setdefault(key, cue.start)
            last_cue[key] = max(last_cue.get(key, 0.0), cue.end)
        duration = (end - begin).total_seconds()

        def participant(kind: str, display: str, person: Person | None,
                        host: bool = False) -> _Participant:
            key = display.lower()
            join = 0.0 if host else min(rng.randrange(500_000, 45_000_000) / 1e6,
                                        first_cue.get(key, math.inf), duration / 2)
            leave = 0.0 if host else min(rng.randrange(0, 5_000_000) / 1e6,
                                         max(0.0, duration - last_cue.get(key, 0.0)))
            session = _Session(_token(rng, ALNUM, 20), begin + timedelta(seconds=join),
                               end - timedelta(seconds=leave))
            return _Participant(str(rng.randrange(10 ** 15, 10 ** 16)), kind, display, person,
                                [session])

        return ([participant("signedinUser", organizer.name, organizer, host=True)]
                + [participant("signedinUser", p.name, p) for p in joined]
                + [participant("anonymousUser", str(n), None) for n in anonymous]
                + [participant("phoneUser", str(n), None) for n in phone])

    @staticmethod
    def _entries(rng, title: str, roster: list[_Participant], cues: list[Cue],
                 begin: datetime) -> list[_Entry]:
        """Transcript entries, each cue's speaker the participant of that display name."""
        by_name: dict[str, _Participant] = {}
        for p in roster:
            by_name.setdefault(p.display_name.lower(), p)
        entries = []
        for cue in cues:
            speaker = by_name.get(cue.speaker.lower())
            if speaker is None:
                raise ValueError(f"transcript speaker {cue.speaker!r} is no participant of "
                                 f"{title!r}; participants: "
                                 f"{sorted(p.display_name for p in roster)}")
            entries.append(_Entry(_token(rng, ALNUM, 24), speaker, cue.text,
                                  begin + timedelta(seconds=cue.start),
                                  begin + timedelta(seconds=cue.end)))
        return entries

    @staticmethod
    def _invitees(organizer: Person, joined: list[Person],
                  external_attendees) -> list[tuple[str, str, str]]:
        """The calendar invite: organizer, colleagues who joined, guests (accepted when they
        joined)."""
        invitees = [(organizer.name, organizer.email, "accepted")]
        invitees += [(p.name, p.email, "accepted") for p in joined if p.internal]
        joined_emails = {p.email.lower() for p in joined}
        for name, email in external_attendees:
            if email.lower() not in {i[1].lower() for i in invitees}:
                invitees.append((name, email, "accepted" if email.lower() in joined_emails
                                 else "needsAction"))
        return invitees

    def _ensure(self, name: str, email: str) -> Person:
        if email.split("@")[-1].lower() == self.domain.lower():
            self.add_user(email, name)
        else:
            self.add_external_user(email, name)
        return self._people[email.lower()]

    def _new_file(self, rng, length: int, name: str, mime: str, owner: Person, readers: set,
                  created: datetime, data: bytes) -> _DriveFile:
        folder = self._folders.setdefault(owner.id, "1" + _token(random.Random(
            f"folder|{owner.id}") if self.stable_ids else rng, DRIVE_ALPHABET, 32))
        made = _DriveFile("1" + _token(rng, DRIVE_ALPHABET, length - 1), name, mime, owner,
                          set(readers), created, data, folder)
        self._files[made.id] = made
        return made

    def _happenings(self, conference: _Conference) -> list[Happening]:
        seeded = self.now()

        def happening(when, kind, key, resource) -> Happening:
            return Happening(when, seeded, f"google.workspace.meet.{kind}", key, resource,
                             conference.space.id, conference.organizer.id)

        made = [happening(conference.start, "conference.v2.started", "conferenceRecord",
                          conference.name),
                happening(conference.end, "conference.v2.ended", "conferenceRecord",
                          conference.name)]
        for p in conference.participants:
            for s in p.sessions:
                name = f"{conference.name}/participants/{p.id}/participantSessions/{s.id}"
                made.append(happening(s.start, "participant.v2.joined",
                                      "participantSession", name))
                made.append(happening(s.end, "participant.v2.left", "participantSession",
                                      name))
        for a in conference.artifacts:
            singular = a.kind[:-1]
            made.append(happening(a.ready, f"{singular}.v2.fileGenerated", singular,
                                  f"{conference.name}/{a.kind}/{a.id}"))
        return made

    # ---------------------------------------------------------------- faults

    def _gate(self, endpoint: str) -> None:
        """Count the request, then apply the rate limit (Google's quota errors say no
        Retry-After) and scripted faults."""
        due = self._due_fault(endpoint)
        if due is not None:
            raise self._fault(endpoint, *due)

    def _fault(self, endpoint: str, status: int, retry_after: int | None) -> Exception:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if endpoint in OAUTH_ENDPOINTS:
            error, text = {429: ("rate_limit_exceeded", "Rate limit exceeded."),
                           503: ("temporarily_unavailable",
                                 "The service is currently unavailable."),
                           500: ("internal_failure", "Internal error encountered.")}.get(
                status, ("server_error", "Server error."))
            return OAuthError(status, error, text, headers)
        method = METHODS[endpoint]
        if status == 429:
            service = method.service
            message = (f"Quota exceeded for quota metric 'Read requests' and limit 'Read "
                       f"requests per minute per user' of service '{service}' for consumer "
                       f"'project_number:{self._project_number()}'.")
            return GoogleError(429, message, reason="rateLimitExceeded", domain="usageLimits",
                               headers=headers, details=[
                                   error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", {
                                       "quota_limit": "ReadRequestsPerMinutePerUser",
                                       "quota_metric": f"{service}/read_requests",
                                       "quota_location": "global",
                                       "quota_limit_value": "600", "service": service,
                                       "consumer": f"projects/{self._project_number()}"}),
                                   {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                                       {"description": "Request a higher quota limit.",
                                        "url": "https://cloud.google.com/docs/quotas/help/"
                                               "request_increase"}]}])
        if status == 503:
            return GoogleError(503, "The service is currently unavailable.", headers=headers)
        if status == 500:
            return GoogleError(500, "Internal error encountered.", headers=headers)
        return GoogleError(status, "The caller does not have permission" if status == 403
                           else "Request failed.", headers=headers)

    def _project_number(self) -> str:
        return str(int(hashlib.sha256(self.project_id.encode()).hexdigest(), 16))[:12]

    # ------------------------------------------------------------------ serving

    def create_app(self):
        """The FastAPI app emulating the Google hosts on one origin."""
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
        from starlette.exceptions import HTTPException as StarletteHTTPException

        app = FastAPI(title="Google Meet sandbox", docs_url=None, redoc_url=None,
                      openapi_url=None)
        sandbox = self
        json_media = "application/json; charset=UTF-8"

        @app.exception_handler(GoogleError)
        async def google_error(request: Request, exc: GoogleError):
            legacy = request.url.path.startswith(LEGACY_PREFIXES)
            return JSONResponse(exc.body(legacy), status_code=exc.status,
                                headers=exc.headers, media_type=json_media)

        @app.exception_handler(OAuthError)
        async def oauth_error(_request: Request, exc: OAuthError):
            return JSONResponse({"error": exc.error, "error_description": exc.description},
                                status_code=exc.status, headers=exc.headers,
                                media_type=json_media)

        @app.exception_handler(ConsentPageError)
        async def consent_page(_request: Request, exc: ConsentPageError):
            return HTMLResponse(
                "<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head>"
                "<body><h1>Access blocked: Authorization Error</h1>"
                f"<p id=\"error\">Error {exc.status}: {exc.code}</p>"
                f"<p>{exc.message}</p></body></html>", status_code=exc.status)

        @app.exception_handler(StarletteHTTPException)
        async def not_served(request: Request, exc: StarletteHTTPException):
            return HTMLResponse(
                "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error "
                f"{exc.status_code} (Not Found)!!1</title><p><b>{exc.status_code}.</b> "
                f"<ins>That’s an error.</ins><p>The requested URL <code>{request.url.path}"
                "</code> was not found on this server. <ins>That’s all we know.</ins>",
                status_code=exc.status_code)

        def reply(call: _Call, body: dict, *, default_fields: str | None = None):
            return JSONResponse(sandbox._partial(call, body, default_fields),
                                media_type=json_media)

        async def body_of(request: Request) -> dict:
            raw = await request.body()
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise invalid_argument("Invalid JSON payload received. Unexpected token.") \
                    from None
            if not isinstance(body, dict):
                raise invalid_argument("Invalid JSON payload received. Expected an object.")
            return body

        # Google accounts -------------------------------------------------------

        @app.get("/.well-known/openid-configuration")
        async def openid_configuration(request: Request):
            sandbox._gate(OPENID_CONFIGURATION)
            return JSONResponse(sandbox._openid_configuration(sandbox._base_of(request)))

        @app.get("/oauth2/v3/certs")
        async def certs():
            sandbox._gate(CERTS)
            return JSONResponse(sandbox.jwks(), headers={
                "Cache-Control": "public, max-age=21600, must-revalidate, no-transform"})

        @app.get("/o/oauth2/v2/auth")
        async def authorize(request: Request):
            sandbox._gate(AUTHORIZE)
            return RedirectResponse(sandbox._authorize(request.query_params), status_code=302)

        @app.post("/token")
        async def token(request: Request):
            sandbox._gate(TOKEN)
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                                  keep_blank_values=True))
            return JSONResponse(sandbox._token(form, request.headers,
                                               sandbox._base_of(request)),
                                headers={"Cache-Control": "no-cache, no-store, max-age=0, "
                                                          "must-revalidate",
                                         "Pragma": "no-cache"}, media_type=json_media)

        @app.post("/revoke")
        async def revoke(request: Request):
            sandbox._gate(REVOKE)
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
            value = form.get("token") or request.query_params.get("token") or ""
            sandbox._revoke(value)
            return JSONResponse({}, media_type=json_media)

        @app.get("/v1/userinfo")
        async def userinfo(request: Request):
            sandbox._gate(USERINFO)
            header = request.headers.get("authorization", "")
            value = header[7:].strip() if header.lower().startswith("bearer ") else ""
            with sandbox._lock:
                found = sandbox._tokens.get(value)
                live = found is not None and not found.revoked \
                    and found.expires > sandbox._epoch() and found.person is not None
            if not live:
                return JSONResponse({"error": "invalid_request", "error_description":
                                     "Invalid Credentials"}, status_code=401)
            return JSONResponse(sandbox._userinfo(found), media_type=json_media)

        # Meet ------------------------------------------------------------------

        @app.get("/v2/conferenceRecords")
        async def conference_records(request: Request):
            call = sandbox._call(request, CONFERENCE_RECORDS)
            return reply(call, sandbox._list_records(call))

        @app.get("/v2/conferenceRecords/{rest:path}")
        async def conference_tree(request: Request, rest: str):
            segments = rest.split("/")
            keys = {1: CONFERENCE_RECORD}
            shapes = {("participants",): PARTICIPANTS, ("participants", "*"): PARTICIPANT,
                      ("participants", "*", "participantSessions"): PARTICIPANT_SESSIONS,
                      ("participants", "*", "participantSessions", "*"): PARTICIPANT_SESSION,
                      ("transcripts",): TRANSCRIPTS, ("transcripts", "*"): TRANSCRIPT,
                      ("transcripts", "*", "entries"): TRANSCRIPT_ENTRIES,
                      ("transcripts", "*", "entries", "*"): TRANSCRIPT_ENTRY,
                      ("recordings",): RECORDINGS, ("recordings", "*"): RECORDING}
            shape = tuple(s if i % 2 == 0 else "*" for i, s in enumerate(segments[1:]))
            key = keys.get(len(segments)) or shapes.get(shape)
            if key is None or "" in segments:
                raise StarletteHTTPException(404)
            call = sandbox._call(request, key)
            body, defaults = sandbox._meet_tree(call, segments)
            return reply(call, body, default_fields=defaults)

        @app.get("/v2/spaces/{space}")
        async def space(request: Request, space: str):
            call = sandbox._call(request, SPACE)
            return reply(call, sandbox._space_json(call, space))

        # Drive -----------------------------------------------------------------

        @app.get("/drive/v3/files/{file_id}")
        async def drive_file(request: Request, file_id: str):
            media = request.query_params.get("alt") == "media"
            call = sandbox._call(request, DRIVE_MEDIA if media else DRIVE_FILE)
            found = sandbox._readable_file(call, file_id)
            if not media:
                return reply(call, sandbox._file_json(found, call.person),
                             default_fields="kind,id,name,mimeType")
            if found.mime_type == GOOGLE_DOC:
                raise GoogleError(403, "Only files with binary content can be downloaded. "
                                  "Use Export with Docs Editors files.",
                                  reason="fileNotDownloadable", location="alt")
            with sandbox._lock:
                sandbox.downloads[found.id] += 1
            return ranged(found.data, found.mime_type, request.headers.get("range"))

        @app.get("/drive/v3/files/{file_id}/export")
        async def drive_export(request: Request, file_id: str):
            call = sandbox._call(request, DRIVE_EXPORT)
            found = sandbox._readable_file(call, file_id)
            wanted = call.query.get("mimeType")
            if not wanted:
                raise GoogleError(400, "Required parameter: mimeType", reason="required",
                                  location="mimeType")
            if found.mime_type != GOOGLE_DOC:
                raise GoogleError(403, "Export only supports Docs Editors files.",
                                  reason="fileNotExportable")
            if wanted.split(";")[0].strip() != "text/plain":
                raise GoogleError(400, "The requested conversion is not supported.",
                                  reason="badRequest", location="convertTo")
            with sandbox._lock:
                sandbox.downloads[found.id] += 1
            return Response(found.data, media_type="text/plain; charset=UTF-8")

        # Calendar, People, Admin SDK -------------------------------------------

        @app.get("/calendar/v3/calendars/{calendar_id}/events")
        async def calendar_events(request: Request, calendar_id: str):
            call = sandbox._call(request, CALENDAR_EVENTS)
            return reply(call, sandbox._events_list(call, calendar_id))

        @app.get("/v1/people/{person_id}")
        async def people_get(request: Request, person_id: str):
            call = sandbox._call(request, PERSON)
            return reply(call, sandbox._person_json(call, person_id))

        @app.get("/admin/directory/v1/users/{user_key}")
        async def directory_user(request: Request, user_key: str):
            call = sandbox._call(request, DIRECTORY_USER)
            return reply(call, sandbox._directory_user(call, user_key))

        # Workspace Events ------------------------------------------------------

        @app.post("/v1/subscriptions")
        async def create_subscription(request: Request):
            call = sandbox._call(request, SUBSCRIPTIONS_CREATE)
            body = await body_of(request)
            return reply(call, sandbox._create_subscription(call, body))

        @app.get("/v1/subscriptions")
        async def list_subscriptions(request: Request):
            call = sandbox._call(request, SUBSCRIPTIONS_LIST)
            return reply(call, sandbox._list_subscriptions(call))

        @app.get("/v1/subscriptions/{sub_id}")
        async def get_subscription(request: Request, sub_id: str):
            call = sandbox._call(request, SUBSCRIPTION_GET)
            return reply(call, sandbox._get_subscription(call, sub_id))

        @app.patch("/v1/subscriptions/{sub_id}")
        async def patch_subscription(request: Request, sub_id: str):
            call = sandbox._call(request, SUBSCRIPTION_PATCH)
            body = await body_of(request)
            return reply(call, sandbox._patch_subscription(call, sub_id, body))

        @app.delete("/v1/subscriptions/{sub_id}")
        async def delete_subscription(request: Request, sub_id: str):
            call = sandbox._call(request, SUBSCRIPTION_DELETE)
            return reply(call, sandbox._delete_subscription(call, sub_id))

        @app.post("/v1/subscriptions/{sub_action}")
        async def reactivate_subscription(request: Request, sub_action: str):
            sub_id, _, action = sub_action.partition(":")
            if action != "reactivate":
                raise StarletteHTTPException(404)
            call = sandbox._call(request, SUBSCRIPTION_REACTIVATE)
            await body_of(request)
            return reply(call, sandbox._reactivate_subscription(call, sub_id))

        @app.get("/v1/operations/{operation_id}")
        async def operation(request: Request, operation_id: str):
            call = sandbox._call(request, OPERATION)
            return reply(call, sandbox._get_operation(operation_id))

        return app

    # -------------------------------------------------------------- API plumbing

    @staticmethod
    def _base_of(request) -> str:
        return str(request.base_url).rstrip("/")

    def _call(self, request, key: str) -> _Call:
        """Count and gate the request, check its token and the method's scopes."""
        method = METHODS[key]
        self._gate(key)
        token = self._bearer(request, method)
        if not token.scopes & method.scopes:
            raise self._scope_error(method)
        if token.person is None:
            # A service account acting as itself: these APIs serve users' data only.
            raise GoogleError(403, "The caller does not have permission")
        return _Call(method, token, _Query(request.query_params, method))

    @staticmethod
    def _scope_error(method: Method) -> GoogleError:
        return GoogleError(
            403, "Request had insufficient authentication scopes.",
            details=[error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", "googleapis.com",
                                {"service": method.service, "method": method.rpc})],
            reason="insufficientPermissions", legacy_message="Insufficient Permission",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                     'error="insufficient_scope", scope="' + " ".join(sorted(method.scopes))
                     + '"'})

    def _partial(self, call: _Call, body: dict, default_fields: str | None) -> dict:
        """The `fields` partial response (checked against the method's response schema);
        without it, the method's default selection."""
        raw = call.query.get("fields") if "fields" in call.method.params else None
        selector = raw or default_fields
        if not selector:
            return body
        try:
            tree = parse_fields(selector)
            schema = call.method.response
            if raw and schema:
                check_fields(tree, schema, schema_resolver(call.method.api,
                                                           call.method.version))
        except ValueError as exc:
            raise GoogleError(400, str(exc), reason="invalidParameter",
                              location="fields") from None
        return apply_fields(body, tree)

    def _page_position(self, call: _Call, scope: str, default=0):
        token = call.query.get("pageToken")
        if not token:
            return default
        try:
            return read_page_token(token, scope)
        except ValueError:
            raise invalid_argument("The page token is invalid.", "page_token") from None

    # ---------------------------------------------------------------- Meet

    def _alive(self, conference: _Conference, now: datetime) -> bool:
        if conference.start > now:
            return False
        return self.retention is None or conference.end + self.retention > now

    def _visible(self, conference: _Conference, person: Person) -> bool:
        return conference.organizer is person or any(
            p.person is person for p in conference.participants)

    def _space_named(self, key: str) -> _Space | None:
        with self._lock:
            for conference in self._conferences.values():
                if key == conference.space.id or key.lower() == conference.space.code:
                    return conference.space
        return None

    def _space_visible(self, space: _Space, person: Person) -> bool:
        with self._lock:
            return any(self._visible(c, person) for c in self._conferences.values()
                       if c.space is space)

    def _conference(self, call: _Call, record_id: str) -> _Conference:
        with self._lock:
            conference = self._conferences.get(record_id)
        if conference is None or not self._alive(conference, self.now()):
            raise GoogleError(404, "Requested entity was not found.")
        if not self._visible(conference, call.person):
            raise GoogleError(403, "The caller does not have permission")
        return conference

    def _record_json(self, c: _Conference, now: datetime) -> dict:
        body = {"name": c.name, "startTime": proto_time(c.start)}
        if c.end <= now:
            body["endTime"] = proto_time(c.end)
            if self.retention is not None:
                body["expireTime"] = proto_time(c.end + self.retention)
        body["space"] = f"spaces/{c.space.id}"
        return body

    def _filtered(self, call: _Call, fields: dict[str, str]):
        """The request's filter, checked: `fields` maps each filterable field to "time" or
        "text"; returns the tree (None: no filter)."""
        raw = call.query.get("filter")
        if not raw:
            return None
        try:
            tree = parse_filter(raw)
        except ValueError as exc:
            raise invalid_argument(f"Invalid filter: {exc}", "filter") from None
        for c in comparisons(tree):
            kind = fields.get(c.name)
            if kind is None:
                raise invalid_argument(f"Invalid filter: unknown field {c.name}. Filterable "
                                       f"fields: {', '.join(fields)}.", "filter")
            if c.op == "IS NULL":
                if kind != "nullable time":
                    raise invalid_argument(f"Invalid filter: {c.name} can't be NULL.",
                                           "filter")
            elif kind == "text" and c.op not in ("=", "!="):
                raise invalid_argument(f"Invalid filter: {c.name} supports = and != only.",
                                       "filter")
            elif kind.endswith("time"):
                if c.op == ":":
                    raise invalid_argument(f"Invalid filter: {c.name} can't use ':'.",
                                           "filter")
                try:
                    parse_rfc3339(c.value)
                except ValueError:
                    raise invalid_argument(f"Invalid filter: {c.value!r} is not an RFC 3339 "
                                           f"timestamp ({c.name}).", "filter") from None
        return tree

    @staticmethod
    def _matches(tree, values: dict) -> bool:
        """Whether a record with these field values passes a checked filter tree."""
        def test(c) -> bool:
            left = values[c.name]
            if c.op == "IS NULL":
                return left is None
            if c.name.endswith("time"):
                right = parse_rfc3339(c.value)
            elif c.name == "space.meeting_code":       # meeting codes ignore case
                left, right = left.lower(), c.value.lower()
            else:
                right = c.value
            return compare(left, c.op, right)

        return tree is None or evaluate(tree, test)

    def _list_records(self, call: _Call) -> dict:
        tree = self._filtered(call, {"start_time": "time", "end_time": "nullable time",
                                     "space.name": "text", "space.meeting_code": "text"})
        size = page_size(call.query.get("pageSize"), 25, 100)
        now = self.now()
        with self._lock:
            found = [c for c in self._conferences.values()
                     if self._alive(c, now) and self._visible(c, call.person)
                     and self._matches(tree, {
                         "start_time": c.start, "end_time": c.end if c.end <= now else None,
                         "space.name": f"spaces/{c.space.id}",
                         "space.meeting_code": c.space.code})]
        found.sort(key=lambda c: (-c.start.timestamp(), c.id))
        scope = scope_of("conferenceRecords", call.person.id, call.query.get("filter") or "")
        after = self._page_position(call, scope, None)
        if after is not None:
            # A cursor, not an offset: records added meanwhile neither repeat nor vanish.
            try:
                cursor = (float(after[0]), str(after[1]))
            except (TypeError, ValueError, IndexError, KeyError):
                raise invalid_argument("The page token is invalid.", "page_token") from None
            found = [c for c in found if (-c.start.timestamp(), c.id) > cursor]
        page = found[:size]
        body: dict = {}
        if page:
            body["conferenceRecords"] = [self._record_json(c, now) for c in page]
        if len(found) > size:
            last = page[-1]
            body["nextPageToken"] = make_page_token(scope, [-last.start.timestamp(), last.id])
        return body

    def _meet_tree(self, call: _Call, seg: list[str]) -> tuple[dict, str | None]:
        """GET under conferenceRecords/{id}: the body and its default field selection."""
        now = self.now()
        conference = self._conference(call, seg[0])
        if len(seg) == 1:
            return self._record_json(conference, now), None
        kind = seg[1]
        if kind == "participants":
            return self._participants(call, conference, seg[2:], now)
        artifacts = [a for a in conference.artifacts if a.kind == kind]
        if len(seg) == 2:
            return self._paged(call, kind, conference.id, artifacts,
                               lambda a: self._artifact_json(conference, a, now), 10,
                               100), None
        artifact = next((a for a in artifacts if a.id == seg[2]), None)
        if artifact is None:
            raise GoogleError(404, "Requested entity was not found.")
        if len(seg) == 3:
            return self._artifact_json(conference, artifact, now), None
        entries = artifact.entries if self._state(artifact, now) == "FILE_GENERATED" else []

        def render(e):
            return self._entry_json(conference, artifact, e)

        if len(seg) == 4:
            return self._paged(call, "transcriptEntries", artifact.id, entries, render, 10,
                               100), None
        entry = next((e for e in entries if e.id == seg[4]), None)
        if entry is None:
            raise GoogleError(404, "Requested entity was not found.")
        return render(entry), None

    def _paged(self, call: _Call, plural: str, parent: str, items: list, render,
               default: int, maximum: int, extra: dict | None = None) -> dict:
        size = page_size(call.query.get("pageSize"), default, maximum)
        scope = scope_of(plural, parent, call.person.id,
                         call.query.get("filter") if "filter" in call.method.params else "")
        offset = int(self._page_position(call, scope, 0))
        page = items[offset:offset + size]
        body: dict = {}
        if page:
            body[plural] = [render(item) for item in page]
        if offset + size < len(items):
            body["nextPageToken"] = make_page_token(scope, offset + size)
        body.update(extra or {})
        return body

    def _participants(self, call: _Call, conference: _Conference, rest: list[str],
                      now: datetime) -> tuple[dict, str | None]:
        joined = [p for p in conference.participants if p.earliest <= now]
        if not rest:
            tree = self._filtered(call, {"earliest_start_time": "time",
                                         "latest_end_time": "nullable time"})
            chosen = [p for p in joined if self._matches(tree, {
                "earliest_start_time": p.earliest,
                "latest_end_time": p.latest if p.latest <= now else None})]
            chosen.sort(key=lambda p: (-p.earliest.timestamp(), p.id))
            body = self._paged(call, "participants", conference.id, chosen,
                               lambda p: self._participant_json(conference, p, now), 100, 250,
                               {"totalSize": len(chosen)})
            # `totalSize` only when the field mask asks for it (the default mask is
            # participants/*, next_page_token).
            return body, "participants,nextPageToken"
        participant = next((p for p in joined if p.id == rest[0]), None)
        if participant is None:
            raise GoogleError(404, "Requested entity was not found.")
        if len(rest) == 1:
            return self._participant_json(conference, participant, now), None
        sessions = [s for s in participant.sessions if s.start <= now]
        base = f"{conference.name}/participants/{participant.id}/participantSessions"

        def session_json(s: _Session) -> dict:
            body = {"name": f"{base}/{s.id}", "startTime": proto_time(s.start)}
            if s.end <= now:
                body["endTime"] = proto_time(s.end)
            return body

        if len(rest) == 2:
            return self._paged(call, "participantSessions", participant.id, sessions,
                               session_json, 100, 250), None
        found = next((s for s in sessions if s.id == rest[2]), None)
        if found is None:
            raise GoogleError(404, "Requested entity was not found.")
        return session_json(found), None

    @staticmethod
    def _participant_json(c: _Conference, p: _Participant, now: datetime) -> dict:
        body: dict = {"name": f"{c.name}/participants/{p.id}"}
        if p.kind == "signedinUser":
            body["signedinUser"] = {"user": f"users/{p.person.id}",
                                    "displayName": p.display_name}
        else:
            body[p.kind] = {"displayName": p.display_name}
        body["earliestStartTime"] = proto_time(p.earliest)
        if p.latest <= now:
            body["latestEndTime"] = proto_time(p.latest)
        return body

    @staticmethod
    def _state(artifact: _Artifact, now: datetime) -> str:
        if now < artifact.end:
            return "STARTED"
        return "ENDED" if now < artifact.ready else "FILE_GENERATED"

    def _artifact_json(self, c: _Conference, a: _Artifact, now: datetime) -> dict:
        state = self._state(a, now)
        body = {"name": f"{c.name}/{a.kind}/{a.id}", "state": state,
                "startTime": proto_time(a.start)}
        if state != "STARTED":
            body["endTime"] = proto_time(a.end)
        if state == "FILE_GENERATED":
            if a.kind == "transcripts":
                body["docsDestination"] = {
                    "document": a.file.id,
                    "exportUri": f"https://docs.google.com/document/d/{a.file.id}/edit"}
            else:
                body["driveDestination"] = {
                    "file": a.file.id,
                    "exportUri": f"https://drive.google.com/file/d/{a.file.id}/view"}
        return body

    @staticmethod
    def _entry_json(c: _Conference, a: _Artifact, e: _Entry) -> dict:
        return {"name": f"{c.name}/transcripts/{a.id}/entries/{e.id}",
                "participant": f"{c.name}/participants/{e.participant.id}",
                "text": e.text, "languageCode": "en-US", "startTime": proto_time(e.start),
                "endTime": proto_time(e.end)}

    def _space_json(self, call: _Call, key: str) -> dict:
        space = self._space_named(key)
        if space is None:
            raise GoogleError(404, "Requested entity was not found.")
        if not self._space_visible(space, call.person):
            raise GoogleError(403, "The caller does not have permission")
        body = {"name": f"spaces/{space.id}",
                "meetingUri": f"https://meet.google.com/{space.code}",
                "meetingCode": space.code}
        if space.organizer is call.person:
            body["config"] = {"accessType": "TRUSTED", "entryPointAccess": "ALL",
                              "moderation": "OFF",
                              "attendanceReportGenerationType": "DO_NOT_GENERATE",
                              "artifactConfig": {
                                  "recordingConfig": {"autoRecordingGeneration": "OFF"},
                                  "transcriptionConfig": {"autoTranscriptionGeneration": "OFF"},
                                  "smartNotesConfig": {"autoSmartNotesGeneration": "OFF"}}}
        now = self.now()
        with self._lock:
            live = next((c for c in self._conferences.values()
                         if c.space is space and c.start <= now < c.end), None)
        if live is not None:
            body["activeConference"] = {"conferenceRecord": live.name}
        return body

    # ---------------------------------------------------------------- Drive

    def _readable_file(self, call: _Call, file_id: str) -> _DriveFile:
        with self._lock:
            found = self._files.get(file_id)
        if found is None or call.person.id not in found.readers or self.now() < found.created:
            raise GoogleError(404, f"File not found: {file_id}.", reason="notFound",
                              location="fileId")
        return found

    def _drive_user(self, person: Person, viewer: Person) -> dict:
        return {"kind": "drive#user", "displayName": person.name, "me": person is viewer,
                "permissionId": str(int(person.id) % 10 ** 20).rjust(20, "0"),
                "emailAddress": person.email}

    def _file_json(self, f: _DriveFile, viewer: Person) -> dict:
        doc = f.mime_type == GOOGLE_DOC
        owner = f.owner is viewer
        body = {"kind": "drive#file", "id": f.id, "name": f.name, "mimeType": f.mime_type,
                "starred": False, "trashed": False, "explicitlyTrashed": False,
                "parents": [f.folder], "spaces": ["drive"], "version": "4",
                "webViewLink": (f"https://docs.google.com/document/d/{f.id}/edit?usp=drivesdk"
                                if doc else f"https://drive.google.com/file/d/{f.id}/view"
                                            "?usp=drivesdk"),
                "iconLink": ("https://drive-thirdparty.googleusercontent.com/16/type/"
                             + f.mime_type),
                "hasThumbnail": not doc, "thumbnailVersion": "0", "viewedByMe": owner,
                "createdTime": millis_time(f.created), "modifiedTime": millis_time(f.created),
                "modifiedByMe": False, "owners": [self._drive_user(f.owner, viewer)],
                "lastModifyingUser": self._drive_user(f.owner, viewer),
                "shared": len(f.readers) > 1, "ownedByMe": owner,
                "capabilities": {"canAddChildren": False, "canComment": True,
                                 "canCopy": True, "canDelete": owner, "canDownload": True,
                                 "canEdit": owner, "canListChildren": False,
                                 "canReadRevisions": owner, "canRename": owner,
                                 "canShare": owner, "canTrash": owner},
                "viewersCanCopyContent": True, "copyRequiresWriterPermission": False,
                "writersCanShare": True, "size": str(len(f.data)),
                "quotaBytesUsed": "0" if doc else str(len(f.data)),
                "isAppAuthorized": False}
        if doc:
            body["exportLinks"] = {
                "text/plain": "https://docs.google.com/feeds/download/documents/export/"
                              f"Export?id={f.id}&exportFormat=txt"}
        else:
            body.update({
                "webContentLink": f"https://drive.google.com/uc?id={f.id}&export=download",
                "originalFilename": f"{f.name}.mp4", "fullFileExtension": "mp4",
                "fileExtension": "mp4", "md5Checksum": hashlib.md5(f.data).hexdigest(),
                "sha1Checksum": hashlib.sha1(f.data).hexdigest(),
                "sha256Checksum": hashlib.sha256(f.data).hexdigest(),
                "headRevisionId": "0B" + b64url(hashlib.sha256(f.id.encode()).digest())[:40],
                "videoMediaMetadata": {"width": 1280, "height": 720,
                                       "durationMillis": str(self._duration_ms(f))}})
        return body

    def _duration_ms(self, f: _DriveFile) -> int:
        with self._lock:
            for c in self._conferences.values():
                if any(a.file is f for a in c.artifacts):
                    return int((c.end - c.start).total_seconds() * 1000)
        return 0

    # -------------------------------------------------------------- Calendar

    def _events_list(self, call: _Call, calendar_id: str) -> dict:
        q = call.query
        viewer = call.person
        if calendar_id != "primary" and calendar_id.lower() != viewer.email.lower():
            raise GoogleError(404, "Not Found", reason="notFound")

        def moment(name: str) -> datetime | None:
            raw = q.get(name)
            if raw is None:
                return None
            try:
                return parse_rfc3339(raw)
            except ValueError:
                raise GoogleError(400, "Bad Request", reason="badRequest") from None

        time_min, time_max = moment("timeMin"), moment("timeMax")
        if time_min and time_max and time_max <= time_min:
            raise GoogleError(400, "The specified time range is empty.",
                              reason="timeRangeEmpty", location="timeMax")
        order = q.get("orderBy")
        single = (q.get("singleEvents") or "").lower() == "true"
        if order not in (None, "startTime", "updated"):
            raise GoogleError(400, f"Invalid value for: orderBy: {order}",
                              reason="invalidParameter", location="orderBy")
        if order == "startTime" and not single:
            raise GoogleError(400, "The requested ordering is not available for the "
                              "particular query.", reason="badRequest")
        raw_max = q.get("maxResults")
        try:
            size = 250 if raw_max is None else int(raw_max)
        except ValueError:
            raise GoogleError(400, f"Invalid value '{raw_max}'. Values must be within the "
                              "range: [1, 2500]", reason="invalidParameter",
                              location="maxResults") from None
        if size < 1:
            raise GoogleError(400, f"Invalid value '{raw_max}'. Values must be within the "
                              "range: [1, 2500]", reason="invalidParameter",
                              location="maxResults")
        size = min(size, 2500)
        words = (q.get("q") or "").lower().split()
        ical = q.get("iCalUID")
        q.get("showDeleted")   # no event is ever cancelled here: nothing more to show
        with self._lock:
            found = [c for c in self._conferences.values() if viewer.id in c.calendars
                     and (time_min is None or c.end > time_min)
                     and (time_max is None or c.start < time_max)
                     and (ical is None or c.ical_uid == ical)
                     and all(w in self._event_text(c) for w in words)]
        if order == "updated":
            found.sort(key=lambda c: (c.event_created, c.event_id))
        else:
            found.sort(key=lambda c: (c.start, c.event_id))
        scope = scope_of("events", viewer.id, calendar_id, q.get("timeMin"), q.get("timeMax"),
                         order, single, q.get("q"), ical)
        try:
            offset = int(self._page_position(call, scope, 0))
        except GoogleError:
            raise GoogleError(400, "Invalid page token value.", reason="invalid",
                              location="pageToken") from None
        page = found[offset:offset + size]
        updated = max((c.event_created for c in found), default=self.now())
        body = {"kind": "calendar#events",
                "etag": '"' + str(int(updated.timestamp() * 1000)).rjust(16, "0") + '"',
                "summary": viewer.email, "description": "", "updated": millis_time(updated),
                "timeZone": "UTC", "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}]}
        if offset + size < len(found):
            body["nextPageToken"] = make_page_token(scope, offset + size)
        body["items"] = [self._event_json(c, viewer) for c in page]
        return body

    @staticmethod
    def _event_text(c: _Conference) -> str:
        return " ".join([c.title, c.organizer.name, c.organizer.email,
                         *(f"{n} {e}" for n, e, _ in c.invitees)]).lower()

    def _event_json(self, c: _Conference, viewer: Person) -> dict:
        import base64

        link = f"https://meet.google.com/{c.space.code}"
        eid = base64.b64encode(f"{c.event_id} {viewer.email}".encode()).decode().rstrip("=")
        organizer = {"email": c.organizer.email}
        if c.organizer is viewer:
            organizer["self"] = True
        attendees = []
        for name, email, status in c.invitees:
            item = {"email": email}
            if name:
                item["displayName"] = name
            if email.lower() == c.organizer.email.lower():
                item["organizer"] = True
            if email.lower() == viewer.email.lower():
                item["self"] = True
            item["responseStatus"] = status
            attendees.append(item)
        return {
            "kind": "calendar#event",
            "etag": '"' + str(int(c.event_created.timestamp() * 1000) * 1000).rjust(16, "3")
                    + '"',
            "id": c.event_id, "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
            "created": millis_time(c.event_created), "updated": millis_time(c.event_created),
            "summary": c.title, "creator": dict(organizer), "organizer": organizer,
            "start": {"dateTime": seconds_time(c.start), "timeZone": "UTC"},
            "end": {"dateTime": seconds_time(c.end), "timeZone": "UTC"},
            "iCalUID": c.ical_uid, "sequence": 0, "attendees": attendees,
            "hangoutLink": link,
            "conferenceData": {
                "entryPoints": [{"entryPointType": "video", "uri": link,
                                 "label": link.removeprefix("https://")}],
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet",
                                       "iconUri": MEET_ICON},
                "conferenceId": c.space.code},
            "reminders": {"useDefault": True}, "eventType": "default"}

    # ---------------------------------------------------------- People, Admin

    PERSON_FIELDS = ("addresses", "ageRanges", "biographies", "birthdays", "calendarUrls",
                     "clientData", "coverPhotos", "emailAddresses", "events", "externalIds",
                     "genders", "imClients", "interests", "locales", "locations",
                     "memberships", "metadata", "miscKeywords", "names", "nicknames",
                     "occupations", "organizations", "phoneNumbers", "photos", "relations",
                     "sipAddresses", "skills", "urls", "userDefined")

    def _person_json(self, call: _Call, person_id: str) -> dict:
        raw = call.query.get("personFields") or call.query.get("requestMask.includeField")
        if not raw:
            raise invalid_argument("personFields mask is required. Please specify one or more "
                                   "valid paths. Valid paths are documented at "
                                   "https://developers.google.com/people/api/rest/v1/people/"
                                   "get.", "person_fields")
        wanted = [p.strip().removeprefix("person.") for p in raw.split(",") if p.strip()]
        for path in wanted:
            if path not in self.PERSON_FIELDS:
                raise invalid_argument(f'Invalid personFields mask path: "{path}". Valid paths '
                                       "are documented at https://developers.google.com/people/"
                                       "api/rest/v1/people/get.", "person_fields")
        if person_id == "me":
            person = call.person
        else:
            person = self._person(person_id)
            if person is None or person.id != person_id:   # ids only, not e-mails
                raise GoogleError(404, "Requested entity was not found.")
        source = {"type": "DOMAIN_PROFILE" if person.internal else "PROFILE", "id": person.id}
        given, family = person.given_family
        body = {"resourceName": f"people/{person.id}",
                "etag": "%" + b64url(hashlib.sha256(person.email.encode()).digest()[:18])}
        if "names" in wanted:
            name = {"metadata": {"primary": True, "source": source},
                    "displayName": person.name, "familyName": family, "givenName": given,
                    "displayNameLastFirst": f"{family}, {given}" if family else given,
                    "unstructuredName": person.name}
            body["names"] = [{k: v for k, v in name.items() if v != ""}]
        if "emailAddresses" in wanted and (person.internal or person is call.person):
            body["emailAddresses"] = [{"metadata": {"primary": True, "verified": True,
                                                    "source": source},
                                       "value": person.email}]
        if "metadata" in wanted:
            body["metadata"] = {"sources": [{**source, "etag": body["etag"]}],
                                "objectType": "PERSON"}
        return body

    def _directory_user(self, call: _Call, user_key: str) -> dict:
        projection = call.query.get("projection") or "basic"
        view = call.query.get("viewType") or "admin_view"
        if projection not in ("basic", "custom", "full"):
            raise GoogleError(400, "Invalid Input: projection", reason="invalid")
        if view not in ("admin_view", "domain_public"):
            raise GoogleError(400, "Invalid Input: viewType", reason="invalid")
        target = self._person(user_key)
        if target is None or not target.internal:
            raise GoogleError(404, "Resource Not Found: userKey", reason="notFound")
        if view == "admin_view" and not call.person.admin:
            raise GoogleError(403, "Not Authorized to access this resource/api",
                              reason="forbidden")
        given, family = target.given_family
        etag = '"' + b64url(hashlib.sha256(target.id.encode()).digest()) + '"'
        name = {"givenName": given, "familyName": family, "fullName": target.name}
        emails = [{"address": target.email, "primary": True}]
        if view == "domain_public":
            return {"kind": "admin#directory#user", "id": target.id, "etag": etag,
                    "primaryEmail": target.email, "name": name, "emails": emails}
        return {"kind": "admin#directory#user", "id": target.id, "etag": etag,
                "primaryEmail": target.email, "name": name, "isAdmin": target.admin,
                "isDelegatedAdmin": False, "lastLoginTime": millis_time(self.now()),
                "creationTime": millis_time(target.created), "agreedToTerms": True,
                "suspended": False, "archived": False, "changePasswordAtNextLogin": False,
                "ipWhitelisted": False, "emails": emails,
                "languages": [{"languageCode": "en", "preference": "preferred"}],
                "customerId": "C0" + str(int(hashlib.sha256(self.domain.encode()).hexdigest(),
                                             16))[:7],
                "orgUnitPath": "/", "isMailboxSetup": True, "isEnrolledIn2Sv": False,
                "isEnforcedIn2Sv": False, "includeInGlobalAddressList": True}


# ------------------------------------------------------------------------------- demo


def meet_demo_calls(demo_dir: str | Path) -> frozenset[str]:
    """The demo calls Google Meet delivers in `coachloop demo`: those whose transcript is SRT
    (the demo's other formats belong to Teams and Zoom)."""
    from sandbox.demo_calls import calls_with_transcript

    return calls_with_transcript(demo_dir, ".srt")


def demo_seed(sandbox: MeetSandbox, demo_dir: str | Path, stems: frozenset[str]
              ) -> dict[str, str]:
    """Seed the demo calls named by `stems` as Meet conferences the rep organized: the team
    of `team.yaml` as the Workspace's users, colleagues (the org's domains) joining signed
    in, buyers joining as signed-in external Google accounts and on the calendar invite,
    transcript entries from the SRT and the recording from the .ogg. Returns
    {external_id: conference record name}."""
    import yaml

    from sandbox.demo_calls import demo_team

    demo_dir = Path(demo_dir)
    team = demo_team(demo_dir)
    for user in team.users:
        if user["email"].split("@")[-1].lower() == sandbox.domain.lower():
            sandbox.add_user(user["email"], user.get("name", ""))
    seeded = {}
    for stem in sorted(stems):
        call = yaml.safe_load((demo_dir / f"{stem}.yaml").read_text(encoding="utf-8")) or {}
        people = [(p["name"], p["email"]) for p in call["participants"]]
        host = next((e for _, e in people if e.lower() in team.reps), people[0][1])
        buyers = [(n, e) for n, e in people if not team.ours(e)]
        transcript = demo_dir / call["transcript"]
        cues = parse_cues(transcript.read_text(encoding="utf-8"))
        recording = demo_dir / call["recording"] if call.get("recording") else None
        seeded[call.get("external_id", stem)] = sandbox.add_conference(
            host, str(call["started_at"]), title=call.get("title", stem),
            duration_s=math.ceil(max((c.end for c in cues), default=1795.0)) + 5,
            participants=people, external_attendees=buyers, transcript=cues_as_entries(cues),
            recording=recording if recording and recording.is_file() else None)
    return seeded


def cues_as_entries(cues: list[Cue]) -> list[tuple[str, float, float, str]]:
    """Parsed cues as `add_conference` transcript entries."""
    return [(c.speaker, c.start, c.end, c.text) for c in cues]
