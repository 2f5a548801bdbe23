"""Microsoft Teams through the Graph emulator over HTTPS: Entra admin consent and app-only
tokens from msal (secret and certificate), the source (transcripts with voice tags, guests
from the calendar, recordings when there is no transcript, the access policy and a tenant
that turned transcripts off), and change-notification subscriptions over their whole life
against the API served on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlmodel import select

from core.settings import get_settings
from tests.conftest import DEMO_CALLS, bearer

REP = "maya.chen@acme-analytics.example"
OTHER_REP = "liam.ortiz@acme-analytics.example"
GUEST = ("Sam Buyer", "sam@northwind.example")
VTT = ("WEBVTT\n\n00:00:00.000 --> 00:00:04.000\n<v Maya Chen>What does the no-show rate cost "
       "you today?</v>\n\n00:00:04.000 --> 00:00:09.000\n<v Sam Buyer>About nine hundred "
       "thousand dollars a year.</v>\n")


@pytest.fixture
def graph(sqlite_database, tls, monkeypatch):
    """The Graph emulator on loopback, coachloop's Teams settings pointing at it, and an org
    whose roster has two reps."""
    from core.db import session_scope
    from core.domain import TeamMember
    from core.ingest import apply_team, ensure_org
    from sandbox.graph import GraphSandbox

    box = GraphSandbox()
    running = box.start(tls)
    env = {"COACHLOOP_TEAMS__CLIENT_ID": box.client_id,
           "COACHLOOP_TEAMS__CLIENT_SECRET": box.client_secret,
           "COACHLOOP_TEAMS__AUTHORITY_BASE": running.url,
           "COACHLOOP_TEAMS__GRAPH_BASE": f"{running.url}/v1.0",
           "COACHLOOP_CA_BUNDLE": str(tls.ca_path),
           "COACHLOOP_PUBLIC_URL": "https://coachloop.example",
           "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with session_scope() as session:
        org = ensure_org(session, "Acme", ["acme-analytics.example"])
        apply_team(session, org, [TeamMember("Maya Chen", REP), TeamMember("Liam Ortiz",
                                                                           OTHER_REP)])
        org_id = org.id
    box.add_user(REP, "Maya Chen")
    box.add_user(OTHER_REP, "Liam Ortiz")
    yield box, running, org_id
    running.stop()


def connect(org_id: int):
    from connectors.oauth_apps import connect_following_consent

    return connect_following_consent("teams", org_id, get_settings())


def yesterday(hour: int = 15) -> datetime:
    return (datetime.now(UTC) - timedelta(days=1)).replace(hour=hour, minute=0, second=0,
                                                           microsecond=0)


# ------------------------------------------------------------------ consent ----


def test_admin_consent_connects_the_tenant_with_app_only_tokens(graph, tls):
    from api import create_app
    from core.connections import stored_tokens
    from core.crypto import cipher_from_settings
    from core.oauth import tls_verify

    box, running, org_id = graph
    client = TestClient(create_app(), raise_server_exceptions=False, headers=bearer("admin"))
    start = client.get("/connect/teams", follow_redirects=False)
    assert start.status_code == 302
    asked = urlparse(start.headers["location"])
    query = parse_qs(asked.query)
    assert asked.path == "/organizations/v2.0/adminconsent"
    assert query["scope"] == ["https://graph.microsoft.com/.default"]
    assert "code_challenge" not in query and "response_type" not in query
    consent = httpx.get(start.headers["location"], verify=tls_verify(str(tls.ca_path)))
    back = urlparse(consent.headers["location"])
    assert back.path == "/connect/teams/callback"
    assert parse_qs(back.query)["tenant"] == [box.tenant_id]
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 200, done.text
    connection = done.json()["connection"]
    assert connection["status"] == "active" and connection["auth_kind"] == "app_only"
    assert connection["account_ref"] == box.tenant_id
    assert "OnlineMeetingTranscript.Read.All" in connection["scopes"]
    tokens = stored_tokens(connection["id"], cipher_from_settings(get_settings()))
    assert tokens.refresh_token is None and tokens.access_token not in done.text
    # The state is single-use, and a callback without a tenant is refused.
    assert client.get(f"{back.path}?{back.query}").status_code == 422
    state = parse_qs(back.query)["state"][0]
    assert client.get(f"/connect/teams/callback?state={state}").status_code == 422
    # Declined consent comes back as an error, said plainly.
    box.decline_consent(True)
    again = client.get("/connect/teams", follow_redirects=False).headers["location"]
    declined = httpx.get(again, verify=tls_verify(str(tls.ca_path))).headers["location"]
    refused = client.get(urlparse(declined).path + "?" + urlparse(declined).query)
    assert refused.status_code == 422 and "declined" in refused.text.lower()


def test_a_tenant_is_one_orgs_and_a_pinned_tenant_is_the_only_one(graph, monkeypatch):
    from core.db import session_scope
    from core.errors import InputError
    from core.ingest import ensure_org

    box, running, org_id = graph
    assert connect(org_id).account_ref == box.tenant_id
    with session_scope() as session:
        other = ensure_org(session, "Globex", ["globex.example"]).id
    # The callback's tenant is not signed: a second org cannot claim a connected tenant.
    with pytest.raises(InputError, match="another organization"):
        connect(other)
    # Pinned to one tenant: a callback naming another (tampered with) is refused.
    from connectors.oauth_apps import connect_following_consent, start_connect

    monkeypatch.setenv("COACHLOOP_TEAMS__TENANT", "11111111-2222-3333-4444-555555555555")
    get_settings.cache_clear()
    consent = urlparse(start_connect("teams", org_id, get_settings()))
    assert consent.path.startswith("/11111111-2222-3333-4444-555555555555/")
    state = parse_qs(consent.query)["state"][0]
    tampered = ("https://coachloop.example/connect/teams/callback?admin_consent=True&tenant="
                f"{box.tenant_id}&state={state}")
    with pytest.raises(InputError, match="COACHLOOP_TEAMS__TENANT"):
        connect_following_consent("teams", org_id, get_settings(), tampered)


def test_a_certificate_instead_of_a_secret(graph, tmp_path, monkeypatch):
    """msal signs a client assertion with the certificate's key; the emulator checks it
    against the certificate registered on the app."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    box, running, org_id = graph
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coachloop")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    box.register_certificate(cert_pem)
    pem = tmp_path / "coachloop.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert_pem)
    monkeypatch.delenv("COACHLOOP_TEAMS__CLIENT_SECRET")
    monkeypatch.setenv("COACHLOOP_TEAMS__CLIENT_CERTIFICATE", str(pem))
    get_settings.cache_clear()
    assert connect(org_id).status == "active"


