"""The Zoom sandbox over real HTTPS on loopback, through zoomus and httpx."""


import base64
import hashlib
import hmac
import json
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.server import serve
from sandbox.zoom import ZoomSandbox, demo_seed
from tests.conftest import EpochClock

ROOT = Path(__file__).resolve().parent.parent
DEMO_CALLS = ROOT / "demo" / "calls"
AUDIO = DEMO_CALLS / "demo-call-03.ogg"
HOST = "maya.chen@acme-analytics.example"
LIST = "GET /v2/users/{userId}/recordings"


@pytest.fixture
def clock():
    return EpochClock()


@pytest.fixture
def zoom(tls, clock):
    sandbox = ZoomSandbox(clock=clock)
    running = sandbox.start(tls)
    yield sandbox
    running.stop()


def s2s_token(zoom: ZoomSandbox, http: httpx.Client) -> str:
    reply = http.post(f"{zoom.base_url}/oauth/token",
                      data={"grant_type": "account_credentials", "account_id": zoom.account_id},
                      auth=(zoom.client_id, zoom.client_secret))
    assert reply.status_code == 200, reply.text
    assert "refresh_token" not in reply.json()
    return reply.json()["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def zoomus_client(zoom: ZoomSandbox, tls, monkeypatch):
    from zoomus import ZoomClient

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_path))   # zoomus calls requests.*
    return ZoomClient(zoom.client_id, zoom.client_secret, zoom.account_id,
                      base_uri=f"{zoom.base_url}/v2", oauth_uri=f"{zoom.base_url}/oauth/token")


def test_zoomus_lists_recordings_page_by_page(zoom, tls, monkeypatch):
    seeded = {zoom.add_meeting(f"Call {day}", f"2026-09-{day:02d}T15:00:00Z", HOST,
                               [("Maya Chen", HOST)], audio_path=AUDIO)
              for day in (2, 5, 9, 14, 20)}
    zoom.add_meeting("Too early", "2026-08-20T15:00:00Z", HOST, audio_path=AUDIO)
    zoom.add_meeting("Someone else", "2026-09-03T15:00:00Z", "tyler.reed@acme-analytics.example",
                     audio_path=AUDIO)
    client = zoomus_client(zoom, tls, monkeypatch)

    found, token, pages = [], None, []
    while token != "":
        extra = {"next_page_token": token} if token else {}
        reply = client.recording.list(user_id=HOST, start=date(2026, 9, 1),
                                      end=date(2026, 9, 30), page_size=2, **extra)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        pages.append(body)
        found += [m["uuid"] for m in body["meetings"]]
        token = body["next_page_token"]
    assert set(found) == seeded and len(found) == 5
    assert [len(p["meetings"]) for p in pages] == [2, 2, 1]
    first = pages[0]
    assert (first["from"], first["to"], first["page_count"], first["page_size"],
            first["total_records"]) == ("2026-09-01", "2026-09-30", 3, 2, 5)
    meeting = first["meetings"][0]
    assert meeting["start_time"] == "2026-09-20T15:00:00Z"     # newest first
    # Zoom's recordings list names the host by id only; host_email is in webhooks alone.
    assert "host_email" not in meeting and meeting["host_id"] and meeting["recording_count"] == 1
    rec = meeting["recording_files"][0]
    assert rec["file_type"] == "M4A" and rec["status"] == "completed"
    assert rec["file_size"] == AUDIO.stat().st_size and rec["meeting_id"] == meeting["uuid"]
    assert zoom.requests[LIST] == 3
    assert zoom.requests["POST /oauth/token"] == 1


def test_zoomus_gets_meeting_by_double_encoded_uuid(zoom, tls, monkeypatch):
    from zoomus.util import encode_uuid

    odd = "/ajXp112QmuoKj4854875//A=="
    zoom.add_meeting("Odd uuid", "2026-09-10T14:00:00Z", HOST,
                     [("Maya Chen", HOST), ("Brian Walker", "brian@summitmfg.example")],
                     audio_path=AUDIO, transcript_vtt="WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.000\nhi\n",
                     participant_audio={"brian@summitmfg.example": AUDIO}, meeting_uuid=odd)
    client = zoomus_client(zoom, tls, monkeypatch)

    reply = client.recording.get(meeting_id=encode_uuid(odd))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["uuid"] == odd
    assert [f["file_type"] for f in body["recording_files"]] == ["M4A", "TRANSCRIPT"]
    assert body["participant_audio_files"][0]["file_name"] == "Audio only - Brian Walker"
    assert "download_access_token" not in body
    assert client.recording.get(meeting_id=odd).status_code == 404    # not double-encoded

    people = client.past_meeting.get_participants(meeting_id=encode_uuid(odd), page_size=1)
    assert people.status_code == 200, people.text
    page = people.json()
    assert page["total_records"] == 2 and page["next_page_token"]
    assert page["participants"][0]["user_email"] == HOST
    assert page["participants"][0]["join_time"] == "2026-09-10T14:00:00Z"


