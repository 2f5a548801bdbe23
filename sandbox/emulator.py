"""What the emulators built on one pattern share: a settable clock, a count of requests per
endpoint key ("GET /v1.0/users"), scripted faults and rate limits on those keys, and serving
over HTTPS on loopback. Each emulator turns a due fault into its vendor's own error shape."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


class Emulator:
    """Subclasses set `endpoints` (the keys `fail_next` and `set_rate_limit` take, less
    `unscriptable`) and `rate_window_s`, call `_init_emulator` first in `__init__`, and
    define `create_app()`."""

    endpoints: tuple[str, ...] = ()
    unscriptable: tuple[str, ...] = ()  # endpoints that never fail on purpose
    rate_window_s: float = 60.0
    rate_limit_says_wait = True  # whether a rate-limit 429 carries Retry-After

    def _init_emulator(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.requests: Counter[str] = Counter()
        self.base_url: str | None = None
        self.receiver_ca: str | Path | bool = True  # how the emulator trusts receivers
        self._lock = threading.RLock()
        self._offset = 0.0
        self._scripted: dict[str, deque] = {}
        self._rate_limits: dict[str, int] = {}
        self._hits: dict[str, deque] = {}

    # Clock -------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current time."""
        return datetime.fromtimestamp(self._epoch(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (token, subscription and record expiry)."""
        with self._lock:
            self._offset += seconds

    def _epoch(self) -> float:
        return self.clock() + self._offset

    # Faults ------------------------------------------------------------------

    def fail_next(self, endpoint: str, status: int, times: int = 1,
                  retry_after: int | None = None) -> None:
        """The next `times` requests to `endpoint` (a key of `requests`) fail with `status`
        in the vendor's error shape; 429 and 503 carry Retry-After (seconds) when
        `retry_after` is given."""
        if endpoint not in self.endpoints or endpoint in self.unscriptable:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {self.endpoints}")
        with self._lock:
            self._scripted.setdefault(endpoint, deque()).extend([(status, retry_after)] * times)

    def set_rate_limit(self, endpoint: str, limit: int | None) -> None:
        """At most `limit` requests to `endpoint` per `rate_window_s` of emulator time
        (None: off); beyond it, the vendor's 429."""
        if endpoint not in self.endpoints:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        with self._lock:
            if limit is None:
                self._rate_limits.pop(endpoint, None)
            else:
                self._rate_limits[endpoint] = max(0, int(limit))
            self._hits.pop(endpoint, None)

    def _due_fault(self, endpoint: str, *, faults: bool = True
                   ) -> tuple[int, int | None] | None:
        """Count the request; the (status, Retry-After seconds) it must fail with, if any:
        over the rate limit (429, with the wait until the window frees a slot), or the next
        scripted fault (skipped with `faults` False)."""
        with self._lock:
            self.requests[endpoint] += 1
            limit = self._rate_limits.get(endpoint)
            if limit is not None:
                now = self._epoch()
                hits = self._hits.setdefault(endpoint, deque())
                while hits and hits[0] <= now - self.rate_window_s:
                    hits.popleft()
                if len(hits) >= limit:
                    wait = math.ceil(hits[0] + self.rate_window_s - now) if hits else 1
                    return 429, max(1, wait) if self.rate_limit_says_wait else None
                hits.append(now)
            scripted = self._scripted.get(endpoint)
            if faults and scripted:
                return scripted.popleft()
        return None

    # Serving -----------------------------------------------------------------

    def create_app(self):
        raise NotImplementedError

    def start(self, tls, *, port: int = 0):
        """Serve over HTTPS on loopback (sandbox.server.serve); remembers the base URL, and
        trusts `tls`'s CA when calling receivers."""
        from sandbox.server import serve

        running = serve(self.create_app(), tls, port=port)
        self.base_url = running.url
        if tls is not None and self.receiver_ca is True:
            self.receiver_ca = tls.ca_path
        return running


def ranged(data: bytes, media_type: str, header: str | None):
    """A download honouring one `Range: bytes=` range (206, or 416 when unsatisfiable), as
    the vendors' content endpoints do."""
    from fastapi.responses import Response

    size = len(data)
    found = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not found or (found.group(1) == "" and found.group(2) == ""):
        return Response(data, media_type=media_type, headers={"Accept-Ranges": "bytes"})
    first, last = found.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last) if last else size - 1)
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers={"Content-Range": f"bytes {start}-{end}/{size}",
                             "Accept-Ranges": "bytes"})