def test_a_wrong_secret_and_a_removed_app_are_said_plainly(graph, monkeypatch):
    from core.oauth import AuthRefused

    box, running, org_id = graph
    monkeypatch.setenv("COACHLOOP_TEAMS__CLIENT_SECRET", "not-the-secret")
    get_settings.cache_clear()
    with pytest.raises(AuthRefused, match="AADSTS7000215") as caught:
        connect(org_id)
    assert "not-the-secret" not in str(caught.value)


# ------------------------------------------------------------------- source ----


def listed(org_id: int, since: datetime | None = None) -> list:
    from connectors.teams.source import TeamsSource

    source = TeamsSource.for_org(org_id)
    try:
        return list(source.list_meetings(since))
    finally:
        source.close()


def test_a_sync_reads_transcripts_with_speakers_guests_and_recordings(graph):
    from connectors.base import SourceProblem
    from core.transcripts import load_platform_transcript

    box, running, org_id = graph
    box.add_meeting("Discovery - Northwind", yesterday(15), REP, external_attendees=[GUEST],
                    transcript_vtt=VTT)
    audio = (DEMO_CALLS / "demo-call-01.ogg").read_bytes()
    box.add_meeting("Demo - Contoso", yesterday(17), OTHER_REP,
                    attendees=[("Maya Chen", REP)], recording=audio,
                    recording_type="video/mp4", duration_s=60)
    connect(org_id)
    batches = box.requests["POST /v1.0/$batch"]
    found = listed(org_id)
    assert not [p for p in found if isinstance(p, SourceProblem)], found
    assert box.requests["POST /v1.0/$batch"] == batches + 1  # both reps found in one request
    by_title = {r.title: r for r in found}
    discovery, demo = by_title["Discovery - Northwind"], by_title["Demo - Contoso"]
    utterances = load_platform_transcript(discovery.transcript_path)
    assert [u.speaker_label for u in utterances] == ["Maya Chen", "Sam Buyer"]
    emails = {p.email for p in discovery.participants}
    assert {REP, GUEST[1]} <= emails  # the guest comes from the calendar invite
    assert demo.transcript_path is None and len(demo.tracks) == 1
    assert Path(demo.tracks[0].path).read_bytes() == audio
    assert {p.email for p in demo.participants} >= {OTHER_REP, REP}
    # Each rep's cursor moved: the next sync reads nothing new before lookback.
    assert {r.external_id for r in listed(org_id)} == {discovery.external_id, demo.external_id}


