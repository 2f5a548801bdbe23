"""What every HTTP request to the API passes through before any route sees it.

- `BodyLimit`: a body is counted while it streams in; past the limit (1 MiB for webhooks,
  less elsewhere) the request ends with 413 before the rest is read, and a body that trickles
  in slower than the deadline ends with 408. A declared Content-Length over the limit is
  refused before a byte is read.
- `SecurityHeaders`: nosniff, a restrictive Content-Security-Policy with frame-ancestors
  'none' (the pages': their own scripts, styles and media only, forms posted only to the
  app), no referrer, and no caching of sign-in answers, on every response.
- `redact_access_log`: OAuth `code` and `state` (and any token) never reach the access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

WEBHOOK_BODY = 1 << 20
API_BODY = 256 << 10
BODY_DEADLINE_S = 30.0

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI, served from here: its script and styles, nothing from elsewhere.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")

# The app's pages: their own scripts, styles and recordings, forms posted only here; style
# attributes (heatmap colours, interval bars) are the one inline thing allowed.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
            "style-src-attr 'unsafe-inline'; img-src 'self' data:; media-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def csp_for(path: str) -> str:
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_CSP
    if path in ("/", "/app") or path.startswith(("/app/", "/static/")):
        return PAGE_CSP
    return API_CSP


# BaseException, not Exception: the framework turns any Exception raised while it reads a
# JSON body into its own 400, and these must reach BodyLimit to become 413 and 408.
class _TooLarge(BaseException):
    pass


class _TooSlow(BaseException):
    pass


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def body_limit_for(path: str) -> int:
    return WEBHOOK_BODY if path.startswith("/webhooks/") else API_BODY


class BodyLimit:
    """Cap every request body while it streams, and give it a deadline."""

    def __init__(self, app, *, limit_for: Callable[[str], int] = body_limit_for,
                 deadline_s: float | None = None):
        self.app = app
        self.limit_for = limit_for
        self.deadline_s = BODY_DEADLINE_S if deadline_s is None else deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "bad_request", "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, "too_large", f"body larger than {limit} bytes")
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        seen = 0
        started = False

        async def limited() -> dict:
            nonlocal seen
            left = deadline - loop.time()
            if left <= 0:
                raise _TooSlow
            try:
                message = await asyncio.wait_for(receive(), left)
            except asyncio.TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body") or b"")
                if seen > limit:
                    raise _TooLarge
            return message

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except _TooLarge:
            if not started:
                await _answer(send, 413, "too_large", f"body larger than {limit} bytes")
        except _TooSlow:
            if not started:
                await _answer(send, 408, "too_slow",
                              f"the body did not arrive within {self.deadline_s:g} s")


class SecurityHeaders:
    """Add the headers every response should carry."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = csp_for(path)

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _OURS]
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"content-security-policy", csp.encode()),
                            (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"no-referrer")]
                if path.startswith(("/auth/", "/connect/")):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_OURS = {b"x-content-type-options", b"content-security-policy", b"x-frame-options",
         b"referrer-policy"}
_SECRET_PARAMS = re.compile(r"(?i)([?&](?:code|state|token|access_token|refresh_token|"
                            r"download_access_token|password)=)[^&\s\"]*")


def redacted(text: str) -> str:
    """`text` with the values of secret-bearing query parameters replaced."""
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class _RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redacted(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redacted(record.msg)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())
