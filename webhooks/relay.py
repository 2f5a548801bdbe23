"""The outbox relay: stored webhook events handed to the broker, off the request path.

The webhook route only stores the event (that is what the vendor's 2xx promises) and wakes
the relay; the relay publishes every stored, not yet enqueued event and marks it. A broker
that is down or slow costs the vendor nothing and loses nothing: the events wait in the
table and go out when it is back (or when an API process next starts). Several API processes
may each run a relay: events are claimed with one conditional UPDATE, so each is published
once (a crash between claim and publish leaves it for `coachloop webhooks replay`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.db import session_scope
from core.webhook_events import claim_unrelayed, unclaim

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes stored webhook events with `publish(event_id)` in a background thread."""

    def __init__(self, publish: Callable[[int], None], *, interval_s: float = 1.0):
        self._publish = publish
        self._interval = interval_s
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Something was stored: relay it soon (starts the thread on first use)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-relay",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                while self.relay_once() > 0:
                    pass
            except Exception:  # the broker or the database is away: try again soon
                log.exception("webhook relay: will retry")

    def relay_once(self, limit: int = 500) -> int:
        """Publish up to `limit` waiting events; how many went out."""
        with session_scope() as session:
            claimed = claim_unrelayed(session, limit)
        for sent, event_id in enumerate(claimed):
            try:
                self._publish(event_id)
            except Exception:
                log.warning("webhook relay: the broker refused event %s; kept for later",
                            event_id, exc_info=True)
                with session_scope() as session:
                    unclaim(session, claimed[sent:])
                return sent
        return len(claimed)
