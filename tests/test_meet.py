"""Google Meet through the Google emulator over HTTPS, with the real google-auth and
googleapiclient: a Workspace connected through a service account with domain-wide delegation
(no consent), the source (transcript entries voiced by e-mail, guests' e-mails from the
invite, recordings from Drive, transcripts still being generated holding the cursor), and
Workspace Events subscriptions over their whole life, pushed by Pub/Sub to the API served on
loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from core.settings import get_settings

REP = "maya.chen@acme-analytics.example"
OTHER_REP = "jordan.brooks@acme-analytics.example"
MANAGER = "priya.nair@acme-analytics.example"
BUYER = ("Sam Buyer", "sam@northwind.example")
TOPIC = "projects/coachloop-sandbox/topics/coachloop-meet"
PUSHER = "coachloop-push@coachloop-sandbox.iam.gserviceaccount.com"
ENTRIES = [("Maya Chen", 2.0, 6.5, "What does the no-show rate cost you today?"),
           ("Sam Buyer", 7.0, 12.0, "About nine hundred thousand dollars a year."),
           ("Dana", 12.5, 14.0, "That is my number too.")]


@pytest.fixture
def google(sqlite_database, tls, tmp_path, monkeypatch):
    """The Google emulator, a service account the admin delegated the read scopes to, and
    an org of two reps and a manager; coachloop's Meet settings point at them."""
    from connectors.meet.settings import READ_SCOPES
    from core.db import session_scope
    from core.domain import TeamMember
    from core.ingest import apply_team, ensure_org
    from sandbox.meet import MeetSandbox

    box = MeetSandbox()
    for email, name in ((MANAGER, "Priya Nair"), (REP, "Maya Chen"),
                        (OTHER_REP, "Jordan Brooks")):
        box.add_user(email, name)
    running = box.start(tls)
    key = box.add_service_account()
    box.grant_delegation(key["client_id"], READ_SCOPES)
    key_file = tmp_path / "sa.json"
    # A key file naming another token endpoint: the assertion must still go to the
    # configured one (COACHLOOP_MEET__OAUTH2_BASE), or no token is ever minted.
    key_file.write_text(json.dumps({**key, "token_uri": "https://token-thief.example/token"}))
    env = {"COACHLOOP_MEET__SERVICE_ACCOUNT_FILE": str(key_file),
           "COACHLOOP_MEET__CLIENT_ID": box.client_id,
           "COACHLOOP_MEET__CLIENT_SECRET": box.client_secret,
           "COACHLOOP_MEET__ACCOUNTS_BASE": running.url,
           "COACHLOOP_MEET__OAUTH2_BASE": running.url,
           "COACHLOOP_MEET__API_ROOT": running.url,
           "COACHLOOP_MEET__JWKS_URL": f"{running.url}/oauth2/v3/certs",
           "COACHLOOP_CA_BUNDLE": str(tls.ca_path),
           "COACHLOOP_PUBLIC_URL": "https://coachloop.example",
           "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with session_scope() as session:
        org = ensure_org(session, "Acme", ["acme-analytics.example"])
        apply_team(session, org, [TeamMember("Maya Chen", REP),
                                  TeamMember("Jordan Brooks", OTHER_REP),
                                  TeamMember("Priya Nair", MANAGER, role="manager")])
        org_id = org.id
    yield box, running, org_id, key
    running.stop()


def only_checked_methods_were_called(box) -> None:
    """Every Google method the connector called is one the discovery-document test walks
    (tests/test_sandbox_meet.py), so none of them can drift from Google's schema."""
    from sandbox.meet import METHODS, OAUTH_ENDPOINTS
    from tests.test_sandbox_meet import USED_METHODS

    called = {key for key, count in box.requests.items() if count and key not in OAUTH_ENDPOINTS}
    assert called, "the connector called no Google method"
    assert {(METHODS[k].api, METHODS[k].version, METHODS[k].method) for k in called} <= \
        set(USED_METHODS)


def yesterday(hour: int = 15) -> datetime:
    return (datetime.now(UTC) - timedelta(days=1)).replace(hour=hour, minute=0, second=0,
                                                           microsecond=0)


def sync(org_id: int) -> list:
    from connectors.meet.source import MeetSource

    source = MeetSource.for_org(org_id)
    try:
        return list(source.list_meetings())
    finally:
        source.close()


# ------------------------------------------------------------- connecting ----


def test_a_service_account_connects_the_workspace_without_consent(google, monkeypatch):
    from connectors.meet import connect_delegated, probe
    from core.connections import ConnectionBroken
    from core.errors import ConfigError

    box, running, org_id, key = google
    info = connect_delegated(org_id, get_settings())
    assert info.status == "active" and info.auth_kind == "delegated"
    assert info.account_ref == "acme-analytics.example"
    said = probe(info.id, get_settings())
    assert "through a service account (2 reps impersonated)" in said
    assert "events off" in said
    # The key file's token_uri is not where the assertion goes: the configured endpoint is.
    assert box.requests["POST /token"] >= 2

    box.revoke_delegation(key["client_id"])
    with pytest.raises(ConnectionBroken) as refused:
        connect_delegated(org_id, get_settings())
    assert "Domain-wide delegation" in refused.value.message
    assert "unauthorized_client" in refused.value.message
    assert key["private_key"] not in refused.value.message

    monkeypatch.setenv("COACHLOOP_MEET__SERVICE_ACCOUNT_FILE", "/nowhere/sa.json")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="COACHLOOP_MEET__SERVICE_ACCOUNT_FILE"):
        connect_delegated(org_id, get_settings())


