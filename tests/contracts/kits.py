"""What each registered vendor brings to the contract suites: how to reach its emulator,
and how to make what its contracts need. Every capability a vendor registers (oauth,
webhooks, source, writer) must have a kit here, or `test_registry` fails: a plugin is not
done until the shared contracts run against it.

A kit is plain functions over the running sandboxes (`sandbox.run.start_sandboxes`); the
suites themselves never name a vendor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class OAuthKit:
    """`revoke_everything(boxes)`: the vendor ends every grant behind our back (an admin
    removed the app)."""

    revoke_everything: Callable


@dataclass(frozen=True)
class WebhookKit:
    """`event(boxes)`: a raw body of a real event; `sign(boxes, body, at)`: the headers the
    vendor sends with it at epoch second `at`; `forgeries(boxes, body)`: (what, body,
    headers) deliveries that only look like the vendor's, each to be refused with a 401."""

    event: Callable
    sign: Callable
    forgeries: Callable


def signature_forgeries(kit_sign: Callable) -> Callable:
    """For vendors that sign the body: a changed body, a stale signature, none at all."""
    def forgeries(boxes, body: bytes) -> list[tuple[str, bytes, dict]]:
        tampered = body[:-1] + b" " + body[-1:]  # one byte more, the JSON as valid as before
        return [("a changed body", tampered, kit_sign(boxes, body, now())),
                ("a stale signature", body, kit_sign(boxes, body, now() - 3600)),
                ("no signature", body, {"content-type": "application/json"})]
    return forgeries


def _zoom_event(boxes) -> bytes:
    uuid = next(iter(boxes.zoom_meetings.values()))
    return json.dumps(boxes.zoom.webhook_payload("recording.completed", uuid)).encode()


def _zoom_sign(boxes, body: bytes, at: int) -> dict[str, str]:
    from connectors.zoom.webhooks import zoom_signature

    return {"x-zm-request-timestamp": str(at), "content-type": "application/json",
            "x-zm-signature": zoom_signature(boxes.webhook_secret, str(at), body)}


def _hubspot_event(boxes) -> bytes:
    deal = next(iter(boxes.hubspot_ids["deals"].values()))
    from sandbox.hubspot import PORTAL_ID

    return json.dumps([{"eventId": 1001, "subscriptionId": 7, "portalId": PORTAL_ID,
                        "appId": 42, "occurredAt": 1764600000000,
                        "subscriptionType": "deal.propertyChange", "attemptNumber": 0,
                        "objectId": int(deal), "propertyName": "dealstage",
                        "propertyValue": "closedwon", "changeSource": "CRM_UI"}]).encode()


def _hubspot_sign(boxes, body: bytes, at: int) -> dict[str, str]:
    from core.settings import get_settings
    from sandbox.hubspot import DEFAULT_CLIENT_SECRET, sign_v3

    uri = f"{get_settings().public_url.rstrip('/')}/webhooks/hubspot"
    stamp = str(at * 1000)
    return {"content-type": "application/json", "x-hubspot-request-timestamp": stamp,
            "x-hubspot-signature-version": "v3",
            "x-hubspot-signature-v3": sign_v3(DEFAULT_CLIENT_SECRET, "POST", uri, body,
                                              int(stamp))}


@dataclass(frozen=True)
class SourceKit:
    """For a remote meeting source: `seed(boxes, org_id, n)` records n meetings of a rep of
    the org in the last days; `small_pages(source, n)` makes it list n per page;
    `fail_next(boxes, status, retry_after)` has the listing endpoint refuse once;
    `listings(boxes)` counts listing requests; `cursor_stream(boxes)` names the sync cursor
    the seeded meetings move."""

    seed: Callable
    small_pages: Callable
    fail_next: Callable
    listings: Callable
    cursor_stream: Callable


def _zoom_seed(boxes, org_id: int, n: int) -> list[str]:
    from datetime import UTC, datetime, timedelta

    owner = boxes.zoom.owner_email
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    return [boxes.zoom.add_meeting(
        f"Contract call {i}", today - timedelta(days=1 + i % 9, minutes=i), owner,
        [("Account Owner", owner)], transcript_vtt="WEBVTT\n\n1\n00:00:00.000 --> "
        f"00:00:02.000\nAccount Owner: call {i}\n") for i in range(n)]