def test_a_rep_without_an_access_policy_is_named_and_the_others_are_read(graph):
    from connectors.base import SourceProblem

    box, running, org_id = graph
    box.add_meeting("Mine", yesterday(10), REP, transcript_vtt=VTT)
    box.add_meeting("Theirs", yesterday(11), OTHER_REP, transcript_vtt=VTT)
    connect(org_id)
    box.set_access_policy({OTHER_REP})
    found = listed(org_id)
    problems = [p for p in found if isinstance(p, SourceProblem)]
    assert len(problems) == 1 and REP in problems[0].origin
    assert "Grant-CsApplicationAccessPolicy" in problems[0].message
    assert [r.title for r in found if not isinstance(r, SourceProblem)] == ["Theirs"]


def test_a_tenant_that_turned_transcripts_off_is_read_from_its_recordings(graph):
    box, running, org_id = graph
    audio = (DEMO_CALLS / "demo-call-02.ogg").read_bytes()
    box.add_meeting("Both", yesterday(9), REP, transcript_vtt=VTT, recording=audio)
    connect(org_id)
    box.disable_transcript_access()
    [record] = listed(org_id)
    assert record.transcript_path is None and len(record.tracks) == 1


def test_throttling_carries_graphs_wait_and_holds_the_cursor(graph):
    from connectors.teams.source import TeamsSource
    from core.connections import read_cursor
    from core.errors import TransientError

    box, running, org_id = graph
    box.add_meeting("Later", yesterday(12), REP, transcript_vtt=VTT)
    info = connect(org_id)
    box.fail_next("GET /v1.0/users/{userId}/onlineMeetings/getAllTranscripts", 429,
                  retry_after=42)
    with pytest.raises(TransientError) as caught:
        listed(org_id)
    assert caught.value.retry_after == 42
    assert read_cursor(info.id, f"meetings:{box.user_id(REP)}") is None
    assert [r.title for r in listed(org_id)] == ["Later"]
    assert TeamsSource.name == "teams"


def test_poll_ingests_once(graph):
    from connectors.teams import poll
    from core.db import session_scope
    from core.models import Meeting

    box, running, org_id = graph
    box.add_meeting("Discovery - Northwind", yesterday(15), REP, external_attendees=[GUEST],
                    transcript_vtt=VTT)
    connect(org_id)
    assert len(poll(org_id)) == 1
    assert poll(org_id) == []  # unchanged: nothing to transcribe again
    assert list(box.content_calls.values()) == [1]  # Microsoft bills each download: once
    with session_scope() as session:
        [meeting] = session.exec(select(Meeting)).all()
        assert meeting.source == "teams" and meeting.title == "Discovery - Northwind"


# ------------------------------------------------------------ subscriptions ----


@pytest.fixture
def served(graph, tls, monkeypatch):
    """The API over HTTPS on loopback, as the public URL Graph notifies."""
    from api import create_app
    from sandbox.server import serve

    api = serve(create_app(), tls)
    monkeypatch.setenv("COACHLOOP_PUBLIC_URL", api.url)
    get_settings.cache_clear()
    yield graph, api
    api.stop()


def held(connection_id: int) -> list:
    from core.db import session_scope
    from core.models import PushSubscription

    with session_scope() as session:
        return [(r.external_id, r.resource.rsplit("/", 1)[-1], r.status) for r in session.exec(
            select(PushSubscription).where(PushSubscription.connection_id == connection_id)
            .order_by(PushSubscription.id)).all()]


def live(connection_id: int) -> dict[str, str]:
    return {what: sub for sub, what, status in held(connection_id) if status == "active"}


