"""The one place errors are defined and classified.

Every error carries a message meant for the user (what went wrong, which file/field, what to
do) separate from internal detail. `classify` maps any exception to what the caller should do
with it: retry later, refresh credentials, give up and surface it, or skip the item.
"""

from __future__ import annotations

from enum import StrEnum


class Resolution(StrEnum):
    """What to do about a failure."""

    TRANSIENT = "transient"  # retry with backoff
    AUTH = "auth"  # refresh credentials once, then retry
    TERMINAL = "terminal"  # record, surface to the admin, don't retry
    SKIP = "skip"  # nothing to do for this item; move on


class CoachloopError(Exception):
    """Base error: `message` is safe to show a user; `detail` is for logs only."""

    resolution = Resolution.TERMINAL

    def __init__(self, message: str, *, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail


class InputError(CoachloopError):
    """Bad input from a user or a source: names the file (and line or field) at fault."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, detail: str | None = None):
        where = file or ""
        if line is not None:
            where += f":{line}"
        if field:
            where += f" [{field}]" if where else field
        super().__init__(f"{where}: {message}" if where else message, detail=detail)
        self.file, self.field, self.line = file, field, line


class ConfigError(CoachloopError):
    """A setting is missing or wrong; the message says which and where it was looked for."""


class NotFound(CoachloopError):
    """A requested object does not exist (in this org)."""

    resolution = Resolution.SKIP


class Unauthenticated(CoachloopError):
    """No valid credentials: sign in, or send an API token."""


class Forbidden(CoachloopError):
    """Signed in, but this principal's role or token scope does not allow it."""


class TransientError(CoachloopError):
    """A temporary failure worth retrying (network, lock, rate limit)."""

    resolution = Resolution.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str | None = None):
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


_TRANSIENT_BUILTINS = (TimeoutError, ConnectionError)


def classify(exc: BaseException) -> Resolution:
    """Decide what to do about `exc`: our own errors know; OS-level hiccups are transient."""
    if isinstance(exc, CoachloopError):
        return exc.resolution
    if isinstance(exc, _TRANSIENT_BUILTINS):
        return Resolution.TRANSIENT
    try:  # database connection drops are transient; integrity problems are not
        from sqlalchemy.exc import DisconnectionError, OperationalError

        if isinstance(exc, (OperationalError, DisconnectionError)):
            return Resolution.TRANSIENT
    except ImportError:  # pragma: no cover - sqlalchemy is a hard dependency
        pass
    return Resolution.TERMINAL


def user_message(exc: BaseException) -> str:
    """The text a user may see for `exc`: ours verbatim, anything else without internals."""
    if isinstance(exc, CoachloopError):
        return exc.message
    return f"internal error ({type(exc).__name__}); see the server log for details"


# ------------------------------------------------------------ vendors' HTTP errors ----


class ErrorRule:
    """One line of an error table: which answers it matches (an HTTP status, a range of them,
    and/or the vendor's own error code) and the error they become. `message` may name
    {vendor}, {status}, {code} and {message} (what the vendor said)."""

    def __init__(self, *, error: type[CoachloopError], message: str,
                 status: int | range | None = None, code: object = None,
                 retry_after: float | None = None):
        self.error, self.message, self.status, self.code = error, message, status, code
        self.retry_after = retry_after

    def matches(self, status: int, code: object) -> bool:
        if self.code is not None and code != self.code:
            return False
        if isinstance(self.status, range):
            return status in self.status
        return self.status is None or status == self.status


class ErrorTable:
    """A vendor's answers → our errors, in one table per vendor: its own rules first, then
    the rules every HTTP API shares (429 and 5xx retry, 404 skips, the rest fail and say
    what the vendor said). What each error then means for the caller is `classify`'s."""

    SHARED = (
        ErrorRule(status=429, error=TransientError,
                  message="{vendor}'s rate limit was reached; trying again later"),
        ErrorRule(status=range(500, 600), error=TransientError,
                  message="{vendor} is unavailable (HTTP {status})"),
        ErrorRule(status=404, error=NotFound, message="{vendor}: {message}"),
    )

    def __init__(self, vendor: str, rules: tuple[ErrorRule, ...] = ()):
        self.vendor, self.rules = vendor, tuple(rules) + self.SHARED

    def error(self, status: int, code: object = None, message: str = "", *,
              detail: str | None = None, retry_after: float | None = None) -> CoachloopError:
        """The error for one refused request (`retry_after`: what the vendor's headers
        asked for, which a rule's own wait only stands in for when absent)."""
        for rule in self.rules:
            if rule.matches(status, code):
                text = rule.message.format(vendor=self.vendor, status=status, code=code,
                                           message=message or f"HTTP {status}")
                if issubclass(rule.error, TransientError):
                    wait = retry_after if retry_after is not None else rule.retry_after
                    return rule.error(text, retry_after=wait, detail=detail)
                return rule.error(text, detail=detail)
        return CoachloopError(f"{self.vendor} refused the request: {message or 'no reason'} "
                              f"(HTTP {status}, code {code})", detail=detail)