ZOOM_LISTING = "GET /v2/users/{userId}/recordings"

TEAMS_REP = "maya.chen@acme-analytics.example"
TEAMS_LISTING = "GET /v1.0/users/{userId}/onlineMeetings/getAllTranscripts"


def _teams_seed(boxes, org_id: int, n: int) -> list[str]:
    """n transcribed Teams meetings a rep of the org organized, with a guest from outside."""
    from datetime import UTC, datetime, timedelta

    from core.db import session_scope
    from core.domain import TeamMember
    from core.ingest import apply_team
    from core.models import Org

    with session_scope() as session:
        apply_team(session, session.get(Org, org_id), [TeamMember("Maya Chen", TEAMS_REP)])
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    made = []
    for i in range(n):
        meeting = boxes.graph.add_meeting(
            f"Contract call {i}", today - timedelta(days=1 + i % 9, minutes=i), TEAMS_REP,
            external_attendees=[("Sam Buyer", "sam@northwind.example")],
            transcript_vtt="WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v Maya Chen>call "
                           f"{i}</v>\n")
        made.append(meeting)
    listed = boxes.graph.transcripts_of(TEAMS_REP)
    return [f"{t['meetingId']}:{t.get('contentCorrelationId') or t['id']}" for t in listed
            if t["meetingId"] in made]


MEET_LISTING = "GET /v2/conferenceRecords"


def _meet_seed(boxes, org_id: int, n: int) -> list[str]:
    """n transcribed conferences of the connected Google account, with a buyer from outside
    who is only on the invite; their conference record ids."""
    from datetime import UTC, datetime, timedelta

    import yaml

    from sandbox.run import DEMO_DIR

    me = boxes.meet.signed_in
    team = yaml.safe_load((DEMO_DIR / "team.yaml").read_text(encoding="utf-8"))
    name = next(u["name"] for u in team["users"] if u["email"].lower() == me.lower())
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    return [boxes.meet.add_conference(
        me, today - timedelta(days=1 + i % 9, minutes=i), title=f"Contract call {i}",
        duration_s=600, participants=[(name, me)],
        external_attendees=[("Sam Buyer", "sam@northwind.example")],
        transcript=[(name, 1.0, 3.0, f"call {i}")]).rsplit("/", 1)[-1]
        for i in range(n)]


SOURCES: dict[str, SourceKit] = {
    "zoom": SourceKit(
        seed=_zoom_seed,
        small_pages=lambda source, n: setattr(source.api, "page_size", n),
        fail_next=lambda boxes, status, retry_after=None: boxes.zoom.fail_next(
            ZOOM_LISTING, status, retry_after=retry_after),
        listings=lambda boxes: boxes.zoom.requests[ZOOM_LISTING],
        cursor_stream=lambda boxes: "recordings"),
    "teams": SourceKit(
        seed=_teams_seed,
        small_pages=lambda source, n: setattr(source.api, "page_size", n),
        fail_next=lambda boxes, status, retry_after=None: boxes.graph.fail_next(
            TEAMS_LISTING, status, retry_after=retry_after),
        listings=lambda boxes: boxes.graph.requests[TEAMS_LISTING],
        cursor_stream=lambda boxes: f"meetings:{boxes.graph.user_id(TEAMS_REP)}"),
    "meet": SourceKit(
        seed=_meet_seed,
        small_pages=lambda source, n: setattr(source, "page_size", n),
        fail_next=lambda boxes, status, retry_after=None: boxes.meet.fail_next(
            MEET_LISTING, status, retry_after=retry_after),
        listings=lambda boxes: boxes.meet.requests[MEET_LISTING],
        cursor_stream=lambda boxes: f"conferences:{boxes.meet.signed_in.lower()}"),
}

@dataclass(frozen=True)
class WriterKit:
    """For a CRM: `records(boxes, obj, field, value)` finds records by a field;
    `expire_sessions(boxes)` times out every access token; `token_requests(boxes)` counts
    token-endpoint calls; `outage(boxes, on)` fails every API call with a 5xx (or stops);
    `exhaust_quota(boxes)` uses up the day's API calls."""

    records: Callable
    expire_sessions: Callable
    token_requests: Callable
    outage: Callable
    exhaust_quota: Callable