def test_subscriptions_are_created_validated_notified_renewed_removed_and_recreated(served):
    from api import wait_for_local_events
    from connectors.teams import poll, probe
    from core.db import session_scope
    from core.models import Meeting, PushSubscription, WebhookEvent
    from core.oauth import tls_verify

    (box, running, org_id), api = served
    info = connect(org_id)
    subscriptions = live(info.id)
    assert set(subscriptions) == {"getAllTranscripts", "getAllRecordings"}
    # Graph validated our URL (notification and lifecycle) before creating each one.
    at_graph = {s["id"]: s for s in box.subscriptions()}
    assert set(at_graph) == set(subscriptions.values())
    assert {s["notificationUrl"] for s in at_graph.values()} == {f"{api.url}/webhooks/teams"}
    assert {s["lifecycleNotificationUrl"] for s in at_graph.values()} == \
        {f"{api.url}/webhooks/teams"}
    assert "transcripts notifications until" in probe(info.id, get_settings())

    # A new transcript is notified, stored once, and becomes a meeting.
    box.add_meeting("Discovery - Northwind", yesterday(15), REP, external_attendees=[GUEST],
                    transcript_vtt=VTT)
    answers = box.deliver_notifications()
    assert [a.status_code for a in answers] == [200], [a.text for a in answers]
    wait_for_local_events()
    with session_scope() as session:
        [event] = session.exec(select(WebhookEvent)).all()
        assert event.error is None, event.error
        assert "clientState" not in event.raw_body  # the subscription's secret is not kept
        [meeting] = session.exec(select(Meeting)).all()
        assert meeting.source == "teams"

    # Renewed when little of its life is left (the poll, from beat).
    with session_scope() as session:
        for row in session.exec(select(PushSubscription)).all():
            row.expires_at = datetime.now(UTC) + timedelta(minutes=30)
            session.add(row)
    patches = box.requests["PATCH /v1.0/subscriptions/{id}"]
    poll(org_id)
    assert box.requests["PATCH /v1.0/subscriptions/{id}"] == patches + 2
    assert live(info.id) == subscriptions

    # Graph removed one: the lifecycle notification recreates it.
    removed = subscriptions["getAllTranscripts"]
    assert box.lifecycle_event(removed, "subscriptionRemoved").status_code == 200
    wait_for_local_events()
    now_live = live(info.id)
    assert now_live["getAllTranscripts"] != removed
    assert now_live["getAllRecordings"] == subscriptions["getAllRecordings"]

    # Reauthorization asked for: reauthorized and renewed.
    reauthorized = box.requests["POST /v1.0/subscriptions/{id}/reauthorize"]
    box.lifecycle_event(now_live["getAllRecordings"], "reauthorizationRequired")
    wait_for_local_events()
    assert box.requests["POST /v1.0/subscriptions/{id}/reauthorize"] == reauthorized + 1
    assert live(info.id)["getAllRecordings"] == now_live["getAllRecordings"]

    # Missed notifications: the reps' meetings are polled.
    listings = box.requests["GET /v1.0/users/{userId}/onlineMeetings/getAllTranscripts"]
    box.lifecycle_event(now_live["getAllTranscripts"], "missed")
    wait_for_local_events()
    assert box.requests["GET /v1.0/users/{userId}/onlineMeetings/getAllTranscripts"] > listings

    # A notification with a guessed clientState is refused and stored nowhere.
    forged = {"value": [{"subscriptionId": now_live["getAllTranscripts"],
                         "clientState": "guessed", "changeType": "created",
                         "tenantId": box.tenant_id,
                         "resource": "users('x')/onlineMeetings('y')/transcripts('z')"}]}
    assert httpx.post(f"{api.url}/webhooks/teams", json=forged,
                      verify=tls_verify(get_settings().ca_bundle)).status_code == 401


def test_a_subscription_graph_let_expire_is_recreated_and_disconnect_deletes_them(served):
    from connectors.oauth_apps import end_connections
    from connectors.teams.source import TeamsSource
    from connectors.teams.subscriptions import ensure_subscriptions
    from core.db import session_scope
    from core.models import PushSubscription

    (box, running, org_id), api = served
    info = connect(org_id)
    before = live(info.id)
    # Five days without a poll (beat was down): past Graph's cap, gone there.
    box.advance(5 * 24 * 3600)
    with session_scope() as session:
        for row in session.exec(select(PushSubscription)).all():
            row.expires_at = datetime.now(UTC) - timedelta(days=2)
            session.add(row)
    source = TeamsSource.for_org(org_id)
    try:  # as the poll does, at the emulator's time
        ensure_subscriptions(source.api, org_id=org_id, connection_id=info.id,
                             settings=get_settings(), now=box.now())
    finally:
        source.close()
    after = live(info.id)
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    [ended] = end_connections(org_id, "teams", get_settings())
    assert not ended.revoked and "Enterprise applications" in ended.note
    assert box.subscriptions() == []
    assert live(info.id) == {}


def test_without_an_https_public_url_the_poll_does_the_work_and_says_why(graph, monkeypatch):
    from connectors.teams import probe

    box, running, org_id = graph
    monkeypatch.setenv("COACHLOOP_PUBLIC_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    info = connect(org_id)
    said = probe(info.id, get_settings())
    assert "HTTPS" in said and "COACHLOOP_PUBLIC_URL" in said
    assert box.subscriptions() == []