# ----------------------------------------------------------------- source ----


def test_each_reps_conferences_are_read_with_speakers_and_guests(google):
    from connectors.base import SourceProblem
    from connectors.meet import connect_delegated
    from core.transcripts import load_platform_transcript

    box, running, org_id, key = google
    box.add_conference(REP, yesterday(15), title="Discovery - Northwind", duration_s=900,
                       participants=[("Maya Chen", REP), BUYER], anonymous=["Dana"],
                       external_attendees=[BUYER], transcript=ENTRIES)
    recording = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    box.add_conference(OTHER_REP, yesterday(17), title="Pricing - Cedar", duration_s=600,
                       participants=[("Jordan Brooks", OTHER_REP)], recording=recording)
    box.add_conference(REP, yesterday(9), title="Internal stand-up", duration_s=300,
                       participants=[("Maya Chen", REP), ("Priya Nair", MANAGER)])
    connect_delegated(org_id, get_settings())

    found = sync(org_id)
    assert not [f for f in found if isinstance(f, SourceProblem)], found
    by_title = {r.title: r for r in found}
    assert set(by_title) == {"Discovery - Northwind", "Pricing - Cedar"}  # stand-up: no record

    discovery = by_title["Discovery - Northwind"]
    assert discovery.source == "meet" and discovery.started_at == yesterday(15)
    people = {(p.name, p.email) for p in discovery.participants}
    # Google hides the outside account's e-mail; the invite gives it, matched by name.
    assert people == {("Maya Chen", REP), BUYER, ("Dana", None)}
    utterances = load_platform_transcript(discovery.transcript_path)
    assert [(u.speaker_label, u.start, u.end) for u in utterances] == [
        (REP, 2.0, 6.5), (BUYER[1], 7.0, 12.0), ("Dana", 12.5, 14.0)]
    assert utterances[0].text == ENTRIES[0][3]
    assert discovery.tracks == ()

    pricing = by_title["Pricing - Cedar"]
    assert pricing.transcript_path is None and len(pricing.tracks) == 1
    with open(pricing.tracks[0].path, "rb") as media:
        assert media.read() == recording
    assert discovery.origin.startswith("meet:") and REP in discovery.origin

    # Read again: the same records, nothing downloaded twice.
    downloads = box.requests["GET /drive/v3/files/{fileId}?alt=media"]
    again = {r.external_id: r.content_hash for r in sync(org_id)
             if not isinstance(r, SourceProblem)}
    assert again == {r.external_id: r.content_hash for r in found}
    assert box.requests["GET /drive/v3/files/{fileId}?alt=media"] == downloads
    only_checked_methods_were_called(box)


def test_a_transcript_still_being_generated_holds_the_cursor(google):
    from connectors.base import SourceProblem
    from connectors.meet import connect_delegated
    from core.connections import read_cursor

    box, running, org_id, key = google
    ended_at = datetime.now(UTC) - timedelta(minutes=20)
    start = ended_at - timedelta(minutes=10)
    box.add_conference(REP, start, title="Late transcript", duration_s=600,
                       participants=[("Maya Chen", REP)], transcript=ENTRIES[:1],
                       transcript_delay_s=3600)
    info = connect_delegated(org_id, get_settings())

    [waiting] = sync(org_id)
    assert isinstance(waiting, SourceProblem) and "still generating" in waiting.message
    held = datetime.fromisoformat(read_cursor(info.id, f"conferences:{REP}"))
    assert abs((held - start).total_seconds()) < 1  # the cursor waits at that call

    box.advance(3600)  # Google finishes the transcript
    [record] = sync(org_id)
    assert not isinstance(record, SourceProblem) and record.title == "Late transcript"
    assert datetime.fromisoformat(read_cursor(info.id, f"conferences:{REP}")) > held


