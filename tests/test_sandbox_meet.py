"""The Google Meet + Workspace sandbox over real HTTPS on loopback, through Google's own clients
(googleapiclient from the shipped discovery documents, google-auth, google-auth-httplib2) and
httpx where a raw look at the wire is the point."""

import base64
import copy
import hashlib
import json
import re
import secrets
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import google.auth.transport.requests
import google.oauth2.credentials
import google_auth_httplib2
import httplib2
import httpx
import jwt
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2 import id_token, service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from sandbox import meet as meet_module
from sandbox.meet import (
    CONFERENCE_RECORD,
    CONFERENCE_RECORDS,
    DECLARED_PARAMETERS,
    DRIVE_MEDIA,
    ENDPOINTS,
    METHODS,
    SCOPES,
    TOKEN,
    MeetSandbox,
    demo_seed,
    meet_demo_calls,
)
from sandbox.meet_wire import discovery, discovery_method
from sandbox.server import serve
from tests.conftest import EpochClock

DEMO_CALLS = Path(__file__).resolve().parent.parent / "demo" / "calls"
MAYA = "maya.chen@acme-analytics.example"
LEE = "lee.park@acme-analytics.example"
PRIYA = "priya.nair@acme-analytics.example"
BUYER = ("Sam Buyer", "sam@northwind.example")
PROSPECT = ("Pat Prospect", "pat@northwind.example")
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
TOPIC = "projects/coachloop-sandbox/topics/meet-events"
REDIRECT = "https://coachloop.example/oauth/google/callback"
ALL_SCOPES = [SCOPES[name] for name in (
    "meetings.space.readonly", "drive.readonly", "calendar.readonly", "directory.readonly",
    "admin.directory.user.readonly", "openid", "email")]
TRANSCRIPT_READY = "google.workspace.meet.transcript.v2.fileGenerated"
RECORDING_READY = "google.workspace.meet.recording.v2.fileGenerated"
SRT = ("1\n00:00:00,600 --> 00:00:04,800\nMaya Chen: Thanks for joining, everyone.\n\n"
       "2\n00:00:05,000 --> 00:00:07,250\nSam Buyer: Glad to be here.\n\n"
       "3\n00:00:07,500 --> 00:00:09,000\nGuest Visitor: Hello from the lobby.\n")


pytestmark = pytest.mark.usefixtures("no_ca_bundle_env")


@pytest.fixture
def meet(tls):
    sandbox = MeetSandbox(clock=EpochClock(NOW))
    sandbox.add_user(MAYA, "Maya Chen")
    sandbox.add_user(LEE, "Lee Park")
    running = sandbox.start(tls)
    yield sandbox
    running.stop()


def auth_request(tls) -> google.auth.transport.requests.Request:
    session = requests.Session()
    session.verify, session.trust_env = str(tls.ca_path), False
    return google.auth.transport.requests.Request(session)


def authorize(meet, http, *, scopes=ALL_SCOPES, login_hint=MAYA, offline=True,
              prompt=None, state="s-1", verifier=None, **extra) -> dict:
    """The consent redirect's query (the browser leg)."""
    params = {"client_id": meet.client_id, "redirect_uri": REDIRECT, "response_type": "code",
              "scope": " ".join(scopes), "state": state, "login_hint": login_hint,
              "include_granted_scopes": "false", **extra}
    if offline:
        params["access_type"] = "offline"
    if prompt:
        params["prompt"] = prompt
    if verifier:
        params["code_challenge"] = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        params["code_challenge_method"] = "S256"
    reply = http.get(f"{meet.base_url}/o/oauth2/v2/auth", params=params)
    assert reply.status_code == 302, reply.text
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def exchange(meet, http, code: str, verifier: str | None = None, **form) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": meet.client_id, "client_secret": meet.client_secret, **form}
    if verifier:
        data["code_verifier"] = verifier
    return http.post(f"{meet.base_url}/token", data=data)


def consent(meet, http, **kw) -> dict:
    """The whole code flow (PKCE, offline): the token response."""
    verifier = secrets.token_urlsafe(48)
    query = authorize(meet, http, verifier=verifier, **kw)
    reply = exchange(meet, http, query["code"], verifier)
    assert reply.status_code == 200, reply.text
    return reply.json()


def user_credentials(meet, refresh_token: str) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(
        token=None, refresh_token=refresh_token, token_uri=f"{meet.base_url}/token",
        client_id=meet.client_id, client_secret=meet.client_secret)


