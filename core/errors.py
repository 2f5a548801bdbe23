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