def test_a_user_connection_reads_its_own_account(google):
    from connectors.oauth_apps import connect_following_consent

    box, running, org_id, key = google
    box.signed_in = REP
    box.add_conference(REP, yesterday(15), title="Own call", participants=[("Maya Chen", REP)],
                       transcript=ENTRIES[:1])
    box.add_conference(OTHER_REP, yesterday(16), title="Not mine",
                       participants=[("Jordan Brooks", OTHER_REP)],
                       transcript=[("Jordan Brooks", 1.0, 2.0, "Hello.")])
    info = connect_following_consent("meet", org_id, get_settings())
    assert info.auth_kind == "oauth" and info.account_ref == REP
    assert [r.title for r in sync(org_id)] == ["Own call"]


# ---------------------------------------------------------- subscriptions ----


@pytest.fixture
def served(google, tls, monkeypatch):
    """The API over HTTPS on loopback, Pub/Sub pushing the topic's messages to it, and the
    Meet settings that turn events on."""
    from api import create_app
    from sandbox.server import serve

    api = serve(create_app(), tls)
    for name, value in {"COACHLOOP_PUBLIC_URL": api.url,
                        "COACHLOOP_MEET__PUBSUB_TOPIC": TOPIC,
                        "COACHLOOP_MEET__PUSH_SERVICE_ACCOUNT": PUSHER}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    box = google[0]
    box.configure_push(TOPIC, f"{api.url}/webhooks/meet", service_account_email=PUSHER)
    yield google, api
    api.stop()


def live(connection_id: int) -> dict[str, tuple[str, str]]:
    from core.db import session_scope
    from core.models import PushSubscription

    with session_scope() as session:
        return {r.resource: (r.external_id, r.status) for r in session.exec(
            select(PushSubscription).where(PushSubscription.connection_id == connection_id,
                                           PushSubscription.status != "ended"))}


def test_subscriptions_are_created_pushed_renewed_suspended_expired_and_adopted(served):
    from api import wait_for_local_events
    from connectors.meet import connect_delegated, poll, probe
    from connectors.meet.source import MeetSource
    from connectors.meet.subscriptions import ensure_subscriptions
    from core.db import session_scope
    from core.models import Meeting, PushSubscription, WebhookEvent

    (box, running, org_id, key), api = served
    info = connect_delegated(org_id, get_settings())
    subscriptions = live(info.id)
    assert set(subscriptions) == {REP, OTHER_REP}
    assert {s for _, s in subscriptions.values()} == {"active"}
    at_google = {s["name"]: s for s in box.subscriptions()}
    assert set(at_google) == {name for name, _ in subscriptions.values()}
    assert {s["notificationEndpoint"]["pubsubTopic"] for s in at_google.values()} == {TOPIC}
    assert {s["targetResource"] for s in at_google.values()} == {
        f"//cloudidentity.googleapis.com/users/{box.user_id(REP)}",
        f"//cloudidentity.googleapis.com/users/{box.user_id(OTHER_REP)}"}
    assert "events until" in probe(info.id, get_settings())

    # A generated transcript is pushed with Google's token, stored once, read as the rep.
    box.add_conference(REP, yesterday(15), title="Discovery - Northwind",
                       participants=[("Maya Chen", REP), BUYER], external_attendees=[BUYER],
                       transcript=ENTRIES[:2])
    answers = box.deliver_events()
    assert answers and {status for status, _ in answers} == {200}, answers
    wait_for_local_events()
    with session_scope() as session:
        events = session.exec(select(WebhookEvent)).all()
        assert [e.error for e in events] == [None] * len(events)
        assert {e.event_type for e in events} == {
            "google.workspace.meet.transcript.v2.fileGenerated"}
        [meeting] = session.exec(select(Meeting)).all()
        assert meeting.source == "meet" and meeting.title == "Discovery - Northwind"

    # Renewed when little of its life is left (the poll, from beat).
    with session_scope() as session:
        for row in session.exec(select(PushSubscription)).all():
            row.expires_at = datetime.now(UTC) + timedelta(hours=2)
            session.add(row)
    patches = box.requests["PATCH /v1/subscriptions/{subscriptionsId}"]
    poll(org_id)
    assert box.requests["PATCH /v1/subscriptions/{subscriptionsId}"] == patches + 2
    assert live(info.id) == subscriptions

    # Suspended by Google: recorded with its reason; the next poll reactivates it.
    rep_subscription = subscriptions[REP][0]
    box.lifecycle_event(rep_subscription, "suspended", reason="USER_SCOPE_REVOKED")
    box.deliver_events()
    wait_for_local_events()
    assert live(info.id)[REP] == (rep_subscription, "suspended")
    assert "USER_SCOPE_REVOKED" in probe(info.id, get_settings())
    poll(org_id)
    assert box.requests["POST /v1/subscriptions/{subscriptionsId}:reactivate"] == 1
    assert live(info.id)[REP] == (rep_subscription, "active")

    # Expired at Google: the lifecycle event recreates it.
    box.lifecycle_event(rep_subscription, "expired")
    box.deliver_events()
    wait_for_local_events()
    recreated = live(info.id)[REP]
    assert recreated[1] == "active" and recreated[0] != rep_subscription
    assert len(box.subscriptions()) == 2

    # A crash lost our record of one: it is adopted, not made twice (ALREADY_EXISTS).
    with session_scope() as session:
        for row in session.exec(select(PushSubscription).where(
                PushSubscription.resource == OTHER_REP)).all():
            session.delete(row)
    source = MeetSource.for_org(org_id)
    try:
        ensure_subscriptions(source)
    finally:
        source.close()
    assert live(info.id)[OTHER_REP] == subscriptions[OTHER_REP]
    assert len(box.subscriptions()) == 2
    only_checked_methods_were_called(box)


