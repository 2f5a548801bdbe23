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
    vendor sends with it at epoch second `at`."""

    event: Callable
    sign: Callable


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
    """For a remote meeting source: `seed(boxes, n)` records n meetings for the connected
    user in the last days; `small_pages(source, n)` makes it list n per page;
    `fail_next(boxes, status, retry_after)` has the listing endpoint refuse once;
    `listings(boxes)` counts listing requests; `cursor_stream` names its sync cursor."""

    seed: Callable
    small_pages: Callable
    fail_next: Callable
    listings: Callable
    cursor_stream: str


def _zoom_seed(boxes, n: int) -> list[str]:
    from datetime import UTC, datetime, timedelta

    owner = boxes.zoom.owner_email
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    return [boxes.zoom.add_meeting(
        f"Contract call {i}", today - timedelta(days=1 + i % 9, minutes=i), owner,
        [("Account Owner", owner)], transcript_vtt="WEBVTT\n\n1\n00:00:00.000 --> "
        f"00:00:02.000\nAccount Owner: call {i}\n") for i in range(n)]


ZOOM_LISTING = "GET /v2/users/{userId}/recordings"

SOURCES: dict[str, SourceKit] = {
    "zoom": SourceKit(
        seed=_zoom_seed,
        small_pages=lambda source, n: setattr(source.api, "page_size", n),
        fail_next=lambda boxes, status, retry_after=None: boxes.zoom.fail_next(
            ZOOM_LISTING, status, retry_after=retry_after),
        listings=lambda boxes: boxes.zoom.requests[ZOOM_LISTING],
        cursor_stream="recordings"),
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
    "salesforce": OAuthKit(revoke_everything=lambda boxes: boxes.salesforce.revoke_all_tokens()),
    "hubspot": OAuthKit(revoke_everything=lambda boxes: boxes.hubspot.revoke_all_tokens()),
}

WEBHOOKS: dict[str, WebhookKit] = {
    "zoom": WebhookKit(event=_zoom_event, sign=_zoom_sign),
    "hubspot": WebhookKit(event=_hubspot_event, sign=_hubspot_sign),
}

# A local folder has no paging, limits or outages (tests/test_files_source.py covers it).
COVERED_ELSEWHERE = {("files", "source")}


def now() -> int:
    return int(time.time())
