"""The Zoom recordings source against the Zoom sandbox over HTTPS (zoomus + requests, the real
token vault and database): windows and pages, the cursor, downloads, per-speaker audio,
processing files, encoded uuids, rate limits, token refresh, size limits and webhooks."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlmodel import select

from connectors import load_source
from connectors.base import SourceProblem
from connectors.zoom.source import STREAM, ZoomSource, encode_uuid
from core.connections import ConnectionBroken, read_cursor, save_connection
from core.crypto import cipher_from_settings
from core.db import session_scope
from core.errors import ConfigError, InputError, TransientError
from core.ingest import IngestOutcome, ensure_org, ingest_record
from core.models import Connection, MediaAsset, Meeting, Participant, WebhookEvent
from core.oauth import TokenSet
from core.settings import get_settings
from sandbox.zoom import ZoomSandbox, sign_webhook
from webhooks.router import make_router
from connectors.zoom.webhooks import ZoomReceiver

LIST = "GET /v2/users/{userId}/recordings"
GET = "GET /v2/meetings/{meetingId}/recordings"
PEOPLE = "GET /v2/past_meetings/{meetingId}/participants"
DOWNLOAD = "GET /rec/download/{fileId}"
SIGNED = "GET /rec/signed/{fileId}"
TOKEN = "POST /oauth/token"
REP = ("Maya Chen", "maya.chen@acme-analytics.example")
BUYER = ("Jordan Lee", "jordan@globex.example")
INVITED = [BUYER[1]]  # on the calendar invite: Zoom shows their e-mail
SECRET = "zoom-webhook-secret"


def vtt(line: str) -> str:
    return f"WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.500\n{REP[0]}: {line}\n"


def days_ago(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


@contextmanager
def running_zoom(tls, monkeypatch, **options):
    """A running sandbox (`ZoomSandbox(**options)`) and our settings pointing at it."""
    sandbox = ZoomSandbox(**options)
    running = sandbox.start(tls)
    try:
        for key, value in {"ZOOM__CLIENT_ID": sandbox.client_id,
                           "ZOOM__CLIENT_SECRET": sandbox.client_secret,
                           "ZOOM__OAUTH_BASE": running.url,
                           "ZOOM__API_BASE": f"{running.url}/v2", "CA_BUNDLE": str(tls.ca_path),
                           "PUBLIC_URL": "https://coachloop.example"}.items():
            monkeypatch.setenv(f"COACHLOOP_{key}", value)
        get_settings.cache_clear()
        yield sandbox
    finally:
        running.stop()


@pytest.fixture
def zoom(tls, monkeypatch):
    with running_zoom(tls, monkeypatch) as sandbox:
        yield sandbox


def connect(sandbox: ZoomSandbox, access_token: str | None = None) -> tuple[int, int]:
    """An org with a server-to-server Zoom connection for the sandbox account: (org, conn)."""
    tokens = TokenSet(access_token or sandbox.issue_access_token(), None,
                      datetime.now(UTC) + timedelta(hours=1), ("recording:read",), None,
                      sandbox.account_id)
    with session_scope() as session:
        org = ensure_org(session, "Acme", ["acme-analytics.example"])
        connection = save_connection(session, org_id=org.id, provider="zoom", tokens=tokens,
                                     cipher=cipher_from_settings(), auth_kind="server_to_server")
        return org.id, connection.id


@pytest.fixture
def source(sqlite_database, zoom):
    zoom.add_user(REP[1], REP[0])
    org_id, _ = connect(zoom, zoom.issue_access_token(REP[1]))  # "me" is the rep
    made = ZoomSource.for_org(org_id)
    yield made
    made.close()


def records(items) -> list:
    items = list(items)
    assert not [i for i in items if isinstance(i, SourceProblem)], items
    return items


def test_registered_under_its_entry_point():
    assert load_source("zoom") is ZoomSource


def test_polling_walks_month_windows_and_pages_then_resumes_from_the_cursor(zoom, source):
    ages = (70, 52, 50, 48, 35, 20, 10, 5, 1)
    uuids = {age: zoom.add_meeting(f"Call {age}", days_ago(age), REP[1], [REP, BUYER], invited=INVITED,
                                   transcript_vtt=vtt(f"call {age}")) for age in ages}
    source.api.page_size = 2  # three meetings in one window: two pages
    seen_progress = []
    found = records(source.list_meetings(days_ago(75),
                                         progress=lambda done, _: seen_progress.append(done)))

    assert sorted(r.external_id for r in found) == sorted(uuids.values())
    # 76 days from `since` to today: windows of 30, 30 and 16 days holding 4, 2 and 3
    # meetings, at 2 a page: 2 + 1 + 2 list calls.
    assert zoom.requests[LIST] == 5
    assert seen_progress[-1] == 1.0 and len(seen_progress) == 3
    assert zoom.requests[DOWNLOAD] == len(ages)
    assert zoom.requests[GET] == 0, "listed meetings with a transcript need no re-fetch"
    today = datetime.now(UTC).date()
    assert read_cursor(source.connection_id, STREAM) == (today + timedelta(days=1)).isoformat()

    again = records(source.list_meetings())  # resumes: only the 2-day lookback
    assert [r.external_id for r in again] == [uuids[1]]
    assert zoom.requests[LIST] == 6
    assert zoom.requests[DOWNLOAD] == len(ages), "files already on disk are not fetched again"
    first = next(r for r in found if r.external_id == uuids[1])
    assert again[0].content_hash == first.content_hash


def test_first_sync_backfills_the_configured_days_and_since_reaches_further(zoom, source):
    old = zoom.add_meeting("Old", days_ago(45), REP[1], [REP], transcript_vtt=vtt("old"))
    new = zoom.add_meeting("New", days_ago(20), REP[1], [REP], transcript_vtt=vtt("new"))
    assert source.settings.zoom.backfill_days == 30
    assert [r.external_id for r in records(source.list_meetings())] == [new]
    assert {r.external_id for r in records(source.list_meetings(days_ago(60)))} == {old, new}


def test_transcript_is_preferred_over_audio(zoom, source, tmp_path):
    audio = tmp_path / "call.m4a"
    audio.write_bytes(b"m4a" * 100)
    uuid = zoom.add_meeting("Discovery", days_ago(3), REP[1], [REP, BUYER], invited=INVITED, audio_path=audio,
                            transcript_vtt=vtt("hello"))
    record = source.read_meeting(uuid)
    assert record.tracks == ()
    assert Path(record.transcript_path).suffix == ".vtt"
    assert Path(record.transcript_path).read_text() == vtt("hello")
    assert zoom.requests[DOWNLOAD] == 1
    assert [u.text for u in source.fetch_transcript(record)] == ["hello"]
    assert record.participants[0].email == REP[1] and record.participants[1].email == BUYER[1]
    assert record.title == "Discovery" and record.started_at == days_ago(3)
    assert record.source == "zoom" and record.external_id == uuid


def test_audio_download_follows_the_redirect_and_is_kept_on_disk(zoom, source, tmp_path):
    audio = tmp_path / "call.m4a"
    audio.write_bytes(bytes(range(256)) * 40)
    uuid = zoom.add_meeting("Demo", days_ago(2), REP[1], [REP, BUYER], invited=INVITED, audio_path=audio)
    record = source.read_meeting(uuid)
    [track] = record.tracks
    assert Path(track.path).read_bytes() == audio.read_bytes()
    assert track.speaker_email is None and record.transcript_path is None
    assert zoom.requests[DOWNLOAD] == 1 and zoom.requests[SIGNED] == 1, "302 → signed URL"
    assert not [p for p in Path(track.path).parent.iterdir() if p.name.startswith(".")]

    again = source.read_meeting(uuid)
    assert again.content_hash == record.content_hash, "re-reading changes nothing"
    assert zoom.requests[DOWNLOAD] == 1, "a complete file on disk is not downloaded again"
    assert ZoomSource.record_for(record.origin).content_hash == record.content_hash


def test_per_participant_audio_gives_one_track_per_speaker(zoom, source, tmp_path):
    files = {}
    for name, email in (REP, BUYER):
        files[email] = tmp_path / f"{name.split()[0]}.m4a"
        files[email].write_bytes(email.encode() * 50)
    mixed = tmp_path / "mixed.m4a"
    mixed.write_bytes(b"mixed" * 50)
    uuid = zoom.add_meeting("Two tracks", days_ago(4), REP[1], [REP, BUYER], invited=INVITED, audio_path=mixed,
                            participant_audio=files)
    [record] = records(source.list_meetings(days_ago(5)))
    assert record.external_id == uuid
    assert zoom.requests[GET] == 1, "the listing lacks participant audio: fetched once"
    by_email = {t.speaker_email: Path(t.path).read_bytes() for t in record.tracks}
    assert by_email == {email: path.read_bytes() for email, path in files.items()}


def test_processing_files_are_retried_on_webhooks_and_held_by_the_cursor(zoom, source):
    uuid = zoom.add_meeting("Busy", days_ago(3), REP[1], [REP], transcript_vtt=vtt("busy"),
                            processing_polls=5)
    event = zoom.webhook_payload("recording.completed", uuid)
    with pytest.raises(TransientError, match="still processing") as caught:
        list(source.meetings_from_event(event))
    assert caught.value.retry_after

    [problem] = list(source.list_meetings(days_ago(10)))
    assert isinstance(problem, SourceProblem) and "still processing" in problem.message
    assert read_cursor(source.connection_id, STREAM) == days_ago(3).date().isoformat()

    zoom.complete_processing(uuid)
    [record] = source.meetings_from_event(event)  # the stored event: statuses re-checked
    assert Path(record.transcript_path).read_text() == vtt("busy")
    [polled] = records(source.list_meetings())  # resumes before the held meeting
    assert polled.external_id == uuid and polled.content_hash == record.content_hash


def test_uuids_with_slashes_are_double_encoded(zoom, source):
    uuid = "/ab//cd+ef0123456789xy=="
    assert encode_uuid(uuid) == "%252Fab%252F%252Fcd%252Bef0123456789xy%253D%253D"
    zoom.add_meeting("Slashes", days_ago(1), REP[1], [REP, BUYER], invited=INVITED, meeting_uuid=uuid,
                     transcript_vtt=vtt("slash"))
    record = source.read_meeting(uuid)
    assert record.external_id == uuid and len(record.participants) == 2
    assert ZoomSource.record_for(record.origin).external_id == uuid


def test_rate_limit_is_transient_with_retry_after(zoom, source):
    zoom.set_rate_limit(LIST, 1)
    source.check()
    with pytest.raises(TransientError) as caught:
        source.check()
    assert caught.value.retry_after == 1.0 and "limit" in caught.value.message


def test_rejected_token_is_refreshed_once_through_the_vault(sqlite_database, zoom):
    org_id, connection_id = connect(zoom, access_token="eyJnot-a-token-zoom-knows")
    source = ZoomSource.for_org(org_id)
    source.check()
    assert zoom.requests[TOKEN] == 1, "one account_credentials grant"
    source.check()
    assert zoom.requests[TOKEN] == 1, "the refreshed token is kept"

    zoom.client_secret = "rotated-at-zoom"  # the refresh will now be refused
    zoom.revoke_tokens()
    with pytest.raises(ConnectionBroken):
        ZoomSource.for_org(org_id).check()
    with session_scope() as session:
        assert session.get(Connection, connection_id).status == "broken"


def test_files_over_the_size_limit_are_refused_clearly(zoom, source, tmp_path, monkeypatch):
    audio = tmp_path / "long.m4a"
    audio.write_bytes(b"x" * 5000)
    uuid = zoom.add_meeting("Long", days_ago(2), REP[1], [REP], audio_path=audio)
    monkeypatch.setattr(source.settings, "max_media_bytes", 1000)
    with pytest.raises(InputError, match="5000 bytes, more than the 1000-byte limit"):
        source.read_meeting(uuid)
    assert zoom.requests[DOWNLOAD] == 0, "refused from the listed size, before downloading"
    assert not source.media_dir.exists() or not any(source.media_dir.rglob("*.m4a"))


def test_events_of_both_kinds_give_the_same_meeting(zoom, source, tmp_path):
    audio = tmp_path / "call.m4a"
    audio.write_bytes(b"audio" * 30)
    uuid = zoom.add_meeting("Events", days_ago(1), REP[1], [REP, BUYER], invited=INVITED, audio_path=audio,
                            transcript_vtt=vtt("events"))
    [done] = source.meetings_from_event(zoom.webhook_payload("recording.completed", uuid))
    transcript_event = zoom.webhook_payload("recording.transcript_completed", uuid)
    [transcript] = source.meetings_from_event(transcript_event)
    assert zoom.requests[GET] == 0, "the payload's files and download_token suffice"
    assert done.content_hash == transcript.content_hash
    assert Path(transcript.transcript_path).read_text() == vtt("events")
    assert list(source.meetings_from_event({"event": "meeting.started", "payload": {}})) == []


def test_webhook_download_token_is_used_without_our_token(zoom, source, tmp_path):
    audio = tmp_path / "call.m4a"
    audio.write_bytes(b"tok" * 30)
    uuid = zoom.add_meeting("Token", days_ago(1), REP[1], [REP], audio_path=audio)
    event = zoom.webhook_payload("recording.completed", uuid)
    dest = tmp_path / "by-token.m4a"
    url = event["payload"]["object"]["recording_files"][0]["download_url"]
    source.api._token = "eyJwould-be-refused"  # the download must not need it
    source.api.download(url, dest, size=90, max_bytes=1000,
                        download_token=event["download_token"])
    assert dest.read_bytes() == audio.read_bytes() and zoom.requests[TOKEN] == 0


def test_webhook_without_a_matching_connection_is_kept_and_reported(sqlite_database, zoom):
    client = webhook_client()
    post(client, zoom, zoom.add_meeting("Orphan", days_ago(1), REP[1], [REP],
                                        transcript_vtt=vtt("x")))
    with session_scope() as session:
        [event] = session.exec(select(WebhookEvent)).all()
        assert event.org_id is None
    with pytest.raises(ConfigError, match="no active Zoom connection"):
        ZoomSource.for_webhook(None)


def webhook_client() -> TestClient:
    app = FastAPI()
    app.include_router(make_router(lambda event_id: None,
                                   lambda: {"zoom": ZoomReceiver(SECRET)}))
    return TestClient(app)


def post(client: TestClient, zoom: ZoomSandbox, uuid: str) -> int:
    raw = json.dumps(zoom.webhook_payload("recording.completed", uuid)).encode()
    stamp = str(int(time.time()))
    answer = client.post("/webhooks/zoom", content=raw, headers={
        "content-type": "application/json", "x-zm-request-timestamp": stamp,
        "x-zm-signature": sign_webhook(SECRET, stamp, raw)})
    assert answer.status_code == 200, answer.text
    return answer.json()["event_id"]


def test_webhook_event_to_ingested_meeting(database, zoom, tmp_path):
    org_id, _ = connect(zoom)
    files = {}
    for name, email in (REP, BUYER):
        files[email] = tmp_path / f"{name.split()[0]}.m4a"
        files[email].write_bytes(email.encode() * 40)
    uuid = zoom.add_meeting("Pricing call", days_ago(2), REP[1], [REP, BUYER], invited=INVITED,
                            participant_audio=files)
    event_id = post(webhook_client(), zoom, uuid)
    with session_scope() as session:
        event = session.get(WebhookEvent, event_id)
        assert event.org_id == org_id, "the org comes from the event's Zoom account"
        payload = json.loads(event.raw_body)

    source = load_source("zoom").for_webhook(org_id)
    assert source.org_id == org_id
    with session_scope() as session:
        from core.models import Org

        org = session.get(Org, org_id)
        results = [ingest_record(session, org, record)
                   for record in source.meetings_from_event(payload)]
        assert [r.outcome for r in results] == [IngestOutcome.CREATED]
        again = [ingest_record(session, org, record)
                 for record in source.meetings_from_event(payload)]
        assert [r.outcome for r in again] == [IngestOutcome.UNCHANGED]
    with session_scope() as session:
        meeting = session.exec(select(Meeting)).one()
        assert (meeting.source, meeting.external_id, meeting.title) == ("zoom", uuid,
                                                                        "Pricing call")
        assets = session.exec(select(MediaAsset).where(MediaAsset.meeting_id == meeting.id)).all()
        assert {a.speaker_email for a in assets} == {REP[1], BUYER[1]}
        assert all(Path(a.local_path).is_file() for a in assets)
        people = session.exec(select(Participant).where(Participant.meeting_id == meeting.id))
        assert {(p.email, p.role) for p in people} == {(REP[1], "rep"), (BUYER[1], "buyer")}
    source.close()


def test_a_download_of_unknown_size_is_refused_from_its_content_length(
        zoom, source, tmp_path):
    audio = tmp_path / "long.m4a"
    audio.write_bytes(b"y" * 200_000)
    uuid = zoom.add_meeting("Unsized", days_ago(1), REP[1], [REP], audio_path=audio)
    url = zoom.meeting(uuid)["recording_files"][0]["download_url"]
    dest = tmp_path / "media" / "unsized.m4a"
    with pytest.raises(InputError, match="200000 bytes, more than the 100000-byte limit"):
        source.api.download(url, dest, size=None, max_bytes=100_000)
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_server_errors_are_transient(zoom, source):
    zoom.error_rate = 1.0
    with pytest.raises(TransientError, match="unavailable"):
        source.check()


# Hole 1 of the security review: an event's download_url decided where we sent our token.


@pytest.fixture
def elsewhere(tls):
    """Two hosts that are not Zoom's: each records what reached it, Authorization included.
    `/to?url=` redirects; anything else answers 401 (to tempt a token retry) or the file."""
    from fastapi.responses import RedirectResponse, Response

    from sandbox.server import serve

    servers, seen = [], []
    for name in ("attacker", "cdn"):
        app = FastAPI()

        @app.get("/{path:path}")
        async def anything(path: str, request: Request, name=name):
            seen.append((name, path, request.headers.get("authorization")))
            if path == "to":
                return RedirectResponse(request.query_params["url"], status_code=302)
            if name == "attacker":
                return Response(status_code=401)
            return Response(b"WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nhello\n")

        servers.append(serve(app, tls))
    yield {"attacker": servers[0].url, "cdn": servers[1].url}, seen
    for server in servers:
        server.stop()


def test_a_signed_event_cannot_send_our_token_to_another_host(zoom, source, elsewhere,
                                                              tmp_path):
    urls, seen = elsewhere
    uuid = zoom.add_meeting("SSRF", days_ago(1), REP[1], [REP], transcript_vtt=vtt("x"))
    event = zoom.webhook_payload("recording.completed", uuid)
    for f in event["payload"]["object"]["recording_files"]:
        f["download_url"] = f"{urls['attacker']}/rec/download/{f['id']}"
    with pytest.raises(InputError, match="not one of Zoom's hosts"):
        list(source.meetings_from_event(event))
    # Nor through another host that would redirect there.
    with pytest.raises(InputError, match="not one of Zoom's hosts"):
        source.api.download(f"{urls['cdn']}/to?url={urls['attacker']}/f", tmp_path / "y",
                            size=None, max_bytes=1000)
    assert seen == [] and not (tmp_path / "y").exists()


def test_a_redirect_to_another_allowed_host_carries_no_token(zoom, elsewhere, tmp_path):
    from connectors.base import HostAllowList
    from connectors.zoom.source import ZoomApi

    urls, seen = elsewhere
    # Zoom's download host redirects to its storage host (both allowed here).
    api = ZoomApi(urls["attacker"], lambda rejected: "our-bearer-token",
                  verify=str(get_settings().ca_bundle),
                  hosts=HostAllowList.of([urls["attacker"], urls["cdn"]], []))
    dest = api.download(f"{urls['attacker']}/to?url={urls['cdn']}/rec/file.vtt",
                        tmp_path / "t.vtt", size=None, max_bytes=10_000)
    assert dest.read_text().startswith("WEBVTT")
    assert seen == [("attacker", "to", "Bearer our-bearer-token"), ("cdn", "rec/file.vtt", None)]
    api.close()
    # The same redirect when only the first host is Zoom's: the second is never asked.
    seen.clear()
    api = ZoomApi(urls["attacker"], lambda rejected: "our-bearer-token",
                  verify=str(get_settings().ca_bundle),
                  hosts=HostAllowList.of([urls["attacker"]], []))
    with pytest.raises(InputError, match="not one of Zoom's hosts"):
        api.download(f"{urls['attacker']}/to?url={urls['cdn']}/rec/file.vtt",
                     tmp_path / "u.vtt", size=None, max_bytes=10_000)
    assert [name for name, *_ in seen] == ["attacker"]
    api.close()


def test_only_https_on_the_vendors_hosts_is_allowed():
    from connectors.base import HostAllowList

    hosts = HostAllowList.of(["https://api.zoom.us/v2", "https://zoom.us"], ["zoom.us"])
    assert hosts.allows("https://us06web.zoom.us/rec/download/x")
    assert hosts.allows("https://api.zoom.us/v2/users/me")
    for url in ("http://zoom.us/rec", "https://zoom.us.evil.example/rec",
                "https://evilzoom.us/rec", "https://user:pw@zoom.us/rec",
                "https://zoom.us:8443/rec", "https://169.254.169.254/latest/meta-data",
                "https://127.0.0.1/", "file:///etc/passwd", "https://[::1]/", "not a url"):
        assert not hosts.allows(url), url


def test_events_before_the_account_is_connected_are_processed_once_it_is(
        sqlite_database, zoom, monkeypatch):
    """Hole 6: such events were marked failed and their redeliveries dropped as duplicates."""
    import worker
    from cli import _replay

    assert get_settings().runs_in_process  # no broker: tasks run here, at once
    client = webhook_client()
    early = zoom.add_meeting("Early", days_ago(1), REP[1], [REP, BUYER], invited=INVITED, transcript_vtt=vtt("a"))
    later = zoom.add_meeting("Later", days_ago(1), REP[1], [REP, BUYER], invited=INVITED, transcript_vtt=vtt("b"))
    first, second = post(client, zoom, early), post(client, zoom, later)
    worker.handle_webhook.delay(first)  # no connection yet: it fails, and says why
    with session_scope() as session:
        failed = session.get(WebhookEvent, first)
        assert failed.org_id is None and "no active Zoom connection" in failed.error
    org_id, _ = connect(zoom)
    # A redelivery now names a connected account: it is taken up, not dropped.
    raw = json.dumps(zoom.webhook_payload("recording.completed", early)).encode()
    stamp = str(int(time.time()))
    again = client.post("/webhooks/zoom", content=raw, headers={
        "content-type": "application/json", "x-zm-request-timestamp": stamp,
        "x-zm-signature": sign_webhook(SECRET, stamp, raw)})
    assert again.json() == {"status": "accepted", "event_id": first}
    worker.handle_webhook.delay(first)  # what the API's enqueue does with it
    # The other one waits until replayed (connecting through the CLI or API replays too).
    assert _replay(org_id, None, None, failed=False) == 1
    with session_scope() as session:
        titles = {m.title for m in session.exec(select(Meeting))}
        events = {e.id: e for e in session.exec(select(WebhookEvent))}
    assert titles == {"Early", "Later"}
    assert all(e.org_id == org_id and e.error is None and e.processed_at
               for e in events.values()) and set(events) == {first, second}


# ---------------------------------------------------------------- app types, guests ----


def test_a_user_managed_app_reads_its_own_recordings_and_says_which_reps_it_cannot(
        sqlite_database, tls, monkeypatch):
    """Zoom refuses a user-managed app another user's recordings (4711, naming the :admin
    scope). The sync reports each such rep once, still reads the connected user's own, and
    the connection stays usable."""
    from core.models import Connection, User

    with running_zoom(tls, monkeypatch, app_type="user") as sandbox:
        other = ("Tyler Reed", "tyler.reed@acme-analytics.example")
        sandbox.add_user(REP[1], REP[0])
        mine = sandbox.add_meeting("Mine", days_ago(2), REP[1], [REP], transcript_vtt=vtt("a"))
        sandbox.add_meeting("Theirs", days_ago(2), other[1], [other], transcript_vtt=vtt("b"))
        org_id, connection_id = connect(sandbox, sandbox.issue_access_token(REP[1]))
        with session_scope() as session:
            for name, email in (REP, other):
                session.add(User(org_id=org_id, name=name, email=email, role="rep"))
        made = ZoomSource.for_org(org_id)
        try:
            items = list(made.list_meetings(days_ago(5)))
        finally:
            made.close()
        problems = [i for i in items if isinstance(i, SourceProblem)]
        assert [r.external_id for r in items if not isinstance(r, SourceProblem)] == [mine]
        assert [p.origin for p in problems] == [f"zoom:{other[1]}"]
        assert "admin-managed Zoom app" in problems[0].message and \
            "cloud_recording:read:list_user_recordings:admin" in problems[0].message
        with session_scope() as session:
            assert session.get(Connection, connection_id).status == "active"


def test_connections_say_when_a_zoom_app_reads_only_its_own_user(sqlite_database, tls,
                                                                    monkeypatch):
    """What a user-managed app cannot do shows in `coachloop connections` from the start,
    not at the first sync: its grant has no :admin scope."""
    from connectors.oauth_apps import check_connections, connect_following_consent

    for app_type, says in (("user", True), ("admin", False)):
        with running_zoom(tls, monkeypatch, app_type=app_type):
            with session_scope() as session:
                org_id = ensure_org(session, f"Org {app_type}", [f"{app_type}.example"]).id
            info = connect_following_consent("zoom", org_id, get_settings())
            [health] = [h for h in check_connections(org_id, get_settings())
                        if h.id == info.id]
            assert health.status == "active"
            assert ("user-managed app: reads only this user's recordings" in health.note) \
                == says, health.note


def test_a_guest_not_on_the_invite_has_no_email_and_is_never_guessed(zoom, source):
    """Zoom hides a guest's e-mail unless they were invited or registered: the participant
    carries none (left unknown, not matched by name), while the host's is known from whose
    recordings were listed, though the list names no host e-mail and the participants list
    leaves them out."""
    uuid = zoom.add_meeting("Walk-in", days_ago(2), REP[1], [BUYER], transcript_vtt=vtt("hi"))
    [record] = records(source.list_meetings(days_ago(5)))
    assert record.external_id == uuid
    assert [(p.name, p.email) for p in record.participants] == [
        (REP[1].split("@")[0], REP[1]), (BUYER[0], None)]
