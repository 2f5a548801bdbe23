"""What every webhook receiver provides, and the error that turns into a 4xx."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import CoachloopError, Resolution


class WebhookRejected(CoachloopError):
    """A delivery we refuse: forged, stale, malformed. `status` is the HTTP answer."""

    resolution = Resolution.SKIP

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """A verified, parsed delivery, ready to be stored."""

    event_type: str
    dedupe_key: str
    account_ref: str | None
    payload: dict[str, Any] = field(repr=False)
    # Secrets the body carried (Zoom's download_token): stored encrypted, apart from the body.
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # The payload is the body less what must not be stored (Graph's clientStates): store it.
    scrubbed: bool = False

    def body_to_store(self, raw_body: bytes) -> bytes:
        """The body without its secrets (as received when it had none)."""
        if not self.secrets and not self.scrubbed:
            return raw_body
        return json.dumps({k: v for k, v in self.payload.items() if k not in self.secrets},
                          separators=(",", ":")).encode()


class WebhookReceiver(Protocol):
    """One provider's verification and parsing (DESIGN §4)."""

    provider: str
    kept_headers: tuple[str, ...]  # the vendor's headers stored with an event (lower case)

    def verify(self, raw_body: bytes, headers: Mapping[str, str], *, method: str = "POST",
               url: str = "") -> None:
        """Raise `WebhookRejected` unless the body is signed by the provider, recently
        (`method` and `url`: the request's, for vendors that sign them too)."""

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        """The answer to a validation handshake, or None for an ordinary event."""

    def parse(self, raw_body: bytes) -> Delivery:
        """Parse a verified body; malformed → `WebhookRejected(400)`.

        A receiver may also have `handshake(query, raw_body) -> str | None`: the plain-text
        answer to a validation request that carries nothing to verify (Graph's
        `validationToken`), asked before `verify`."""


# Headers worth keeping with any stored event (never Authorization or cookies); a receiver
# adds its vendor's own (signature, timestamp, delivery id) as `kept_headers`.
KEPT_HEADERS = ("content-type", "user-agent")


def kept_headers(headers: Mapping[str, str], receiver: WebhookReceiver) -> dict[str, str]:
    names = KEPT_HEADERS + tuple(receiver.kept_headers)
    return {name: headers[name] for name in names if name in headers}


MAX_DEPTH = 32  # vendors' events nest five or six levels deep


def strict_json(raw_body: bytes) -> Any:
    """The body as JSON, or `WebhookRejected(400)`: UTF-8 only (JSON may be UTF-16 or -32 by
    the old RFC, which Python accepts, but no vendor sends it and we store the text), no NUL
    characters (PostgreSQL's text cannot hold them), nesting no deeper than `MAX_DEPTH`."""
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "body is not UTF-8 JSON") from None
    if "\x00" in text or "\\u0000" in text.lower():
        raise WebhookRejected(400, "body contains a NUL character")
    depth = deepest = 0
    in_string = escaped = False
    for char in text:  # nesting is checked before parsing: json.loads recurses
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise WebhookRejected(400, f"body nests deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise WebhookRejected(400, "body is not JSON") from None


def bounded(value: Any, name: str, limit: int) -> str | None:
    """A string field of a delivery within `limit` characters (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise WebhookRejected(400, f"{name} is not a string of at most {limit} characters")
    return value
