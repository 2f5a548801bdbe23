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


OAUTH: dict[str, OAuthKit] = {
    "zoom": OAuthKit(revoke_everything=lambda boxes: boxes.zoom.revoke_tokens()),
    "salesforce": OAuthKit(revoke_everything=lambda boxes: boxes.salesforce.revoke_all_tokens()),
}

WEBHOOKS: dict[str, WebhookKit] = {
    "zoom": WebhookKit(event=_zoom_event, sign=_zoom_sign),
}

# Sources and writers have their own suites today (tests/test_zoom_source.py,
# tests/test_files_source.py, tests/test_crm_writeback.py); they move here with HubSpot.
COVERED_ELSEWHERE = {("files", "source"), ("zoom", "source"), ("salesforce", "writer")}


def now() -> int:
    return int(time.time())
