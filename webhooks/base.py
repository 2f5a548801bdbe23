"""What every webhook receiver provides, and the error that turns into a 4xx."""

from __future__ import annotations

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


class WebhookReceiver(Protocol):
    """One provider's verification and parsing (DESIGN §4)."""

    provider: str

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Raise `WebhookRejected` unless the body is signed by the provider, recently."""

    def challenge(self, delivery: Delivery) -> dict[str, Any] | None:
        """The answer to a validation handshake, or None for an ordinary event."""

    def parse(self, raw_body: bytes) -> Delivery:
        """Parse a verified body; malformed → `WebhookRejected(400)`."""


# Headers worth keeping with a stored event (never Authorization or cookies).
KEPT_HEADERS = ("content-type", "user-agent", "x-zm-request-timestamp", "x-zm-trackingid",
                "x-zm-signature")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}