WRITERS: dict[str, WriterKit] = {
    "salesforce": WriterKit(
        records=lambda boxes, obj, field, value: boxes.salesforce.find(obj, **{field: value}),
        expire_sessions=lambda boxes: boxes.salesforce.expire_sessions(),
        token_requests=lambda boxes: boxes.salesforce.requests["POST /services/oauth2/token"],
        outage=lambda boxes, on: boxes.salesforce.set_faults(error_rate=1.0 if on else 0.0),
        exhaust_quota=lambda boxes: boxes.salesforce.set_api_usage(
            boxes.salesforce.daily_limit)),
    "hubspot": WriterKit(
        records=lambda boxes, obj, field, value: [
            r for r in boxes.hubspot.records(obj) if r.get(field) == value],
        expire_sessions=lambda boxes: boxes.hubspot.expire_tokens(),
        token_requests=lambda boxes: boxes.hubspot.requests["POST /oauth/2026-03/token"],
        outage=lambda boxes, on: boxes.hubspot.fail_next(503, times=10_000) if on
        else boxes.hubspot.clear_faults(),
        # An OAuth app's calls are not counted against the daily limit (HubSpot sends them no
        # daily headers); a portal over it answers 429 DAILY all the same.
        exhaust_quota=lambda boxes: boxes.hubspot.fail_next("DAILY", times=10)),
}

OAUTH: dict[str, OAuthKit] = {
    "zoom": OAuthKit(revoke_everything=lambda boxes: boxes.zoom.revoke_tokens()),
    "teams": OAuthKit(revoke_everything=lambda boxes: boxes.graph.revoke_consent()),
    "salesforce": OAuthKit(revoke_everything=lambda boxes: boxes.salesforce.revoke_all_tokens()),
    "hubspot": OAuthKit(revoke_everything=lambda boxes: boxes.hubspot.revoke_all_tokens()),
    "meet": OAuthKit(revoke_everything=lambda boxes: boxes.meet.revoke_consent(
        boxes.meet.signed_in)),
}

TEAMS_CLIENT_STATE = "contract-suite-client-state-0123456789abcdef"


def _teams_subscription(boxes) -> str:
    """A subscription we hold for the sandbox tenant (as if created on connect), with a
    clientState the suite knows; its id."""
    from sqlmodel import select

    from connectors.teams.webhooks import secret_hash
    from core.db import session_scope
    from core.models import Connection, Org, PushSubscription, utcnow

    tenant = boxes.graph.tenant_id
    with session_scope() as session:
        held = session.exec(select(PushSubscription).where(
            PushSubscription.external_id == "contract-subscription")).first()
        if held is None:
            org_id = session.exec(select(Org.id)).first()
            connection = Connection(org_id=org_id, provider="teams", account_ref=tenant,
                                    auth_kind="app_only")
            session.add(connection)
            session.flush()
            session.add(PushSubscription(
                org_id=org_id, connection_id=connection.id, provider="teams",
                external_id="contract-subscription",
                resource="communications/onlineMeetings/getAllTranscripts",
                secret_hash=secret_hash(TEAMS_CLIENT_STATE), expires_at=utcnow()))
    return "contract-subscription"


def _teams_notification(boxes, **changes) -> dict:
    item = {"subscriptionId": _teams_subscription(boxes), "changeType": "created",
            "clientState": TEAMS_CLIENT_STATE, "tenantId": boxes.graph.tenant_id,
            "subscriptionExpirationDateTime": "2026-12-04T11:00:00+00:00",
            "resource": "communications/onlineMeetings('m1')/transcripts('t1')",
            "resourceData": {"id": "t1", "@odata.type": "#Microsoft.Graph.callTranscript",
                             "@odata.id": "communications/onlineMeetings('m1')/transcripts('t1')"}}
    return {"value": [{k: v for k, v in {**item, **changes}.items() if v is not None}]}


def _teams_event(boxes) -> bytes:
    return json.dumps(_teams_notification(boxes)).encode()


def _teams_forgeries(boxes, body: bytes) -> list[tuple[str, bytes, dict]]:
    """Graph signs nothing: what a forger can get wrong is the clientState, the subscription
    or the tenant."""
    plain = {"content-type": "application/json"}
    forged = [("a wrong clientState", {"clientState": "guessed"}),
              ("no clientState", {"clientState": None}),
              ("a subscription we do not hold", {"subscriptionId": "not-ours"}),
              ("another tenant", {"tenantId": "00000000-0000-0000-0000-000000000000"})]
    return [(what, json.dumps(_teams_notification(boxes, **change)).encode(), plain)
            for what, change in forged]