def client(meet, tls, credentials, api: str, version: str):
    """A discovery-based client of the sandbox, as the connector builds one."""
    authed = google_auth_httplib2.AuthorizedHttp(
        credentials, http=httplib2.Http(ca_certs=str(tls.ca_path)))
    service_path = discovery(api, version)["servicePath"]
    return build(api, version, http=authed, static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": f"{meet.base_url}/{service_path}"})


def clients(meet, tls, credentials) -> SimpleNamespace:
    return SimpleNamespace(
        meet=client(meet, tls, credentials, "meet", "v2"),
        drive=client(meet, tls, credentials, "drive", "v3"),
        calendar=client(meet, tls, credentials, "calendar", "v3"),
        people=client(meet, tls, credentials, "people", "v1"),
        admin=client(meet, tls, credentials, "admin", "directory_v1"),
        events=client(meet, tls, credentials, "workspaceevents", "v1"))


def user_clients(meet, tls, http, email=MAYA, scopes=ALL_SCOPES,
                 include_granted: bool = True) -> SimpleNamespace:
    tokens = consent(meet, http, login_hint=email, scopes=scopes, prompt="consent",
                     include_granted_scopes=str(include_granted).lower())
    return clients(meet, tls, user_credentials(meet, tokens["refresh_token"]))


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


def all_pages(collection, method: str, key: str, **kw) -> tuple[list, int]:
    """Every item of a list method, following nextPageToken; and how many pages it took."""
    request, items, pages = getattr(collection, method)(**kw), [], 0
    while request is not None:
        page = request.execute()
        pages += 1
        items.extend(page.get(key, []))
        request = getattr(collection, f"{method}_next")(request, page)
    return items, pages


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def access_token(meet, http, email=MAYA, scopes=ALL_SCOPES) -> str:
    return consent(meet, http, login_hint=email, scopes=scopes, prompt="consent")[
        "access_token"]


# ------------------------------------------------------------------------------ OAuth


def test_code_flow_with_pkce_offline_access_refresh_and_an_id_token(meet, tls, http):
    verifier = secrets.token_urlsafe(48)
    query = authorize(meet, http, verifier=verifier, prompt="consent")
    assert query["state"] == "s-1" and query["code"].startswith("4/0A")
    assert query["scope"].split() == [
        s if s != "email" else "https://www.googleapis.com/auth/userinfo.email"
        for s in ALL_SCOPES]
    assert query["authuser"] == "0" and query["hd"] == "acme-analytics.example"

    assert exchange(meet, http, query["code"], "not-the-verifier").json() == {
        "error": "invalid_grant", "error_description": "Invalid code verifier."}
    missing = exchange(meet, http, query["code"]).json()
    assert missing == {"error": "invalid_grant", "error_description": "Missing code verifier."}
    wrong_uri = exchange(meet, http, query["code"], verifier,
                         redirect_uri="https://elsewhere.example/cb")
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "redirect_uri_mismatch"
    tokens = exchange(meet, http, query["code"], verifier)
    assert tokens.status_code == 200 and tokens.headers["cache-control"].startswith("no-cache")
    body = tokens.json()
    assert list(body) == ["access_token", "expires_in", "refresh_token", "scope",
                          "token_type", "id_token"]
    assert body["access_token"].startswith("ya29.") and body["expires_in"] == 3599
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("1//")
    reused = exchange(meet, http, query["code"], verifier)
    assert reused.status_code == 400 and reused.json() == {
        "error": "invalid_grant", "error_description": "Bad Request"}

    # The ID token verifies against the JWKS, as google-auth and PyJWT check it.
    claims = id_token.verify_token(body["id_token"], auth_request(tls), audience=meet.client_id,
                                   certs_url=f"{meet.base_url}/oauth2/v3/certs")
    assert claims["iss"] == "https://accounts.google.com" and claims["aud"] == meet.client_id
    assert claims["sub"] == meet.user_id(MAYA) and len(claims["sub"]) == 21
    assert claims["email"] == MAYA and claims["email_verified"] is True
    assert claims["hd"] == "acme-analytics.example" and claims["exp"] - claims["iat"] == 3600
    config = http.get(f"{meet.base_url}/.well-known/openid-configuration").json()
    assert config["issuer"] == "https://accounts.google.com"
    assert config["jwks_uri"] == f"{meet.base_url}/oauth2/v3/certs"
    assert config["token_endpoint"] == f"{meet.base_url}/token"
    assert config["authorization_endpoint"] == f"{meet.base_url}/o/oauth2/v2/auth"
    jwks = jwt.PyJWKClient(config["jwks_uri"], ssl_context=ssl.create_default_context(
        cafile=str(tls.ca_path)))
    signing = jwks.get_signing_key_from_jwt(body["id_token"])
    assert jwt.decode(body["id_token"], signing.key, algorithms=["RS256"],
                      audience=meet.client_id)["email"] == MAYA

    # google-auth refreshes through the sandbox; Google's refresh tokens do not rotate.
    credentials = user_credentials(meet, body["refresh_token"])
    credentials.refresh(auth_request(tls))
    assert credentials.token.startswith("ya29.") and credentials.token != body["access_token"]
    assert credentials.refresh_token == body["refresh_token"]
    assert credentials.id_token and credentials.expiry > datetime.now(UTC).replace(tzinfo=None)

    # A refresh token comes with the first offline consent only, unless prompt=consent.
    again = consent(meet, http)
    assert "refresh_token" not in again and again["access_token"]
    assert "refresh_token" in consent(meet, http, prompt="consent")
    assert "refresh_token" not in consent(meet, http, offline=False, prompt="consent")

    # Client authentication: HTTP Basic or form fields; a wrong secret is 401.
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    basic = http.post(f"{meet.base_url}/token", data=form,
                      auth=(meet.client_id, meet.client_secret))
    assert basic.status_code == 200 and "refresh_token" not in basic.json()
    wrong = http.post(f"{meet.base_url}/token", data={
        **form, "client_id": meet.client_id, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {
        "error": "invalid_client", "error_description": "Unauthorized"}
    odd = http.post(f"{meet.base_url}/token", data={
        "grant_type": "password", "client_id": meet.client_id,
        "client_secret": meet.client_secret})
    assert odd.json() == {"error": "unsupported_grant_type",
                          "error_description": "Invalid grant_type: password"}
    assert meet.requests[TOKEN] >= 10


def test_googles_own_oauth_library_completes_a_consent(meet, tls, http, monkeypatch):
    """google-auth-oauthlib's Flow (Google's client for the installed-app and web flows:
    PKCE, offline access) gets a refresh token from the emulator, and google-auth refreshes
    it: the emulator answers as Google's own libraries expect."""
    from google_auth_oauthlib.flow import Flow

    # Google reports `email` as userinfo.email; oauthlib would call that a changed scope.
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    flow = Flow.from_client_config(
        {"web": {"client_id": meet.client_id, "client_secret": meet.client_secret,
                 "auth_uri": f"{meet.base_url}/o/oauth2/v2/auth",
                 "token_uri": f"{meet.base_url}/token", "redirect_uris": [REDIRECT]}},
        scopes=ALL_SCOPES, redirect_uri=REDIRECT)
    url, state = flow.authorization_url(access_type="offline", prompt="consent",
                                        login_hint=MAYA)
    assert "code_challenge=" in url
    back = urlsplit(http.get(url).headers["location"])
    query = parse_qs(back.query)
    assert query["state"] == [state]
    flow.fetch_token(code=query["code"][0], verify=str(tls.ca_path))
    credentials = flow.credentials
    assert credentials.token and credentials.refresh_token
    first = credentials.token
    credentials.refresh(auth_request(tls))
    assert credentials.token != first and credentials.valid


def test_consent_refusals_revocation_and_the_revoke_endpoint(meet, tls, http):
    meet.decline_consent()
    declined = authorize(meet, http, state="s-9")
    assert declined == {"state": "s-9", "error": "access_denied"}
    meet.decline_consent(False)
    unknown = http.get(f"{meet.base_url}/o/oauth2/v2/auth", params={
        "client_id": "someone-else.apps.googleusercontent.com", "redirect_uri": REDIRECT,
        "response_type": "code", "scope": "openid"})
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "invalid_client" in unknown.text
    implicit = http.get(f"{meet.base_url}/o/oauth2/v2/auth", params={
        "client_id": meet.client_id, "redirect_uri": REDIRECT, "response_type": "token",
        "scope": "openid", "state": "x"})
    assert parse_qs(urlsplit(implicit.headers["location"]).query) == {
        "state": ["x"], "error": ["unsupported_response_type"]}
    plain_http = http.get(f"{meet.base_url}/o/oauth2/v2/auth", params={
        "client_id": meet.client_id, "redirect_uri": "http://coachloop.example/cb",
        "response_type": "code", "scope": "openid"})
    assert plain_http.status_code == 400 and "redirect_uri_mismatch" in plain_http.text
    loopback = http.get(f"{meet.base_url}/o/oauth2/v2/auth", params={
        "client_id": meet.client_id, "redirect_uri": "http://127.0.0.1:8765/cb",
        "response_type": "code", "scope": "openid"})
    assert loopback.status_code == 302
    assert loopback.headers["location"].startswith("http://127.0.0.1:8765/cb?code=")

    # The user removes the app: refresh answers invalid_grant, access tokens stop working.
    tokens = consent(meet, http, prompt="consent")
    credentials = user_credentials(meet, tokens["refresh_token"])
    meet_api = client(meet, tls, credentials, "meet", "v2")
    assert meet_api.conferenceRecords().list().execute() == {}
    meet.revoke_consent(MAYA)
    with pytest.raises(RefreshError) as refused:
        user_credentials(meet, tokens["refresh_token"]).refresh(auth_request(tls))
    assert refused.value.args[1] == {"error": "invalid_grant",
                                     "error_description": "Token has been expired or revoked."}
    stale = http.get(f"{meet.base_url}/v2/conferenceRecords",
                     headers=bearer(tokens["access_token"]))
    assert stale.status_code == 401

    # POST /revoke ends the grant; a second time the token is unknown.
    fresh = consent(meet, http, prompt="consent")
    assert http.post(f"{meet.base_url}/revoke",
                     data={"token": fresh["refresh_token"]}).status_code == 200
    again = http.post(f"{meet.base_url}/revoke", data={"token": fresh["refresh_token"]})
    assert again.status_code == 400 and again.json() == {
        "error": "invalid_token", "error_description": "Token expired or revoked"}
    assert http.get(f"{meet.base_url}/v2/conferenceRecords",
                    headers=bearer(fresh["access_token"])).status_code == 401


def test_domain_wide_delegation_with_and_without_a_grant(meet, tls, http):
    meet.add_conference(MAYA, "2026-03-18T15:00:00Z", title="Discovery")
    info = meet.add_service_account()
    assert info["type"] == "service_account" and info["project_id"] == meet.project_id
    assert info["client_email"] == "coachloop-sa@coachloop-sandbox.iam.gserviceaccount.com"
    assert re.fullmatch(r"\d{21}", info["client_id"])
    assert re.fullmatch(r"[0-9a-f]{40}", info["private_key_id"])
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert info["token_uri"] == f"{meet.base_url}/token"
    assert info["universe_domain"] == "googleapis.com"
    assert info["client_x509_cert_url"].endswith("coachloop-sa%40coachloop-sandbox.iam."
                                                 "gserviceaccount.com")
    meet_scope = SCOPES["meetings.space.readonly"]
    delegated = service_account.Credentials.from_service_account_info(
        info, scopes=[meet_scope]).with_subject(MAYA)

    with pytest.raises(RefreshError) as refused:
        delegated.refresh(auth_request(tls))
    assert refused.value.args[1] == {
        "error": "unauthorized_client",
        "error_description": "Client is unauthorized to retrieve access tokens using this "
                             "method, or client not authorized for any of the scopes "
                             "requested."}

    meet.grant_delegation(info["client_id"], ["meetings.space.readonly"])
    records = client(meet, tls, delegated, "meet", "v2").conferenceRecords().list().execute()
    assert len(records["conferenceRecords"]) == 1
    wider = service_account.Credentials.from_service_account_info(
        info, scopes=[meet_scope, SCOPES["drive.readonly"]]).with_subject(MAYA)
    with pytest.raises(RefreshError, match="unauthorized_client"):
        wider.refresh(auth_request(tls))
    with pytest.raises(RefreshError, match="Invalid email or User ID"):
        service_account.Credentials.from_service_account_info(
            info, scopes=[meet_scope]).with_subject(BUYER[1]).refresh(auth_request(tls))

    # The service account as itself gets a token, but Meet serves users' data only.
    itself = service_account.Credentials.from_service_account_info(info, scopes=[meet_scope])
    with pytest.raises(HttpError) as app_only:
        client(meet, tls, itself, "meet", "v2").conferenceRecords().list().execute()
    assert app_only.value.resp.status == 403

    # A key the sandbox never issued signs nothing; delegation removed refuses new tokens.
    forged = dict(info, private_key=service_account_key())
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        service_account.Credentials.from_service_account_info(
            forged, scopes=[meet_scope]).with_subject(MAYA).refresh(auth_request(tls))
    meet.revoke_delegation(info["client_id"])
    with pytest.raises(RefreshError, match="unauthorized_client"):
        service_account.Credentials.from_service_account_info(
            info, scopes=[meet_scope]).with_subject(MAYA).refresh(auth_request(tls))


def service_account_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_scopes_credentials_and_googles_error_shapes(meet, tls, http):
    meet.add_conference(MAYA, "2026-03-18T15:00:00Z", recording=b"\x00" * 64)
    narrow = user_clients(meet, tls, http, scopes=[SCOPES["calendar.readonly"]])
    with pytest.raises(HttpError) as refused:
        narrow.meet.conferenceRecords().list().execute()
    assert refused.value.resp.status == 403
    assert error_of(refused.value) == {
        "code": 403, "message": "Request had insufficient authentication scopes.",
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                     "metadata": {"service": "meet.googleapis.com",
                                  "method": "google.apps.meet.v2.ConferenceRecordsService."
                                            "ListConferenceRecords"}}]}
    assert 'error="insufficient_scope"' in refused.value.resp["www-authenticate"]
    with pytest.raises(HttpError) as drive_refused:
        narrow.drive.files().get(fileId="anything").execute()
    drive_error = error_of(drive_refused.value)
    assert drive_error["errors"] == [{"message": "Insufficient Permission", "domain": "global",
                                      "reason": "insufficientPermissions"}]
    assert drive_error["status"] == "PERMISSION_DENIED"
    assert narrow.calendar.events().list(calendarId="primary").execute()["kind"] == \
        "calendar#events"

    missing = http.get(f"{meet.base_url}/v2/conferenceRecords")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="https://accounts.google.com/"'
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert missing.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    invalid = http.get(f"{meet.base_url}/v2/conferenceRecords", headers=bearer("ya29.nope"))
    assert invalid.json() == {"error": {
        "code": 401, "message": "Request had invalid authentication credentials. Expected "
        "OAuth 2 access token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "status": "UNAUTHENTICATED"}}
    drive_invalid = http.get(f"{meet.base_url}/drive/v3/files/x", headers=bearer("ya29.nope"))
    assert drive_invalid.json()["error"]["errors"] == [{
        "message": "Invalid Credentials", "domain": "global", "reason": "authError",
        "location": "Authorization", "locationType": "header"}]

    # An expired access token: google-auth-httplib2 refreshes on the 401 and retries.
    full = user_clients(meet, tls, http)
    assert len(full.meet.conferenceRecords().list().execute()["conferenceRecords"]) == 1
    before = meet.requests[TOKEN]
    meet.expire_tokens()
    assert len(full.meet.conferenceRecords().list().execute()["conferenceRecords"]) == 1
    assert meet.requests[TOKEN] == before + 1
    # Parameters the document does not define are ignored, as Google does.
    odd = http.get(f"{meet.base_url}/v2/conferenceRecords", params={"orderBy": "x", "foo": 1},
                   headers=bearer(access_token(meet, http)))
    assert odd.status_code == 200


# ------------------------------------------------------------------------------- Meet


def test_conference_records_filter_newest_first_and_page_to_the_end(meet, tls, http):
    days = [2, 4, 6, 8, 10, 12, 14]
    made = [meet.add_conference(MAYA, f"2026-03-{d:02d}T15:00:00Z", title=f"Call {d}")
            for d in days]
    lees = meet.add_conference(LEE, "2026-03-09T10:00:00Z", title="Lee alone")
    joint = meet.add_conference(LEE, "2026-03-11T10:00:00Z", title="Lee with Maya",
                                participants=[("Maya Chen", MAYA)])
    maya = user_clients(meet, tls, http)
    records = maya.meet.conferenceRecords()
    window = 'start_time>="2026-03-04T00:00:00Z" AND start_time<="2026-03-12T23:59:59.5Z"'
    items, pages = all_pages(records, "list", "conferenceRecords", filter=window, pageSize=2)
    assert [i["name"] for i in items] == [made[5], joint, made[4], made[3], made[2], made[1]]
    assert pages == 3
    assert items[0] == {"name": made[5], "startTime": "2026-03-12T15:00:00Z",
                        "endTime": "2026-03-12T15:30:00Z",
                        "expireTime": "2026-04-11T15:30:00Z", "space": items[0]["space"]}
    assert re.fullmatch(r"spaces/[A-Za-z0-9]{12}", items[0]["space"])
    everything, _ = all_pages(records, "list", "conferenceRecords")
    assert len(everything) == 8 and lees not in {i["name"] for i in everything}
    lee = user_clients(meet, tls, http, email=LEE)
    assert {r["name"] for r in lee.meet.conferenceRecords().list().execute()[
        "conferenceRecords"]} == {lees, joint}

    one = records.get(name=made[0]).execute()
    space = maya.meet.spaces().get(name=one["space"]).execute()
    by_code = records.list(filter=f'space.meeting_code = "{space["meetingCode"].upper()}"'
                           ).execute()["conferenceRecords"]
    assert [r["name"] for r in by_code] == [made[0]]
    assert [r["name"] for r in records.list(filter=f'space.name = "{one["space"]}"').execute()[
        "conferenceRecords"]] == [made[0]]
    assert records.list(filter="end_time IS NULL").execute() == {}

    def refused(**kw) -> dict:
        with pytest.raises(HttpError) as exc:
            records.list(**kw).execute()
        assert exc.value.resp.status == 400
        return error_of(exc.value)

    assert refused(filter="start_time>=2026-03-01")["status"] == "INVALID_ARGUMENT"
    assert "unknown field" in refused(filter='organizer = "x"')["message"]
    assert refused(filter='start_time>="yesterday"')["status"] == "INVALID_ARGUMENT"
    assert refused(pageSize=-1)["status"] == "INVALID_ARGUMENT"
    page = records.list(filter=window, pageSize=2).execute()
    assert refused(pageToken=page["nextPageToken"])["message"] == "The page token is invalid."
    assert len(records.list(pageSize=1000).execute()["conferenceRecords"]) == 8

    # A page token is a cursor: a record added while paging neither repeats nor is missed.
    first = records.list(pageSize=3).execute()
    meet.add_conference(MAYA, "2026-03-19T09:00:00Z", title="Newest")
    rest, _ = all_pages(records, "list", "conferenceRecords", pageSize=3,
                        pageToken=first["nextPageToken"])
    assert len(first["conferenceRecords"]) + len(rest) == 8

    with pytest.raises(HttpError) as not_yours:
        records.get(name=lees).execute()
    assert not_yours.value.resp.status == 403
    with pytest.raises(HttpError) as absent:
        records.get(name="conferenceRecords/no-such-record").execute()
    assert error_of(absent.value) == {"code": 404, "message": "Requested entity was not found.",
                                      "status": "NOT_FOUND"}


def test_participants_signed_in_anonymous_and_phone_and_who_they_are(meet, tls, http):
    meet.add_user(PRIYA, "Priya Nair", admin=True)
    record = meet.add_conference(MAYA, NOW - timedelta(minutes=20), title="Live call",
                                 duration_s=3600, participants=[("Lee Park", LEE), BUYER],
                                 anonymous=["Guest Visitor"], phone=["+1 415-***-**12"])
    maya = user_clients(meet, tls, http)
    participants = maya.meet.conferenceRecords().participants()
    listed = participants.list(parent=record).execute()
    assert set(listed) == {"participants"}            # totalSize only when asked for
    people = listed["participants"]
    assert len(people) == 5
    joins = [p["earliestStartTime"] for p in people]
    assert joins == sorted(joins, reverse=True)       # by join time, newest first
    by_kind = {next(k for k in p if k.endswith("User")): p for p in people
               if "signedinUser" not in p}
    assert by_kind["anonymousUser"]["anonymousUser"] == {"displayName": "Guest Visitor"}
    assert by_kind["phoneUser"]["phoneUser"] == {"displayName": "+1 415-***-**12"}
    signed = {p["signedinUser"]["displayName"]: p for p in people if "signedinUser" in p}
    assert signed["Sam Buyer"]["signedinUser"]["user"] == f"users/{meet.user_id(BUYER[1])}"
    assert signed["Maya Chen"]["earliestStartTime"] == proto(NOW - timedelta(minutes=20))
    assert all("latestEndTime" not in p for p in people)          # all still in the call
    assert participants.list(parent=record, filter="latest_end_time IS NULL").execute()[
        "participants"] == people
    counted = participants.list(parent=record, pageSize=2,
                                fields="participants,nextPageToken,totalSize").execute()
    assert counted["totalSize"] == 5 and len(counted["participants"]) == 2
    items, pages = all_pages(participants, "list", "participants", parent=record, pageSize=2)
    assert items == people and pages == 3
    late = participants.list(parent=record, filter=f'earliest_start_time>'
                             f'"{proto(NOW - timedelta(minutes=20))}"').execute()
    assert len(late["participants"]) == 4
    one = participants.get(name=signed["Lee Park"]["name"]).execute()
    assert one == signed["Lee Park"]
    sessions = participants.participantSessions().list(parent=one["name"]).execute()
    assert len(sessions["participantSessions"]) == 1
    assert sessions["participantSessions"][0]["startTime"] == one["earliestStartTime"]

    meet.advance(3600)
    ended = participants.list(parent=record).execute()["participants"]
    assert all("latestEndTime" in p for p in ended)
    assert max(p["latestEndTime"] for p in ended) == proto(NOW + timedelta(minutes=40))

    # People: a domain profile carries the e-mail; another account's profile does not.
    lee_id, buyer_id = meet.user_id(LEE), meet.user_id(BUYER[1])
    lee = maya.people.people().get(resourceName=f"people/{lee_id}",
                                   personFields="names,emailAddresses").execute()
    assert lee["resourceName"] == f"people/{lee_id}"
    assert lee["emailAddresses"] == [{"metadata": {"primary": True, "verified": True,
                                                   "source": {"type": "DOMAIN_PROFILE",
                                                              "id": lee_id}},
                                      "value": LEE}]
    assert lee["names"][0]["displayName"] == "Lee Park"
    buyer = maya.people.people().get(resourceName=f"people/{buyer_id}",
                                     personFields="names,emailAddresses").execute()
    assert "emailAddresses" not in buyer and buyer["names"][0]["displayName"] == "Sam Buyer"
    assert buyer["names"][0]["metadata"]["source"]["type"] == "PROFILE"
    with pytest.raises(HttpError) as no_mask:
        maya.people.people().get(resourceName=f"people/{lee_id}").execute()
    assert no_mask.value.resp.status == 400 and "personFields" in error_of(no_mask.value)[
        "message"]
    with pytest.raises(HttpError) as nobody:
        maya.people.people().get(resourceName="people/123", personFields="names").execute()
    assert nobody.value.resp.status == 404

    # Admin SDK: the admin view for administrators, the public view for everyone.
    with pytest.raises(HttpError) as not_admin:
        maya.admin.users().get(userKey=LEE).execute()
    assert error_of(not_admin.value)["errors"][0]["reason"] == "forbidden"
    public = maya.admin.users().get(userKey=LEE, viewType="domain_public").execute()
    assert public["primaryEmail"] == LEE and "isAdmin" not in public
    admin = user_clients(meet, tls, http, email=PRIYA)
    full = admin.admin.users().get(userKey=lee_id).execute()
    assert full["kind"] == "admin#directory#user" and full["id"] == lee_id
    assert full["name"] == {"givenName": "Lee", "familyName": "Park", "fullName": "Lee Park"}
    with pytest.raises(HttpError) as outsider:
        admin.admin.users().get(userKey=BUYER[1]).execute()
    assert error_of(outsider.value)["message"] == "Resource Not Found: userKey"


def proto(moment: datetime) -> str:
    """A timestamp as the Meet API writes it (protobuf JSON)."""
    from sandbox.meet_wire import proto_time

    return proto_time(moment)


def test_transcript_states_with_the_delay_and_entries_paging(meet, tls, http):
    start = NOW - timedelta(minutes=10)
    lines = [("Maya Chen" if i % 2 == 0 else "Sam Buyer", 5.0 * i, 5.0 * i + 4.5,
              f"Line {i}") for i in range(25)]
    record = meet.add_conference(MAYA, start, duration_s=1200, participants=[BUYER],
                                 transcript=lines, transcript_delay_s=120)
    maya = user_clients(meet, tls, http)
    transcripts = maya.meet.conferenceRecords().transcripts()
    entries = transcripts.entries()
    [started] = transcripts.list(parent=record).execute()["transcripts"]
    assert started == {"name": started["name"], "state": "STARTED",
                       "startTime": "2026-03-20T11:50:00Z"}
    assert entries.list(parent=started["name"]).execute() == {}

    meet.advance(600)
    ended = transcripts.get(name=started["name"]).execute()
    assert ended["state"] == "ENDED" and ended["endTime"] == "2026-03-20T12:10:00Z"
    assert "docsDestination" not in ended

    meet.advance(120)
    ready = transcripts.get(name=started["name"]).execute()
    assert ready["state"] == "FILE_GENERATED"
    document = ready["docsDestination"]["document"]
    assert ready["docsDestination"]["exportUri"] == \
        f"https://docs.google.com/document/d/{document}/edit"
    first = entries.list(parent=ready["name"]).execute()
    assert len(first["transcriptEntries"]) == 10 and "nextPageToken" in first
    every, pages = all_pages(entries, "list", "transcriptEntries", parent=ready["name"])
    assert pages == 3 and [e["text"] for e in every] == [text for *_, text in lines]
    assert len(entries.list(parent=ready["name"], pageSize=500).execute()[
        "transcriptEntries"]) == 25
    people = maya.meet.conferenceRecords().participants().list(parent=record).execute()[
        "participants"]
    buyer = next(p["name"] for p in people
                 if p.get("signedinUser", {}).get("displayName") == "Sam Buyer")
    second = every[1]
    assert second["participant"] == buyer and second["languageCode"] == "en-US"
    assert second["startTime"] == "2026-03-20T11:50:05Z"
    assert second["endTime"] == "2026-03-20T11:50:09.500Z"
    assert entries.get(name=second["name"]).execute() == second

    text = maya.drive.files().export(fileId=document, mimeType="text/plain").execute()
    assert text.startswith("\ufeffMaya Chen: Line 0\r\nSam Buyer: Line 1\r\n".encode())

    # SRT cues naming participants (anonymous ones too) become entries.
    srt = meet.add_conference(MAYA, "2026-03-19T09:00:00Z", participants=[BUYER],
                              anonymous=["Guest Visitor"], transcript=SRT)
    [done] = transcripts.list(parent=srt).execute()["transcripts"]
    spoken = entries.list(parent=done["name"]).execute()["transcriptEntries"]
    assert [e["text"] for e in spoken] == ["Thanks for joining, everyone.", "Glad to be here.",
                                           "Hello from the lobby."]
    assert spoken[0]["startTime"] == "2026-03-19T09:00:00.600Z"
    with pytest.raises(ValueError, match="no participant"):
        meet.add_conference(MAYA, "2026-03-19T11:00:00Z", transcript=SRT)


def test_recordings_download_with_ranges_and_access_is_refused_to_outsiders(meet, tls, http):
    video = bytes(range(256)) * 8
    record = meet.add_conference(MAYA, "2026-03-18T15:00:00Z", title="Demo",
                                 participants=[("Lee Park", LEE), BUYER], recording=video,
                                 transcript=[("Maya Chen", 1, 2, "Hi")])
    maya = user_clients(meet, tls, http)
    [recording] = maya.meet.conferenceRecords().recordings().list(parent=record).execute()[
        "recordings"]
    assert recording["state"] == "FILE_GENERATED"
    file_id = recording["driveDestination"]["file"]
    assert re.fullmatch(r"1[\w-]{32}", file_id)
    assert recording["driveDestination"]["exportUri"] == \
        f"https://drive.google.com/file/d/{file_id}/view"
    files = maya.drive.files()
    assert files.get(fileId=file_id).execute() == {
        "kind": "drive#file", "id": file_id, "name": "Demo - 2026/03/18 15:00 UTC - Recording",
        "mimeType": "video/mp4"}
    picked = files.get(fileId=file_id, fields="id,size,owners(emailAddress),"
                                              "videoMediaMetadata/durationMillis",
                       supportsAllDrives=True).execute()
    assert picked == {"id": file_id, "size": str(len(video)),
                      "owners": [{"emailAddress": MAYA}],
                      "videoMediaMetadata": {"durationMillis": "1800000"}}
    assert files.get_media(fileId=file_id).execute() == video

    token = access_token(meet, http)
    url = f"{meet.base_url}/drive/v3/files/{file_id}"
    part = http.get(url, params={"alt": "media"},
                    headers={**bearer(token), "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == video[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(video)}"
    assert part.headers["content-type"] == "video/mp4"
    beyond = http.get(url, params={"alt": "media"},
                      headers={**bearer(token), "Range": "bytes=99999-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == \
        f"bytes */{len(video)}"
    assert meet.downloads[file_id] == 3 and meet.requests[DRIVE_MEDIA] == 3

    # The Meet-only Drive scope reads what Meet made; a colleague who joined reads it too.
    meet_only = user_clients(meet, tls, http, email=LEE, scopes=[SCOPES["drive.meet.readonly"]])
    assert meet_only.drive.files().get_media(fileId=file_id).execute() == video
    # The external buyer's Google account has no access: Drive says the file is not found.
    meet.add_conference(BUYER[1], "2026-03-17T15:00:00Z", title="Buyer's own")
    outsider = user_clients(meet, tls, http, email=BUYER[1])
    with pytest.raises(HttpError) as hidden:
        outsider.drive.files().get(fileId=file_id).execute()
    assert error_of(hidden.value) == {
        "code": 404, "message": f"File not found: {file_id}.",
        "errors": [{"message": f"File not found: {file_id}.", "domain": "global",
                    "reason": "notFound", "location": "fileId", "locationType": "parameter"}],
        "status": "NOT_FOUND"}

    document = maya.meet.conferenceRecords().transcripts().list(parent=record).execute()[
        "transcripts"][0]["docsDestination"]["document"]
    with pytest.raises(HttpError) as not_binary:
        files.get_media(fileId=document).execute()
    assert error_of(not_binary.value)["errors"][0]["reason"] == "fileNotDownloadable"
    with pytest.raises(HttpError) as not_a_doc:
        files.export(fileId=file_id, mimeType="text/plain").execute()
    assert error_of(not_a_doc.value)["errors"][0]["reason"] == "fileNotExportable"
    with pytest.raises(HttpError) as bad_fields:
        files.get(fileId=file_id, fields="id,nmae").execute()
    assert bad_fields.value.resp.status == 400
    assert error_of(bad_fields.value)["message"] == "Invalid field selection nmae"


def test_calendar_events_carry_the_meet_link_and_external_attendees(meet, tls, http):
    record = meet.add_conference(MAYA, "2026-03-18T15:00:00Z", title="Pricing review",
                                 duration_s=2700, participants=[("Lee Park", LEE), BUYER],
                                 external_attendees=[BUYER, PROSPECT])
    meet.add_conference(MAYA, "2026-03-25T15:00:00Z", title="Next week")
    maya = user_clients(meet, tls, http)
    events = maya.calendar.events()
    listed = events.list(calendarId="primary", timeMin="2026-03-18T00:00:00Z",
                         timeMax="2026-03-19T00:00:00Z", singleEvents=True,
                         orderBy="startTime").execute()
    assert listed["kind"] == "calendar#events" and listed["summary"] == MAYA
    assert listed["timeZone"] == "UTC" and listed["accessRole"] == "owner"
    [event] = listed["items"]
    space = maya.meet.spaces().get(
        name=maya.meet.conferenceRecords().get(name=record).execute()["space"]).execute()
    assert event["summary"] == "Pricing review" and event["kind"] == "calendar#event"
    assert event["start"] == {"dateTime": "2026-03-18T15:00:00Z", "timeZone": "UTC"}
    assert event["end"] == {"dateTime": "2026-03-18T15:45:00Z", "timeZone": "UTC"}
    assert event["organizer"] == {"email": MAYA, "self": True}
    assert event["hangoutLink"] == space["meetingUri"]
    assert event["conferenceData"]["conferenceId"] == space["meetingCode"]
    assert event["conferenceData"]["conferenceSolution"]["key"] == {"type": "hangoutsMeet"}
    assert event["conferenceData"]["entryPoints"][0]["entryPointType"] == "video"
    assert event["conferenceData"]["entryPoints"][0]["uri"] == space["meetingUri"]
    assert event["iCalUID"] == f"{event['id']}@google.com" and event["status"] == "confirmed"
    assert event["attendees"] == [
        {"email": MAYA, "displayName": "Maya Chen", "organizer": True, "self": True,
         "responseStatus": "accepted"},
        {"email": LEE, "displayName": "Lee Park", "responseStatus": "accepted"},
        {"email": BUYER[1], "displayName": BUYER[0], "responseStatus": "accepted"},
        {"email": PROSPECT[1], "displayName": PROSPECT[0], "responseStatus": "needsAction"}]
    assert event["created"].endswith("Z") and re.search(r"\.\d{3}Z$", event["updated"])

    lee = user_clients(meet, tls, http, email=LEE)
    [on_lee] = lee.calendar.events().list(calendarId=LEE, q="pricing").execute()["items"]
    assert on_lee["id"] == event["id"] and on_lee["organizer"] == {"email": MAYA}
    assert next(a for a in on_lee["attendees"] if a["email"] == LEE)["self"] is True
    assert lee.calendar.events().list(calendarId="primary", q="nothing-like-it").execute()[
        "items"] == []
    everything, pages = all_pages(events, "list", "items", calendarId="primary", maxResults=1)
    assert len(everything) == 2 and pages == 2
    with pytest.raises(HttpError) as ordering:
        events.list(calendarId="primary", orderBy="startTime").execute()
    assert error_of(ordering.value)["message"] == ("The requested ordering is not available "
                                                   "for the particular query.")
    with pytest.raises(HttpError) as elsewhere:
        events.list(calendarId=LEE).execute()
    assert elsewhere.value.resp.status == 404
    assert error_of(elsewhere.value)["errors"][0]["reason"] == "notFound"


def test_conference_records_expire_thirty_days_after_the_end(meet, tls, http):
    record = meet.add_conference(MAYA, NOW - timedelta(days=1), recording=b"mp4" * 10,
                                 transcript=[("Maya Chen", 0, 1, "Hello")])
    maya = user_clients(meet, tls, http)
    records = maya.meet.conferenceRecords()
    got = records.get(name=record).execute()
    assert got["expireTime"] == proto(NOW - timedelta(days=1) + timedelta(minutes=30, days=30))
    file_id = records.recordings().list(parent=record).execute()["recordings"][0][
        "driveDestination"]["file"]
    meet.advance(29 * 86400)
    assert records.get(name=record).execute() == got
    meet.advance(86400 + 1800)
    assert records.list().execute() == {}
    with pytest.raises(HttpError) as gone:
        records.get(name=record).execute()
    assert error_of(gone.value)["status"] == "NOT_FOUND"
    with pytest.raises(HttpError):
        records.transcripts().list(parent=record).execute()
    # The files Meet made live on in the organizer's Drive.
    assert maya.drive.files().get_media(fileId=file_id).execute() == b"mp4" * 10


# ------------------------------------------------------------------- Workspace Events


def subscription_body(target: str, *types: str, **extra) -> dict:
    return {"targetResource": target, "eventTypes": list(types or (TRANSCRIPT_READY,)),
            "notificationEndpoint": {"pubsubTopic": TOPIC}, **extra}


def user_target(meet, email=MAYA) -> str:
    return f"//cloudidentity.googleapis.com/users/{meet.user_id(email)}"


def test_subscriptions_create_get_list_patch_delete_and_reactivate(meet, tls, http):
    record = meet.add_conference(MAYA, "2026-03-18T15:00:00Z")
    maya = user_clients(meet, tls, http)
    subs = maya.events.subscriptions()
    made = subs.create(body=subscription_body(user_target(meet), TRANSCRIPT_READY,
                                              RECORDING_READY, ttl="0s")).execute()
    assert made["done"] is True and made["name"].startswith("operations/")
    assert made["metadata"] == {"@type": "type.googleapis.com/google.apps.events."
                                         "subscriptions.v1.CreateSubscriptionMetadata"}
    sub = made["response"]
    assert sub["@type"] == "type.googleapis.com/google.apps.events.subscriptions.v1.Subscription"
    assert re.fullmatch(r"subscriptions/cloudidentity-user-[\w-]+", sub["name"])
    assert sub["state"] == "ACTIVE" and sub["targetResource"] == user_target(meet)
    assert sub["authority"] == f"users/{meet.user_id(MAYA)}"
    assert sub["expireTime"] == "2026-03-27T12:00:00Z" and "ttl" not in sub
    assert sub["notificationEndpoint"] == {"pubsubTopic": TOPIC}
    assert maya.events.operations().get(name=made["name"]).execute() == made

    with pytest.raises(HttpError) as twice:
        subs.create(body=subscription_body(user_target(meet), RECORDING_READY)).execute()
    conflict = error_of(twice.value)
    assert twice.value.resp.status == 409 and conflict["status"] == "ALREADY_EXISTS"
    assert conflict["details"][0]["metadata"] == {"current_subscription": sub["name"]}

    space = maya.meet.conferenceRecords().get(name=record).execute()["space"]
    space_target = f"//meet.googleapis.com/{space}"
    short = subs.create(body=subscription_body(space_target, ttl="3600s")).execute()["response"]
    assert short["expireTime"] == "2026-03-20T13:00:00Z"

    def refused(body: dict, status: int = 400) -> dict:
        with pytest.raises(HttpError) as exc:
            subs.create(body=body).execute()
        assert exc.value.resp.status == status, exc.value.content
        return error_of(exc.value)

    other = "//meet.googleapis.com/spaces/unknownSpace1"
    assert refused(subscription_body(user_target(meet), "google.workspace.meet.nope"))[
        "status"] == "INVALID_ARGUMENT"
    assert "Invalid target resource" in refused(subscription_body(
        "//chat.googleapis.com/spaces/AAAA"))["message"]
    assert refused(subscription_body(space_target, ttl="691200s"))["status"] == \
        "INVALID_ARGUMENT"
    assert refused(subscription_body(space_target, payloadOptions={"includeResource": True}))[
        "status"] == "INVALID_ARGUMENT"
    assert refused(dict(subscription_body(space_target),
                        notificationEndpoint={"pubsubTopic": "meet-events"}))["status"] == \
        "INVALID_ARGUMENT"
    assert refused(subscription_body(other), 404)["status"] == "NOT_FOUND"
    assert refused(subscription_body(user_target(meet, LEE)), 403)["status"] == \
        "PERMISSION_DENIED"
    preview = subs.create(body=subscription_body(user_target(meet, MAYA)),
                          validateOnly=True)
    with pytest.raises(HttpError):    # Maya's user target exists: even a preview conflicts
        preview.execute()

    with pytest.raises(HttpError) as no_filter:
        subs.list().execute()
    assert no_filter.value.resp.status == 400
    assert {s["name"] for s in subs.list(filter=f'event_types:"{TRANSCRIPT_READY}"').execute()[
        "subscriptions"]} == {sub["name"], short["name"]}
    narrowed = subs.list(filter=f'event_types:"{RECORDING_READY}" OR event_types:"x" AND '
                                f'target_resource="{user_target(meet)}"').execute()
    assert [s["name"] for s in narrowed["subscriptions"]] == [sub["name"]]
    listed, pages = all_pages(subs, "list", "subscriptions", pageSize=1,
                              filter=f'event_types:"{TRANSCRIPT_READY}"')
    assert len(listed) == 2 and pages == 2

    patched = subs.patch(name=short["name"], updateMask="ttl", body={"ttl": "86400s"}).execute()
    assert patched["response"]["expireTime"] == "2026-03-21T12:00:00Z"
    assert patched["metadata"]["@type"].endswith("UpdateSubscriptionMetadata")
    with pytest.raises(HttpError) as immutable:
        subs.patch(name=short["name"], updateMask="target_resource",
                   body={"targetResource": user_target(meet)}).execute()
    assert immutable.value.resp.status == 400

    with pytest.raises(HttpError) as active:
        subs.reactivate(name=sub["name"], body={}).execute()
    assert error_of(active.value)["status"] == "FAILED_PRECONDITION"
    meet.lifecycle_event(sub["name"], "suspended")
    suspended = subs.get(name=sub["name"]).execute()
    assert suspended["state"] == "SUSPENDED"
    assert suspended["suspensionReason"] == "USER_AUTHORIZATION_FAILURE"
    back = subs.reactivate(name=sub["name"], body={}).execute()["response"]
    assert back["state"] == "ACTIVE" and "suspensionReason" not in back

    with pytest.raises(HttpError) as stale_etag:
        subs.delete(name=short["name"], etag="not-the-etag").execute()
    assert stale_etag.value.resp.status == 409
    assert error_of(stale_etag.value)["status"] == "ABORTED"
    assert subs.delete(name=short["name"], validateOnly=True).execute()["done"] is True
    current = subs.get(name=short["name"]).execute()
    deleted = subs.delete(name=short["name"], etag=current["etag"]).execute()
    assert deleted["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    with pytest.raises(HttpError) as gone:
        subs.get(name=short["name"]).execute()
    assert gone.value.resp.status == 404
    assert subs.delete(name=short["name"], allowMissing=True).execute()["done"] is True

    # Another user does not see Maya's subscriptions; a Drive-only token may not subscribe.
    lee = user_clients(meet, tls, http, email=LEE)
    with pytest.raises(HttpError) as hidden:
        lee.events.subscriptions().get(name=sub["name"]).execute()
    assert hidden.value.resp.status == 404
    drive_only = user_clients(meet, tls, http, email=LEE, scopes=[SCOPES["drive.readonly"]],
                              include_granted=False)
    with pytest.raises(HttpError) as scope:
        drive_only.events.subscriptions().create(
            body=subscription_body(user_target(meet, LEE))).execute()
    assert error_of(scope.value)["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


class Receiver:
    """A Pub/Sub push endpoint on loopback HTTPS: records what it is sent; fails on demand."""

    def __init__(self, tls):
        from fastapi import FastAPI, Request
        from fastapi.responses import Response

        self.mode = "ok"
        self.received: list[tuple[dict, dict]] = []
        app = FastAPI()

        @app.post("/push")
        async def push(request: Request):
            if self.mode == "fail":
                return Response(status_code=500)
            self.received.append((dict(request.headers), await request.json()))
            return Response(status_code=204)

        self.running = serve(app, tls)
        self.url = f"{self.running.url}/push"

    def events(self) -> list[tuple[dict, dict]]:
        """(attributes, decoded data) of everything received."""
        return [(body["message"]["attributes"],
                 json.loads(base64.b64decode(body["message"]["data"])))
                for _, body in self.received]


@pytest.fixture
def receiver(tls):
    made = Receiver(tls)
    yield made
    made.running.stop()


AUDIENCE = "https://coachloop.example/webhooks/google-meet"


def test_push_delivery_with_a_verifiable_oidc_token_and_redelivery(meet, tls, http,
                                                                    receiver):
    maya = user_clients(meet, tls, http)
    meet.configure_push(TOPIC, receiver.url, audience=AUDIENCE)
    sub = maya.events.subscriptions().create(body=subscription_body(
        user_target(meet), TRANSCRIPT_READY, RECORDING_READY)).execute()["response"]
    record = meet.add_conference(MAYA, "2026-03-19T15:00:00Z", recording=b"mp4",
                                 transcript=[("Maya Chen", 0, 1, "Hello")])
    assert meet.pending_events() == 2
    results = meet.deliver_events()
    assert [status for status, _ in results] == [204, 204] and meet.pending_events() == 0
    headers, body = receiver.received[0]
    assert body["subscription"] == "projects/coachloop-sandbox/subscriptions/coachloop-push"
    message = body["message"]
    assert message["messageId"] == message["message_id"] == results[0][1]
    assert message["publishTime"] == message["publish_time"]
    attributes, data = receiver.events()[0]
    transcript = maya.meet.conferenceRecords().transcripts().list(parent=record).execute()[
        "transcripts"][0]["name"]
    assert data == {"transcript": {"name": transcript}}
    assert receiver.events()[1][1] == {"recording": {"name": maya.meet.conferenceRecords()
                                                     .recordings().list(parent=record)
                                                     .execute()["recordings"][0]["name"]}}
    assert attributes == {"ce-datacontenttype": "application/json",
                          "ce-id": attributes["ce-id"],
                          "ce-source": f"//workspaceevents.googleapis.com/{sub['name']}",
                          "ce-specversion": "1.0", "ce-subject": user_target(meet),
                          "ce-time": "2026-03-19T15:30:00Z", "ce-type": TRANSCRIPT_READY}

    # The push's OIDC token verifies against the JWKS, with google-auth and with PyJWT.
    token = headers["authorization"].removeprefix("Bearer ")
    certs = f"{meet.base_url}/oauth2/v3/certs"
    claims = id_token.verify_token(token, auth_request(tls), audience=AUDIENCE,
                                   certs_url=certs)
    assert claims["iss"] == "https://accounts.google.com" and claims["email_verified"] is True
    assert claims["email"] == "coachloop-push@coachloop-sandbox.iam.gserviceaccount.com"
    assert claims["azp"] == claims["sub"] and re.fullmatch(r"\d{21}", claims["sub"])
    assert claims["exp"] - claims["iat"] == 3600
    jwks = jwt.PyJWKClient(certs, ssl_context=ssl.create_default_context(
        cafile=str(tls.ca_path)))
    assert jwt.get_unverified_header(token)["kid"] in {k.key_id for k in jwks.get_signing_keys()}

    # A failed push stays queued and comes again with the same messageId.
    meet.add_conference(MAYA, "2026-03-19T17:00:00Z", recording=b"mp4")
    receiver.mode = "fail"
    [(status, message_id)] = meet.deliver_events()
    assert status == 500 and meet.pending_events() == 1
    receiver.mode = "ok"
    assert meet.deliver_events() == [(204, message_id)]
    assert receiver.received[-1][1]["message"]["messageId"] == message_id

    # The delay: nothing until the clock passes the file's generation.
    meet.add_conference(MAYA, NOW - timedelta(minutes=31), recording=b"mp4",
                        transcript_delay_s=300)
    assert meet.deliver_events() == []
    meet.advance(300)
    assert [s for s, _ in meet.deliver_events()] == [204]

    # A subscription made after the fact does not hear of it; no push config, no delivery.
    meet.add_conference(LEE, "2026-03-19T10:00:00Z", recording=b"mp4")
    lee = user_clients(meet, tls, http, email=LEE)
    lee.events.subscriptions().create(body=dict(subscription_body(
        user_target(meet, LEE), RECORDING_READY),
        notificationEndpoint={"pubsubTopic": "projects/coachloop-sandbox/topics/other"})
    ).execute()
    assert meet.pending_events() == 0
    meet.add_conference(LEE, NOW - timedelta(minutes=30), recording=b"mp4")
    assert meet.pending_events() == 1 and meet.deliver_events() == []

    # Forged tokens fail verification.
    good = meet.push_token(AUDIENCE)
    assert jwt.decode(good, jwks.get_signing_key_from_jwt(good).key, algorithms=["RS256"],
                      audience=AUDIENCE)["iss"] == "https://accounts.google.com"
    for forged, error in ((meet.push_token(AUDIENCE, expired=True), jwt.ExpiredSignatureError),
                          (meet.push_token(AUDIENCE, foreign_key=True),
                           jwt.InvalidSignatureError),
                          (meet.push_token("https://elsewhere.example"), jwt.InvalidAudienceError)):
        with pytest.raises(error):
            jwt.decode(forged, jwks.get_signing_key_from_jwt(forged).key,
                       algorithms=["RS256"], audience=AUDIENCE)
    foreign = meet.push_token(AUDIENCE, issuer="https://evil.example")
    assert jwt.decode(foreign, jwks.get_signing_key_from_jwt(foreign).key, algorithms=["RS256"],
                      audience=AUDIENCE)["iss"] == "https://evil.example"

    # A rotated key joins the JWKS; tokens signed before still verify.
    meet.rotate_signing_key()
    fresh_jwks = http.get(certs).json()["keys"]
    assert len(fresh_jwks) == 2
    rotated = meet.push_token(AUDIENCE)
    assert jwt.get_unverified_header(rotated)["kid"] == fresh_jwks[0]["kid"]
    for old_or_new in (good, rotated):
        id_token.verify_token(old_or_new, auth_request(tls), audience=AUDIENCE,
                              certs_url=certs)

    # An endpoint nobody listens on: status 0, the message waits.
    meet.configure_push(TOPIC, "https://127.0.0.1:9/push", audience=AUDIENCE)
    meet.add_conference(MAYA, NOW - timedelta(minutes=30), recording=b"mp4")
    assert [s for s, _ in meet.deliver_events()] == [0]
    assert meet.pending_events() == 2      # and Lee's, on a topic without push, still waits


def test_lifecycle_events_suspension_and_expiry(meet, tls, http, receiver):
    maya = user_clients(meet, tls, http)
    meet.configure_push(TOPIC, receiver.url)
    subs = maya.events.subscriptions()
    sub = subs.create(body=subscription_body(user_target(meet), RECORDING_READY,
                                             ttl="46800s")).execute()["response"]

    meet.lifecycle_event(sub["name"], "suspended")
    meet.add_conference(MAYA, NOW - timedelta(minutes=40), recording=b"mp4")
    meet.deliver_events()
    [(attributes, data)] = receiver.events()
    assert attributes["ce-type"] == "google.workspace.events.subscription.v1.suspended"
    assert attributes["ce-subject"] == attributes["ce-source"] == \
        f"//workspaceevents.googleapis.com/{sub['name']}"
    assert data["subscription"]["name"] == sub["name"]
    assert data["subscription"]["state"] == "SUSPENDED"
    subs.reactivate(name=sub["name"], body={}).execute()
    meet.add_conference(MAYA, NOW - timedelta(minutes=35), recording=b"mp4")
    meet.deliver_events()
    assert receiver.events()[-1][0]["ce-type"] == RECORDING_READY

    # 13 hours to live: a reminder 12 h before, another 1 h before, then `expired`.
    meet.advance(1.5 * 3600)
    meet.deliver_events()
    assert receiver.events()[-1][0]["ce-type"] == \
        "google.workspace.events.subscription.v1.expirationReminder"
    meet.advance(11 * 3600)
    meet.deliver_events()
    assert [a["ce-type"].rsplit(".", 1)[1] for a, _ in receiver.events()[-2:]] == [
        "expirationReminder", "expirationReminder"]
    meet.advance(3600)
    meet.deliver_events()
    assert receiver.events()[-1][0]["ce-type"] == \
        "google.workspace.events.subscription.v1.expired"
    with pytest.raises(HttpError) as gone:
        subs.get(name=sub["name"]).execute()
    assert gone.value.resp.status == 404

    # The user removing the app suspends what they subscribed, with a `suspended` event.
    again = subs.create(body=subscription_body(user_target(meet), RECORDING_READY)).execute()
    meet.revoke_consent(MAYA)
    meet.deliver_events()
    attributes, data = receiver.events()[-1]
    assert attributes["ce-type"].endswith("suspended")
    assert data["subscription"]["suspensionReason"] == "USER_SCOPE_REVOKED"
    assert data["subscription"]["name"] == again["response"]["name"]
    meet.lifecycle_event(again["response"]["name"], "expired")
    meet.deliver_events()
    assert receiver.events()[-1][0]["ce-type"].endswith("expired")
    assert meet.subscriptions() == []


# ------------------------------------------------------------------------ throttling


def test_faults_429_503_500_with_retry_after_and_rate_limits(meet, tls, http):
    meet.add_conference(MAYA, "2026-03-18T15:00:00Z")
    token = access_token(meet, http)
    url = f"{meet.base_url}/v2/conferenceRecords"

    meet.fail_next(CONFERENCE_RECORDS, 429, retry_after=7)
    throttled = http.get(url, headers=bearer(token))
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
    error = throttled.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["message"].startswith("Quota exceeded for quota metric 'Read requests' and "
                                       "limit 'Read requests per minute per user' of service "
                                       "'meet.googleapis.com'")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    meet.fail_next(CONFERENCE_RECORDS, 503, retry_after=3)
    down = http.get(url, headers=bearer(token))
    assert down.status_code == 503 and down.headers["retry-after"] == "3"
    assert down.json()["error"] == {"code": 503, "message": "The service is currently "
                                    "unavailable.", "status": "UNAVAILABLE"}
    meet.fail_next(CONFERENCE_RECORDS, 500)
    broken = http.get(url, headers=bearer(token))
    assert broken.status_code == 500 and broken.json()["error"]["status"] == "INTERNAL"
    assert "retry-after" not in broken.headers
    assert http.get(url, headers=bearer(token)).status_code == 200
    assert meet.requests[CONFERENCE_RECORDS] == 4

    # googleapiclient retries a 503 when asked to.
    maya = user_clients(meet, tls, http)
    meet.fail_next(CONFERENCE_RECORDS, 503)
    assert maya.meet.conferenceRecords().list().execute(num_retries=1)["conferenceRecords"]

    meet.set_rate_limit(CONFERENCE_RECORD, 2)
    name = maya.meet.conferenceRecords().list().execute()["conferenceRecords"][0]["name"]
    codes = [http.get(f"{meet.base_url}/v2/{name}", headers=bearer(token)).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    meet.advance(60)
    assert http.get(f"{meet.base_url}/v2/{name}", headers=bearer(token)).status_code == 200

    meet.fail_next(TOKEN, 503, retry_after=2)
    busy = http.post(f"{meet.base_url}/token", data={"grant_type": "refresh_token"})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    assert busy.json()["error"] == "temporarily_unavailable"
    with pytest.raises(ValueError):
        meet.fail_next("GET /v2/nowhere", 500)


# ------------------------------------------------------------ the discovery documents

# Every method a connector calls, as (api, version, method in the document).
USED_METHODS = [
    ("meet", "v2", "conferenceRecords.list"),
    ("meet", "v2", "conferenceRecords.get"),
    ("meet", "v2", "conferenceRecords.participants.list"),
    ("meet", "v2", "conferenceRecords.participants.get"),
    ("meet", "v2", "conferenceRecords.participants.participantSessions.list"),
    ("meet", "v2", "conferenceRecords.participants.participantSessions.get"),
    ("meet", "v2", "conferenceRecords.transcripts.list"),
    ("meet", "v2", "conferenceRecords.transcripts.get"),
    ("meet", "v2", "conferenceRecords.transcripts.entries.list"),
    ("meet", "v2", "conferenceRecords.transcripts.entries.get"),
    ("meet", "v2", "conferenceRecords.recordings.list"),
    ("meet", "v2", "conferenceRecords.recordings.get"),
    ("meet", "v2", "spaces.get"),
    ("drive", "v3", "files.get"),
    ("drive", "v3", "files.export"),
    ("calendar", "v3", "events.list"),
    ("people", "v1", "people.get"),
    ("admin", "directory_v1", "users.get"),
    ("workspaceevents", "v1", "subscriptions.create"),
    ("workspaceevents", "v1", "subscriptions.get"),
    ("workspaceevents", "v1", "subscriptions.list"),
    ("workspaceevents", "v1", "subscriptions.patch"),
    ("workspaceevents", "v1", "subscriptions.delete"),
    ("workspaceevents", "v1", "subscriptions.reactivate"),
    ("workspaceevents", "v1", "operations.get"),
]

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


def undeclared(api: str, version: str, schema: dict, value, path: str = "$") -> list[str]:
    """Every place where `value` strays from the discovery document's `schema`: a property
    the schema does not declare (following `$ref`, array `items`, `additionalProperties`
    maps, and `@type`-tagged Any values into the schema they name), a JSON type other than
    the declared one, a value outside an enum, an int64 that is not a decimal string, a
    google-datetime that is not RFC 3339 in UTC."""
    schemas = discovery(api, version)["schemas"]
    problems: list[str] = []

    def walk(schema: dict, value, path: str) -> None:
        while "$ref" in schema:
            schema = schemas[schema["$ref"]]
        kind = schema.get("type")
        if kind == "any":
            return
        if kind == "array":
            if not isinstance(value, list):
                problems.append(f"{path}: {type(value).__name__}, not an array")
                return
            for i, item in enumerate(value):
                walk(schema.get("items", {}), item, f"{path}[{i}]")
            return
        if kind == "object" or "properties" in schema:
            if not isinstance(value, dict):
                problems.append(f"{path}: {type(value).__name__}, not an object")
                return
            props, extra = schema.get("properties", {}), schema.get("additionalProperties")
            if "@type" in value and not props and extra is not None:
                named = value["@type"].rsplit(".", 1)[-1]
                if named in schemas:
                    walk(schemas[named], {k: v for k, v in value.items() if k != "@type"},
                         f"{path}<{named}>")
                return
            for key, item in value.items():
                if key in props:
                    walk(props[key], item, f"{path}.{key}")
                elif extra is not None:
                    walk(extra, item, f"{path}.{key}")
                else:
                    problems.append(f"{path}.{key}")
            return
        expected = {"string": str, "boolean": bool, "integer": int,
                    "number": (int, float)}.get(kind)
        if expected is None:
            return
        if not isinstance(value, expected) or (kind in ("integer", "number")
                                               and isinstance(value, bool)):
            problems.append(f"{path}: {value!r} is not {kind}")
            return
        if schema.get("enum") and value not in schema["enum"]:
            problems.append(f"{path}: {value!r} is none of the enum")
        if schema.get("format") in ("int64", "uint64") and not re.fullmatch(r"-?\d+", value):
            problems.append(f"{path}: {value!r} is not an int64 string")
        if schema.get("format") == "google-datetime" and not RFC3339_Z.match(value):
            problems.append(f"{path}: {value!r} is not an RFC 3339 UTC timestamp")

    walk(schema, value, path)
    return problems


def method_of(api: str, version: str, dotted: str) -> dict:
    found = discovery_method(api, version, dotted)
    assert found is not None, f"{api} {version} has no method {dotted}"
    return found


def test_every_method_parameter_and_response_field_is_in_the_discovery_documents(
        meet, tls, http, receiver):
    """The emulator's paths, the query parameters it reads and every field it answers with,
    for every method a connector calls, against Google's discovery documents; each method
    called at least once through the discovery-based client."""
    # Paths: each endpoint key is its document's servicePath + flatPath, with its verb.
    for key, method in METHODS.items():
        doc = method_of(method.api, method.version, method.method)
        verb, path = key.split(" ", 1)
        service_path = discovery(method.api, method.version)["servicePath"]
        assert verb == doc["httpMethod"], key
        flat = doc.get("flatPath", doc["path"])
        assert path.removesuffix("?alt=media") == "/" + service_path + flat, key
    assert set(ENDPOINTS) >= set(METHODS)
    # Parameters: what each handler may read is the method's (or a standard one).
    assert set(DECLARED_PARAMETERS) <= set(USED_METHODS)
    for api, version, dotted in USED_METHODS:
        doc = method_of(api, version, dotted)
        allowed = set(doc.get("parameters", {})) | set(discovery(api, version)["parameters"])
        declared = DECLARED_PARAMETERS.get((api, version, dotted))
        assert declared, f"no handler declared for {api} {dotted}"
        assert declared <= allowed, (dotted, declared - allowed)
    with pytest.raises(AssertionError, match="does not declare"):
        meet_module._Query({}, METHODS[CONFERENCE_RECORDS]).get("orderBy")

    # Responses: a Workspace with everything in it, read by an administrator.
    meet.add_user(PRIYA, "Priya Nair", admin=True)
    record = meet.add_conference(PRIYA, "2026-03-18T15:00:00Z", title="Everything",
                                 participants=[("Maya Chen", MAYA), BUYER],
                                 anonymous=["Guest Visitor"], phone=["+1 415-***-**12"],
                                 external_attendees=[BUYER, PROSPECT], recording=b"\x00" * 99,
                                 transcript=[("Priya Nair", 1, 2, "Welcome."),
                                             ("Sam Buyer", 2.5, 3.75, "Thanks.")])
    meet.add_conference(PRIYA, NOW - timedelta(minutes=5), title="Live now")
    priya = user_clients(meet, tls, http, email=PRIYA)
    records = priya.meet.conferenceRecords()
    calls: list[tuple[tuple, object]] = []

    def call(api: str, version: str, dotted: str, request):
        result = request.execute()
        calls.append(((api, version, dotted), result))
        return result

    meet_v2 = ("meet", "v2")
    first_page = records.list(pageSize=1, filter='start_time>="2026-03-01T00:00:00Z"')
    listed = call(*meet_v2, "conferenceRecords.list", first_page)
    call(*meet_v2, "conferenceRecords.list", records.list_next(first_page, listed))
    got = call(*meet_v2, "conferenceRecords.get", records.get(name=record))
    people = call(*meet_v2, "conferenceRecords.participants.list", records.participants().list(
        parent=record, fields="participants,nextPageToken,totalSize", pageSize=3))
    someone = people["participants"][0]["name"]
    call(*meet_v2, "conferenceRecords.participants.get", records.participants().get(
        name=someone))
    sessions = call(*meet_v2, "conferenceRecords.participants.participantSessions.list",
                    records.participants().participantSessions().list(parent=someone))
    call(*meet_v2, "conferenceRecords.participants.participantSessions.get",
         records.participants().participantSessions().get(
             name=sessions["participantSessions"][0]["name"]))
    transcripts = call(*meet_v2, "conferenceRecords.transcripts.list",
                       records.transcripts().list(parent=record))
    transcript = transcripts["transcripts"][0]
    call(*meet_v2, "conferenceRecords.transcripts.get", records.transcripts().get(
        name=transcript["name"]))
    entries = call(*meet_v2, "conferenceRecords.transcripts.entries.list",
                   records.transcripts().entries().list(parent=transcript["name"], pageSize=1))
    call(*meet_v2, "conferenceRecords.transcripts.entries.get",
         records.transcripts().entries().get(name=entries["transcriptEntries"][0]["name"]))
    recordings = call(*meet_v2, "conferenceRecords.recordings.list",
                      records.recordings().list(parent=record))
    recording = recordings["recordings"][0]
    call(*meet_v2, "conferenceRecords.recordings.get", records.recordings().get(
        name=recording["name"]))
    space = call(*meet_v2, "spaces.get", priya.meet.spaces().get(name=got["space"]))
    call(*meet_v2, "spaces.get", priya.meet.spaces().get(name=f"spaces/{space['meetingCode']}"))
    live = records.list(filter="end_time IS NULL").execute()["conferenceRecords"][0]
    call(*meet_v2, "spaces.get", priya.meet.spaces().get(name=live["space"]))

    files = priya.drive.files()
    file_id = recording["driveDestination"]["file"]
    document = transcript["docsDestination"]["document"]
    call("drive", "v3", "files.get", files.get(fileId=file_id, fields="*"))
    call("drive", "v3", "files.get", files.get(fileId=document, fields="*"))
    call("drive", "v3", "files.get", files.get(fileId=file_id))
    assert call("drive", "v3", "files.get", files.get_media(fileId=file_id)) == b"\x00" * 99
    assert call("drive", "v3", "files.export", files.export(
        fileId=document, mimeType="text/plain")).startswith(b"\xef\xbb\xbf")
    call("calendar", "v3", "events.list", priya.calendar.events().list(
        calendarId="primary", timeMin="2026-03-01T00:00:00Z", singleEvents=True,
        orderBy="startTime", maxResults=1))
    for person in (MAYA, BUYER[1]):
        call("people", "v1", "people.get", priya.people.people().get(
            resourceName=f"people/{meet.user_id(person)}",
            personFields="names,emailAddresses,metadata"))
    call("admin", "directory_v1", "users.get", priya.admin.users().get(userKey=MAYA))
    call("admin", "directory_v1", "users.get", priya.admin.users().get(
        userKey=MAYA, viewType="domain_public"))

    events, ev = priya.events.subscriptions(), ("workspaceevents", "v1")
    made = call(*ev, "subscriptions.create", events.create(body=subscription_body(
        f"//meet.googleapis.com/{got['space']}", TRANSCRIPT_READY, RECORDING_READY)))
    name = made["response"]["name"]
    call(*ev, "subscriptions.create", events.create(validateOnly=True, body=subscription_body(
        user_target(meet, PRIYA))))
    call(*ev, "subscriptions.get", events.get(name=name))
    call(*ev, "subscriptions.list", events.list(filter=f'event_types:"{TRANSCRIPT_READY}"'))
    call(*ev, "subscriptions.patch", events.patch(name=name, updateMask="expire_time",
                                                  body={"expireTime": "2026-03-22T00:00:00Z"}))
    meet.lifecycle_event(name, "suspended", reason="ENDPOINT_PERMISSION_DENIED")
    call(*ev, "subscriptions.get", events.get(name=name))
    call(*ev, "subscriptions.reactivate", events.reactivate(name=name, body={}))
    call(*ev, "operations.get", priya.events.operations().get(name=made["name"]))
    call(*ev, "subscriptions.delete", events.delete(name=name))

    for (api, version, dotted), result in calls:
        if isinstance(result, bytes):
            continue
        response = method_of(api, version, dotted)["response"]
        assert undeclared(api, version, response, result) == [], (dotted, result)
    assert {m for m, _ in calls} == set(USED_METHODS)

    # The check itself can fail: invented fields, wrong types, enums and timestamps.
    doctored = copy.deepcopy(got)
    doctored["transcriptUrl"] = "https://example.com/t"
    assert undeclared("meet", "v2", {"$ref": "ConferenceRecord"}, doctored) == [
        "$.transcriptUrl"]
    bad_people = copy.deepcopy(people)
    signed = next(p for p in bad_people["participants"] if "signedinUser" in p)
    signed["signedinUser"]["email"] = MAYA
    bad_people["totalSize"] = "5"
    assert undeclared("meet", "v2", {"$ref": "ListParticipantsResponse"}, bad_people) == [
        f"$.participants[{bad_people['participants'].index(signed)}].signedinUser.email",
        "$.totalSize: '5' is not integer"]
    bad_transcript = dict(transcript, state="DONE", startTime="2026-03-18 15:00:00")
    assert undeclared("meet", "v2", {"$ref": "Transcript"}, bad_transcript) == [
        "$.state: 'DONE' is none of the enum",
        "$.startTime: '2026-03-18 15:00:00' is not an RFC 3339 UTC timestamp"]
    bad_operation = copy.deepcopy(made)
    bad_operation["response"]["subscriptionId"] = "x"
    assert undeclared("workspaceevents", "v1", {"$ref": "Operation"}, bad_operation) == [
        "$.response<Subscription>.subscriptionId"]
    bad_file = {"kind": "drive#file", "id": file_id, "size": 99, "downloadUrl": "x"}
    assert undeclared("drive", "v3", {"$ref": "File"}, bad_file) == [
        "$.size: 99 is not string", "$.downloadUrl"]


# ------------------------------------------------------------------------------ demo


def test_demo_seed_is_stable_across_runs_and_reads_like_meet(tls, http):
    stems = meet_demo_calls(DEMO_CALLS)
    assert stems == frozenset({"demo-call-08", "demo-call-10"})

    def seeded(stable: bool) -> tuple[MeetSandbox, dict]:
        sandbox = MeetSandbox(clock=EpochClock(datetime(2026, 10, 25, tzinfo=UTC)),
                              stable_ids=stable)
        return sandbox, demo_seed(sandbox, DEMO_CALLS, stems)

    first, names = seeded(True)
    second, again = seeded(True)
    assert names == again and set(names) == {"demo-call-08", "demo-call-10"}
    assert first.user_id(MAYA) == second.user_id(MAYA)
    assert [(c.space.code, c.event_id, [p.id for p in c.participants],
             [a.file.id for a in c.artifacts]) for c in first._conferences.values()] == \
        [(c.space.code, c.event_id, [p.id for p in c.participants],
          [a.file.id for a in c.artifacts]) for c in second._conferences.values()]
    assert seeded(False)[1] != names

    running = first.start(tls)
    try:
        jordan = user_clients(first, tls, http, email="jordan.brooks@acme-analytics.example")
        record = names["demo-call-08"]
        got = jordan.meet.conferenceRecords().get(name=record).execute()
        assert got["startTime"] == "2026-10-09T19:00:00Z"
        people = jordan.meet.conferenceRecords().participants().list(parent=record).execute()[
            "participants"]
        assert {p["signedinUser"]["displayName"] for p in people} == {
            "Jordan Brooks", "Mike Johnson", "Emily Ross"}
        [transcript] = jordan.meet.conferenceRecords().transcripts().list(
            parent=record).execute()["transcripts"]
        entries, _ = all_pages(jordan.meet.conferenceRecords().transcripts().entries(), "list",
                               "transcriptEntries", parent=transcript["name"], pageSize=100)
        assert len(entries) == (DEMO_CALLS / "demo-call-08.srt").read_text().count("-->")
        [recording] = jordan.meet.conferenceRecords().recordings().list(
            parent=record).execute()["recordings"]
        media = jordan.drive.files().get_media(
            fileId=recording["driveDestination"]["file"]).execute()
        assert media == (DEMO_CALLS / "demo-call-08.ogg").read_bytes()
        [event] = jordan.calendar.events().list(calendarId="primary").execute()["items"]
        assert {a["email"] for a in event["attendees"]} == {
            "jordan.brooks@acme-analytics.example", "mike.johnson@cedarlogistics.example",
            "emily.ross@cedarlogistics.example"}
    finally:
        running.stop()