def test_disconnect_deletes_the_subscriptions_at_google(served):
    from connectors.meet import connect_delegated
    from connectors.oauth_apps import end_connections

    (box, running, org_id, key), api = served
    info = connect_delegated(org_id, get_settings())
    assert len(box.subscriptions()) == 2
    [ended] = end_connections(org_id, "meet", get_settings(), status="disconnected")
    assert ended.id == info.id
    assert box.subscriptions() == []
    assert live(info.id) == {}


def test_an_admin_connects_the_workspace_from_the_connections_page(google):
    from core.auth import set_password
    from core.db import session_scope
    from core.domain import TeamMember
    from core.ingest import apply_team
    from core.models import Org, User
    from tests.test_pages import browser, form_fields, sign_in

    box, running, org_id, key = google
    admin = "admin@acme-analytics.example"
    with session_scope() as session:
        apply_team(session, session.get(Org, org_id), [TeamMember("Ada Admin", admin,
                                                                  role="admin")])
        for email in (admin, MANAGER):
            user = session.exec(select(User).where(User.email == email)).one()
            set_password(user, "correct horse battery")
            session.add(user)
    manager = browser()
    sign_in(manager, MANAGER)
    assert manager.get("/app/connections").status_code == 403

    client = browser()
    sign_in(client, admin)
    page = client.get("/app/connections")
    assert page.status_code == 200
    assert 'action="/app/connections/meet/connect"' in page.text
    assert "through the service account (no sign-in)" in page.text
    assert "Pub/Sub push subscription with authentication" in page.text
    token = form_fields(page.text)["csrf_token"]
    assert client.post("/app/connections/meet/connect", data={}).status_code in (400, 403)
    done = client.post("/app/connections/meet/connect", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == \
        "/app/connections?connected=meet"
    shown = client.get("/app/connections?connected=meet").text
    assert "Connected meet" in shown and "acme-analytics.example" in shown
    assert "through a service account (2 reps impersonated)" in shown


def test_a_rep_who_is_not_a_workspace_user_is_named_and_the_others_are_read(google):
    from connectors.base import SourceProblem
    from connectors.meet import connect_delegated
    from connectors.oauth_apps import check_connections
    from core.db import session_scope
    from core.domain import TeamMember
    from core.ingest import apply_team
    from core.models import Org

    box, running, org_id, key = google
    stranger = "aaron.stranger@acme-analytics.example"  # first in the roster, unknown there
    with session_scope() as session:
        apply_team(session, session.get(Org, org_id), [TeamMember("Aaron Stranger", stranger)])
    box.add_conference(REP, yesterday(15), title="Discovery - Northwind",
                       participants=[("Maya Chen", REP)], transcript=ENTRIES[:1])
    info = connect_delegated(org_id, get_settings())
    [health] = [h for h in check_connections(org_id, get_settings()) if h.id == info.id]
    assert health.status == "active", health.problem
    found = sync(org_id)
    problems = [f for f in found if isinstance(f, SourceProblem)]
    assert [p.origin for p in problems] == [f"meet:{stranger}"]
    assert "invalid_grant" in problems[0].message
    assert [r.title for r in found if not isinstance(r, SourceProblem)] == [
        "Discovery - Northwind"]

    # The delegation itself withdrawn is the whole connection's problem, not one rep's.
    from core.connections import ConnectionBroken

    box.revoke_delegation(key["client_id"])
    with pytest.raises(ConnectionBroken, match="unauthorized_client"):
        sync(org_id)