MEET_SUBSCRIPTION = "subscriptions/contract-subscription"


def _meet_event(boxes) -> bytes:
    """A Pub/Sub push of a Workspace Events CloudEvent: a generated transcript, through a
    subscription a connection of the org holds."""
    import base64

    from sqlmodel import select

    from core.db import session_scope
    from core.models import Connection, Org, PushSubscription, utcnow

    with session_scope() as session:
        if session.exec(select(PushSubscription).where(
                PushSubscription.external_id == MEET_SUBSCRIPTION)).first() is None:
            org_id = session.exec(select(Org.id)).first()
            connection = Connection(org_id=org_id, provider="meet",
                                    account_ref="acme-analytics.example", auth_kind="delegated")
            session.add(connection)
            session.flush()
            session.add(PushSubscription(
                org_id=org_id, connection_id=connection.id, provider="meet",
                external_id=MEET_SUBSCRIPTION, resource="maya.chen@acme-analytics.example",
                secret_hash="", expires_at=utcnow()))
    data = {"transcript": {"name": "conferenceRecords/c-1/transcripts/t-1"}}
    return json.dumps({"message": {
        "attributes": {"ce-id": "e-1", "ce-specversion": "1.0",
                       "ce-source": f"//workspaceevents.googleapis.com/{MEET_SUBSCRIPTION}",
                       "ce-subject": "//cloudidentity.googleapis.com/users/1",
                       "ce-time": "2026-12-01T10:00:00Z",
                       "ce-type": "google.workspace.meet.transcript.v2.fileGenerated",
                       "ce-datacontenttype": "application/json"},
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "messageId": "1700000000001", "publishTime": "2026-12-01T10:00:01Z"},
        "subscription": "projects/coachloop-sandbox/subscriptions/coachloop-push"}).encode()


MEET_AUDIENCE = "https://coachloop.example/webhooks/meet"  # the suite's public URL


def _meet_sign(boxes, body: bytes, at: int) -> dict[str, str]:
    """Pub/Sub signs nothing in the body: the push carries Google's OIDC token."""
    from sandbox.run import MEET_PUSH_ACCOUNT

    token = boxes.meet.push_token(MEET_AUDIENCE, email=MEET_PUSH_ACCOUNT)
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def _meet_forgeries(boxes, body: bytes) -> list[tuple[str, bytes, dict]]:
    from sandbox.run import MEET_PUSH_ACCOUNT

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}", "content-type": "application/json"}

    meet = boxes.meet
    return [("no token", body, {"content-type": "application/json"}),
            ("a token signed by a key not Google's", body, bearer(meet.push_token(
                MEET_AUDIENCE, email=MEET_PUSH_ACCOUNT, foreign_key=True))),
            ("an expired token", body, bearer(meet.push_token(
                MEET_AUDIENCE, email=MEET_PUSH_ACCOUNT, expired=True))),
            ("a token for another audience", body, bearer(meet.push_token(
                "https://elsewhere.example/push", email=MEET_PUSH_ACCOUNT))),
            ("a token for another service account", body, bearer(meet.push_token(
                MEET_AUDIENCE, email="someone@evil-project.iam.gserviceaccount.com"))),
            ("a token from another issuer", body, bearer(meet.push_token(
                MEET_AUDIENCE, email=MEET_PUSH_ACCOUNT, issuer="https://evil.example")))]


WEBHOOKS: dict[str, WebhookKit] = {
    "zoom": WebhookKit(event=_zoom_event, sign=_zoom_sign,
                       forgeries=signature_forgeries(_zoom_sign)),
    "hubspot": WebhookKit(event=_hubspot_event, sign=_hubspot_sign,
                          forgeries=signature_forgeries(_hubspot_sign)),
    "teams": WebhookKit(event=_teams_event,
                        sign=lambda boxes, body, at: {"content-type": "application/json"},
                        forgeries=_teams_forgeries),
    "meet": WebhookKit(event=_meet_event, sign=_meet_sign, forgeries=_meet_forgeries),
}

# A local folder has no paging, limits or outages (tests/test_files_source.py covers it).
COVERED_ELSEWHERE = {("files", "source")}


def now() -> int:
    return int(time.time())
