"""Waiting out a transient failure, in one place: how long a vendor asks us to wait, how long
we wait when it does not say, and the retry loop itself (tenacity).

Which failures are transient is `core.errors.classify`'s to say; a `TransientError` carries
the vendor's `retry_after` when it sent one. Inline retries are for brief trouble only: a
wait longer than `give_up_after` is left to the task queue (`worker.py`), which waits
without holding a worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

from tenacity import (RetryCallState, Retrying, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

from core.errors import Resolution, classify

T = TypeVar("T")


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a response's `Retry-After` (seconds, an HTTP date or an ISO time,
    as Zoom sends for daily limits) or `retry-after-ms` (OpenAI-compatible servers); None
    when the vendor does not say."""
    from email.utils import parsedate_to_datetime

    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    now = now or datetime.now(UTC)
    for parse in (datetime.fromisoformat, parsedate_to_datetime):
        try:
            moment = parse(value)
        except (ValueError, TypeError):
            continue
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return max(0.0, (moment - now).total_seconds())
    return None


def backoff(attempt: int, exc: BaseException | None, *, base: float, cap: float,
            asked_cap: float | None = None) -> float:
    """How long to wait before retry number `attempt + 1`: what the vendor asked for (at most
    `asked_cap`, when given), else exponential from `base` up to `cap`, with jitter, so
    clients that failed together do not come back together."""
    asked = getattr(exc, "retry_after", None)
    if asked is not None:
        asked = max(float(asked), 0.0)
        return asked if asked_cap is None else min(asked, asked_cap)
    jittered = wait_exponential_jitter(multiplier=base, max=cap, jitter=base)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt + 1
    return min(jittered(state), cap)


def call_with_retries(call: Callable[[], T], *, retries: int, base: float, cap: float,
                      asked_cap: float | None = None, give_up_after: float | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried up to `retries` times while it fails transiently and the wait it
    would need is at most `give_up_after` seconds; the last failure is raised as it was."""
    def worth_retrying(exc: BaseException) -> bool:
        if classify(exc) is not Resolution.TRANSIENT:
            return False
        asked = getattr(exc, "retry_after", None)
        return give_up_after is None or asked is None or asked <= give_up_after

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff(state.attempt_number - 1, exc, base=base, cap=cap, asked_cap=asked_cap)

    retrying = Retrying(stop=stop_after_attempt(retries + 1), wait=wait, sleep=sleep,
                        retry=retry_if_exception(worth_retrying), reraise=True)
    return retrying(call)
