"""The one retry helper: what a vendor asks for, what we wait otherwise, and when we stop."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import CoachloopError, TransientError
from core.retry import backoff, call_with_retries, retry_after

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": "Tue, 01 Dec 2026 12:00:30 GMT"}, 30.0),  # an HTTP date
    ({"Retry-After": "2026-12-01T12:01:00Z"}, 60.0),  # Zoom's daily limits: an ISO time
    ({"Retry-After": "2026-12-01T11:00:00Z"}, 0.0),  # in the past: now
    ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # OpenAI-compatible servers
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after_reads_every_form_vendors_send(headers, expected):
    assert retry_after(headers, NOW) == expected


def test_backoff_doubles_with_jitter_and_honours_what_the_vendor_asked():
    for attempt, floor in enumerate((1.0, 2.0, 4.0, 8.0)):
        waits = {backoff(attempt, None, base=1.0, cap=60.0) for _ in range(20)}
        assert all(floor <= w <= floor + 1.0 for w in waits) and len(waits) > 1
    assert backoff(10, None, base=1.0, cap=60.0) == 60.0
    asked = TransientError("busy", retry_after=3600)
    assert backoff(0, asked, base=1.0, cap=60.0) == 3600  # a quota pause: until it ends
    assert backoff(0, asked, base=1.0, cap=60.0, asked_cap=30.0) == 30.0


def test_call_with_retries_stops_at_the_limit_and_at_what_is_not_transient():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503")
        return "ok"

    assert call_with_retries(flaky, retries=2, base=0.1, cap=1.0, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2

    def broken():
        calls.append(1)
        raise TransientError("down")

    calls.clear()
    with pytest.raises(TransientError, match="down"):
        call_with_retries(broken, retries=3, base=0.1, cap=1.0, sleep=sleeps.append)
    assert len(calls) == 4

    def refused():
        calls.append(1)
        raise CoachloopError("no such field")

    calls.clear()
    with pytest.raises(CoachloopError, match="no such field"):
        call_with_retries(refused, retries=3, base=0.1, cap=1.0, sleep=sleeps.append)
    assert len(calls) == 1


def test_a_long_wait_is_left_to_the_task_queue():
    """Inline retries are for brief trouble: a vendor asking for minutes gets the error back
    at once (the worker re-queues the task with that countdown, holding no process)."""
    calls, sleeps = [], []

    def limited():
        calls.append(1)
        raise TransientError("daily limit", retry_after=900)

    with pytest.raises(TransientError):
        call_with_retries(limited, retries=3, base=0.1, cap=10.0, give_up_after=10.0,
                          sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []


def test_an_error_table_merges_a_vendors_rules_over_the_shared_ones():
    """A vendor's own codes come first; 429, 5xx and 404 mean the same for every vendor;
    anything else fails, saying what the vendor said."""
    from core.errors import ErrorRule, ErrorTable, NotFound, Resolution, classify

    class Scope(CoachloopError):
        pass

    table = ErrorTable("Acme", (ErrorRule(code=4711, error=Scope, message="scope: {message}"),
                                ErrorRule(code="LOCKED", error=TransientError,
                                          message="busy ({code})", retry_after=2.0)))
    assert isinstance(table.error(400, 4711, "needs x:admin"), Scope)
    assert str(table.error(400, 4711, "needs x:admin")) == "scope: needs x:admin"
    locked = table.error(409, "LOCKED")
    assert isinstance(locked, TransientError) and locked.retry_after == 2.0
    assert table.error(409, "LOCKED", retry_after=5.0).retry_after == 5.0  # the header wins
    limited = table.error(429, retry_after=30.0)
    assert classify(limited) is Resolution.TRANSIENT and limited.retry_after == 30.0
    assert str(table.error(503)) == "Acme is unavailable (HTTP 503)"
    assert isinstance(table.error(404, message="no such meeting"), NotFound)
    other = table.error(422, "BAD", "field x is wrong")
    assert classify(other) is Resolution.TERMINAL and "field x is wrong" in str(other)