def test_list_rejects_windows_over_a_month_and_bad_page_tokens(zoom, http):
    token = s2s_token(zoom, http)
    url = f"{zoom.base_url}/v2/users/me/recordings"
    wide = http.get(url, params={"from": "2026-01-01", "to": "2026-03-01"}, headers=bearer(token))
    assert wide.status_code == 400 and wide.json()["code"] == 300
    stale = http.get(url, params={"from": "2026-01-01", "to": "2026-01-20",
                                  "next_page_token": "nope"}, headers=bearer(token))
    assert stale.status_code == 400 and "next page token" in stale.json()["message"]
    fine = http.get(url, params={"from": "2026-01-01", "to": "2026-01-20", "page_size": 1000},
                    headers=bearer(token))
    assert fine.status_code == 200 and fine.json()["page_size"] == 300
    assert fine.json()["next_page_token"] == "" and fine.json()["meetings"] == []


def _pkce() -> tuple[str, str]:
    verifier = "v" * 20 + base64.urlsafe_b64encode(b"coachloop-sandbox-test").decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def _authorize(zoom, http, challenge: str, redirect: str = "https://app.example/cb") -> str:
    reply = http.get(f"{zoom.base_url}/oauth/authorize",
                     params={"response_type": "code", "client_id": zoom.client_id,
                             "redirect_uri": redirect, "state": "s-123",
                             "code_challenge": challenge, "code_challenge_method": "S256",
                             "login_hint": HOST})
    assert reply.status_code == 302
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


def test_oauth_code_flow_with_pkce_and_refresh_rotation(zoom, http):
    zoom.add_meeting("Mine", "2026-09-10T14:00:00Z", HOST, audio_path=AUDIO)
    verifier, challenge = _pkce()
    token_url, auth = f"{zoom.base_url}/oauth/token", (zoom.client_id, zoom.client_secret)

    code = _authorize(zoom, http, challenge)
    bad = http.post(token_url, auth=auth, data={"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": "https://app.example/cb",
                                                "code_verifier": "wrong" * 10})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"

    code = _authorize(zoom, http, challenge)
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": "https://app.example/cb", "code_verifier": verifier}
    wrong_secret = http.post(token_url, auth=(zoom.client_id, "nope"), data=form)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    first = http.post(token_url, auth=auth, data=form)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3599
    again = http.post(token_url, auth=auth, data=form)                  # codes are single-use
    assert again.status_code == 400 and again.json() == {
        "reason": "Invalid authorization code", "error": "invalid_grant"}

    listing = http.get(f"{zoom.base_url}/v2/users/me/recordings", headers=bearer(
        tokens["access_token"]), params={"from": "2026-09-01", "to": "2026-09-30"})
    assert listing.status_code == 200 and listing.json()["total_records"] == 1   # me = HOST

    rotated = http.post(token_url, auth=auth, data={"grant_type": "refresh_token",
                                                    "refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    reuse = http.post(token_url, auth=auth, data={"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    unsupported = http.post(token_url, auth=auth, data={"grant_type": "password"})
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_access_tokens_expire_after_an_hour(zoom, http, clock):
    token = s2s_token(zoom, http)
    url = f"{zoom.base_url}/v2/users/me/recordings"
    assert http.get(url, headers=bearer(token)).status_code == 200
    clock.now += 3601
    expired = http.get(url, headers=bearer(token))
    assert expired.status_code == 401 and expired.json()["code"] == 124
    assert http.get(url, headers=bearer("made-up")).json() == {
        "code": 124, "message": "Invalid access token."}


def test_revoked_tokens_fail_and_cannot_refresh(zoom, http):
    verifier, challenge = _pkce()
    code = _authorize(zoom, http, challenge)
    tokens = http.post(f"{zoom.base_url}/oauth/token", auth=(zoom.client_id, zoom.client_secret),
                       data={"grant_type": "authorization_code", "code": code,
                             "redirect_uri": "https://app.example/cb",
                             "code_verifier": verifier}).json()
    zoom.revoke_tokens()
    listing = http.get(f"{zoom.base_url}/v2/users/me/recordings",
                       headers=bearer(tokens["access_token"]))
    assert listing.status_code == 401 and listing.json()["code"] == 124
    refresh = http.post(f"{zoom.base_url}/oauth/token", auth=(zoom.client_id, zoom.client_secret),
                        data={"grant_type": "refresh_token",
                              "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_revoke_ends_the_users_grant_as_zoom_does(zoom, http):
    """POST /oauth/revoke (Basic client auth, `token=`): the app is deauthorized for that
    user, so the access and refresh tokens both stop working; unknown tokens are refused."""
    zoom.add_user(HOST)
    verifier, challenge = _pkce()
    auth, token_url = (zoom.client_id, zoom.client_secret), f"{zoom.base_url}/oauth/token"
    grant = {"grant_type": "authorization_code", "redirect_uri": "https://app.example/cb",
             "code_verifier": verifier}
    tokens = http.post(token_url, auth=auth,
                       data={**grant, "code": _authorize(zoom, http, challenge)}).json()
    other = s2s_token(zoom, http)  # the account-level grant is someone else's: it survives
    revoke_url = f"{zoom.base_url}/oauth/revoke"
    no_client = http.post(revoke_url, data={"token": tokens["access_token"]})
    assert no_client.status_code == 401 and no_client.json()["error"] == "invalid_client"
    wrong = http.post(revoke_url, auth=(zoom.client_id, "nope"),
                      data={"token": tokens["access_token"]})
    assert wrong.status_code == 401
    assert http.get(f"{zoom.base_url}/v2/users/me", headers=bearer(
        tokens["access_token"])).status_code == 200  # refused attempts revoked nothing

    done = http.post(revoke_url, auth=auth, data={"token": tokens["access_token"]})
    assert done.status_code == 200 and done.json() == {"status": "success"}
    me = http.get(f"{zoom.base_url}/v2/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401 and me.json() == {"code": 124,
                                                   "message": "Invalid access token."}
    refresh = http.post(token_url, auth=auth, data={"grant_type": "refresh_token",
                                                    "refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    again = http.post(revoke_url, auth=auth, data={"token": tokens["access_token"]})
    assert again.status_code == 400 and again.json() == {"reason": "Invalid Token!",
                                                         "error": "invalid_request"}
    empty = http.post(revoke_url, auth=auth, data={})
    assert empty.status_code == 400 and empty.json()["reason"] == "Token cannot be empty."
    assert http.get(f"{zoom.base_url}/v2/users/me", headers=bearer(other)).status_code == 200


def test_download_redirects_to_signed_url_once_processing_completes(zoom, http):
    muuid = zoom.add_meeting("Fresh", "2026-09-10T14:00:00Z", HOST, audio_path=AUDIO,
                             processing_polls=2)      # processing for two reads
    token = s2s_token(zoom, http)
    meeting_url = f"{zoom.base_url}/v2/meetings/{muuid}/recordings"
    first = http.get(meeting_url, headers=bearer(token)).json()["recording_files"][0]
    assert first["status"] == "processing"
    early = http.get(first["download_url"], headers=bearer(token))
    assert early.status_code == 404 and early.json()["code"] == 3301
    assert http.get(meeting_url, headers=bearer(token)).json()["recording_files"][0][
        "status"] == "processing"

    second = http.get(meeting_url, headers=bearer(token),
                      params={"include_fields": "download_access_token"}).json()
    rec = second["recording_files"][0]
    assert rec["status"] == "completed"
    assert http.get(rec["download_url"]).status_code == 401
    redirect = http.get(rec["download_url"], headers=bearer(token))
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(f"{zoom.base_url}/rec/signed/{rec['id']}?sig=")
    fetched = http.get(location)           # signed: no credentials needed
    assert fetched.status_code == 200 and fetched.content == AUDIO.read_bytes()
    tampered = http.get(location.replace("sig=", "sig=0"))
    assert tampered.status_code == 403

    via_query = http.get(rec["download_url"], follow_redirects=True,
                         params={"access_token": second["download_access_token"]})
    assert via_query.status_code == 200 and via_query.content == AUDIO.read_bytes()
    assert http.get(f"{zoom.base_url}/rec/download/unknown", headers=bearer(token)).status_code == 404
    assert zoom.requests["GET /rec/download/{fileId}"] == 5
    assert zoom.requests["GET /rec/signed/{fileId}"] == 3


def test_complete_processing_marks_files_completed(zoom):
    zoom.add_meeting("Slow", "2026-09-10T14:00:00Z", HOST, audio_path=AUDIO, processing_polls=99)
    muuid = next(iter(zoom._meetings))
    assert zoom.meeting(muuid)["recording_files"][0]["status"] == "processing"
    zoom.complete_processing()
    assert zoom.meeting(muuid)["recording_files"][0]["status"] == "completed"


@pytest.fixture
def receiver(tls):
    """A tiny webhook receiver that records raw deliveries and answers url_validation."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    seen: list[tuple[dict, bytes]] = []
    app = FastAPI()
    secret = "receiver-secret"

    @app.post("/zoom")
    async def hook(request: Request):
        raw = await request.body()
        seen.append((dict(request.headers), raw))
        body = json.loads(raw)
        if body["event"] == "endpoint.url_validation":
            plain = body["payload"]["plainToken"]
            return JSONResponse({"plainToken": plain, "encryptedToken": hmac.new(
                secret.encode(), plain.encode(), hashlib.sha256).hexdigest()})
        return JSONResponse({}, status_code=200)

    running = serve(app, tls)
    yield f"{running.url}/zoom", secret, seen
    running.stop()


def test_webhooks_are_signed_as_zoom_signs_and_can_repeat(zoom, receiver, tls, http):
    url, secret, seen = receiver
    muuid = zoom.add_meeting("Hooked", "2026-09-10T14:00:00Z", HOST, audio_path=AUDIO,
                             transcript_vtt=DEMO_CALLS / "demo-call-08.srt")
    replies = zoom.deliver("recording.completed", muuid, url, secret, times=2,
                           verify=str(tls.ca_path))
    assert [r.status_code for r in replies] == [200, 200]
    assert len(seen) == 2 and seen[0][1] == seen[1][1]                  # at-least-once
    headers, raw = seen[0]
    ts = headers["x-zm-request-timestamp"]
    assert ts == str(int(zoom.clock()))
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw,
                                hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-zm-signature"], expected)
    event = json.loads(raw)
    assert event["event"] == "recording.completed" and event["download_token"]
    obj = event["payload"]["object"]
    assert event["payload"]["account_id"] == zoom.account_id
    assert obj["uuid"] == muuid and obj["host_email"] == HOST
    assert [f["file_type"] for f in obj["recording_files"]] == ["M4A", "TRANSCRIPT"]

    transcript = obj["recording_files"][1]
    fetched = http.get(transcript["download_url"], follow_redirects=True,
                       headers=bearer(event["download_token"]))
    assert fetched.status_code == 200
    assert fetched.text.startswith("WEBVTT") and "00:00:00.600 --> 00:00:04.816" in fetched.text

    zoom.deliver("recording.transcript_completed", muuid, url, secret, verify=str(tls.ca_path))
    only = json.loads(seen[-1][1])["payload"]["object"]["recording_files"]
    assert [f["file_type"] for f in only] == ["TRANSCRIPT"]


def test_url_validation_handshake(zoom, receiver, tls):
    url, secret, seen = receiver
    assert zoom.validate_endpoint(url, secret, verify=str(tls.ca_path)) is True
    headers, raw = seen[-1]
    assert json.loads(raw)["event"] == "endpoint.url_validation"
    assert headers["x-zm-signature"].startswith("v0=")
    assert zoom.validate_endpoint(url, "another-secret", verify=str(tls.ca_path)) is False


def test_rate_limit_answers_429_with_zoom_headers(zoom, http, clock):
    token = s2s_token(zoom, http)
    zoom.set_rate_limit(LIST, 2)
    url = f"{zoom.base_url}/v2/users/me/recordings"
    codes = [http.get(url, headers=bearer(token)) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    limited = codes[2]
    assert limited.json() == {"code": 429, "message": "You have reached the maximum per-second "
                                                      "rate limit for this API. Try again later."}
    assert limited.headers["x-ratelimit-type"] == "QPS"
    assert limited.headers["x-ratelimit-category"] == "Medium"
    assert limited.headers["x-ratelimit-limit"] == "2"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["retry-after"] == "1"
    clock.now += 1.5
    assert http.get(url, headers=bearer(token)).status_code == 200
    assert zoom.requests[LIST] == 4


def test_error_rate_injects_server_errors(zoom, http):
    token = s2s_token(zoom, http)
    zoom.error_rate = 1.0
    reply = http.get(f"{zoom.base_url}/v2/users/me/recordings", headers=bearer(token))
    assert reply.status_code in (500, 503) and reply.json()["code"] == reply.status_code
    zoom.error_rate = 0.0
    assert http.get(f"{zoom.base_url}/v2/users/me/recordings",
                    headers=bearer(token)).status_code == 200


def test_demo_seed_hosts_every_call_by_its_rep():
    zoom = ZoomSandbox()
    zoom.base_url = "https://127.0.0.1:1"
    seeded = demo_seed(zoom, DEMO_CALLS)
    assert len(seeded) == len(list(DEMO_CALLS.glob("*.yaml")))
    call08 = zoom.meeting(seeded["demo-call-08"])
    assert call08["host_id"] == zoom.add_user("jordan.brooks@acme-analytics.example", "")
    assert call08["topic"] == "Demo follow-up - Cedar Logistics"
    assert call08["start_time"] == "2026-10-09T19:00:00Z"
    assert [f["file_type"] for f in call08["recording_files"]] == ["M4A", "TRANSCRIPT"]
    assert call08["recording_files"][0]["file_size"] == (DEMO_CALLS / "demo-call-08.ogg").stat().st_size
    assert [f["file_type"] for f in zoom.meeting(seeded["demo-call-01"])["recording_files"]] == ["M4A"]
