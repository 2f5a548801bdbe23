"""HTTP API (FastAPI): sign-in, meetings with transcripts and evidence, reps and their skills,
the CRM review queue, connections.

Run with `uvicorn api:app`. Every route declares one policy (`core.access`) through `require`,
the one dependency that authenticates (session cookie or API token), checks role or token
scope and CSRF, and hands the handler an `Access` whose scope the read models apply. Errors
are JSON `{"error": {"code", "message"}}`; internals and tracebacks stay in the server log.
"""

from __future__ import annotations

import logging
import queue
from contextlib import asynccontextmanager
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from datetime import date
from typing import Literal

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, model_validator
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import reports
from core.db import get_engine
from core import access as policies
from core.access import Policy, Scope, scope_for
from core.auth import Principal
from core.errors import (CoachloopError, ConfigError, Forbidden, InputError, NotFound,
                         Unauthenticated, user_message)
from core.settings import get_settings
from webhooks.base import WebhookRejected
from webhooks.relay import OutboxRelay
from webhooks.router import make_router

log = logging.getLogger("coachloop.api")


def _session() -> Iterator[Session]:
    with Session(get_engine()) as session:
        yield session


SESSION_COOKIE = "coachloop_session"
CSRF_COOKIE = "coachloop_csrf"
SSO_COOKIE = "coachloop_sso"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Access:
    """Who is calling and what they may see (None for a public route)."""

    principal: Principal
    scope: Scope

    @property
    def org_id(self) -> int:
        return self.scope.org_id


def _authenticate(request: Request, session: Session) -> Principal | None:
    from core.auth import session_principal, token_principal

    header = request.headers.get("authorization", "")
    if header:
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("send an API token as `Authorization: Bearer <token>`")
        principal = token_principal(session, secret.strip())
        if principal is None:
            raise Unauthenticated("that API token is unknown or revoked")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = session_principal(session, cookie)
        if found is None:
            raise Unauthenticated("your session has ended: sign in again")
        principal, row = found
        if request.method not in _SAFE_METHODS:
            from core.auth import same_secret

            # A page's form carries the token as a field (read before this, see web.pages).
            sent = request.headers.get(CSRF_HEADER) or getattr(request.state, "form_csrf", None)
            if not same_secret(sent, row.csrf_hash):
                raise Forbidden(f"missing or wrong CSRF token: send the {CSRF_COOKIE} "
                                f"cookie's value in the X-CSRF-Token header")
        return principal
    return None


def require(policy: Policy):
    """The one dependency every route declares: who may call it, and what they see."""
    if policy.public:
        async def open_to_all() -> None:  # no session, no thread: webhooks arrive by the 1,000
            return None

        open_to_all.policy = policy  # type: ignore[attr-defined]
        return open_to_all

    def dependency(request: Request, session: Session = Depends(_session)) -> Access:
        principal = _authenticate(request, session)
        if principal is None:
            raise Unauthenticated("sign in (POST /auth/login) or send an API token")
        if not policy.allows(principal):
            who = "this API token lacks" if principal.via == "token" else \
                "your role does not have"
            raise Forbidden(f"{who} the access this needs ({policy.name})")
        return Access(principal, scope_for(session, principal))

    dependency.policy = policy  # type: ignore[attr-defined]  # read by tests/test_access.py
    return dependency


def policy_of(route) -> list[Policy]:
    """The policies a route declares (exactly one, for every route we serve)."""
    found, stack = [], [route.dependant]
    while stack:
        dependant = stack.pop()
        policy = getattr(dependant.call, "policy", None)
        if isinstance(policy, Policy):
            found.append(policy)
        stack.extend(dependant.dependencies)
    return found


_local_events: queue.Queue[int] = queue.Queue()
_local_worker: threading.Thread | None = None
_local_lock = threading.Lock()


def _process_local_events() -> None:
    import worker

    while True:
        event_id = _local_events.get()
        try:
            worker.handle_webhook.delay(event_id)
        except Exception:  # recorded on the event and the meetings; keep serving the queue
            log.exception("webhook event %s failed", event_id)
        finally:
            _local_events.task_done()


def _publish_webhook(event_id: int) -> None:
    import worker

    worker.handle_webhook.delay(event_id)


_relay = OutboxRelay(_publish_webhook)


def _enqueue_webhook(event_id: int) -> None:
    """Hand a stored event to the workers. With a broker, by waking the outbox relay (the
    request never waits on the broker). In process, to one background thread that takes
    events in order, so the vendor gets its 2xx at once and calls are transcribed one at a
    time (the event is stored first, so a crash before processing loses nothing)."""
    global _local_worker

    if not get_settings().runs_in_process:
        _relay.wake()
        return
    with _local_lock:
        if _local_worker is None or not _local_worker.is_alive():
            _local_worker = threading.Thread(target=_process_local_events, name="webhooks",
                                             daemon=True)
            _local_worker.start()
    _local_events.put(event_id)


def _adopt_waiting_events(info) -> int:
    """Events that came before this account was connected are processed now."""
    from core.db import session_scope
    from core.webhook_events import adopt_orphans

    with session_scope() as session:
        ids = adopt_orphans(session, info.org_id, info.provider, info.account_ref or None)
    for event_id in ids:
        _enqueue_webhook(event_id)
    return len(ids)


def wait_for_local_events() -> None:
    """Block until the in-process webhook queue is empty (the demo and tests use it)."""
    _local_events.join()


class ReviewDecision(BaseModel):
    """A reviewer's decision on queued CRM values (the audit names the signed-in reviewer)."""

    action: Literal["approve", "reject", "edit"]
    ids: list[int] | None = Field(None, description="proposal ids; none: every pending one "
                                  "(of `deal`, when given)")
    deal: str | None = None
    all: bool = Field(False, description="every pending value you may review: only when "
                      "neither ids nor deal is given")
    value: str | None = Field(None, description="edit: the value to write instead")

    @model_validator(mode="after")
    def _says_which(self):
        if self.ids is None and self.deal is None and not self.all:
            raise ValueError("say which values: ids, a deal, or all: true")
        return self


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


class Login(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    org: str | None = Field(None, max_length=200, description="only when the e-mail has "
                            "accounts in several orgs")


class Acceptance(BaseModel):
    token: str = Field(min_length=10, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class InvitationRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["rep", "manager", "admin"] = "rep"
    name: str | None = Field(None, max_length=200)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["read", "review", "admin"]] = Field(min_length=1)


# Most specific first: how each of our errors shows over HTTP.
_STATUS_OF = ((NotFound, 404, "not_found"), (InputError, 422, "bad_input"),
              (Unauthenticated, 401, "unauthenticated"), (Forbidden, 403, "forbidden"),
              (ConfigError, 503, "misconfigured"), (CoachloopError, 500, "error"))


def _sso_configured(settings) -> None:
    from core import sso

    if not sso.configured(settings):
        raise NotFound("single sign-on is not set up here: sign in with a password "
                       "(POST /auth/login)")


def _secure_cookies() -> bool:
    """Cookies are Secure except on a plain-HTTP loopback address (a first local run)."""
    from urllib.parse import urlparse

    url = urlparse(get_settings().public_url)
    return url.scheme == "https" or url.hostname not in ("127.0.0.1", "localhost", "::1")


def _signed_in(response: Response, token: str, csrf: str) -> None:
    from core.auth import SESSION_TTL

    secure = _secure_cookies()
    age = int(SESSION_TTL.total_seconds())
    response.set_cookie(SESSION_COOKIE, token, max_age=age, httponly=True, secure=secure,
                        samesite="lax", path="/")
    # Readable by the page, which echoes it in X-CSRF-Token; useless to another site.
    response.set_cookie(CSRF_COOKIE, csrf, max_age=age, httponly=False, secure=secure,
                        samesite="strict", path="/")


def _me(access: Access) -> dict:
    p = access.principal
    return {"email": p.email, "role": p.role, "org_id": p.org_id, "via": p.via,
            "scopes": sorted(p.scopes) if p.via == "token" else None}


def _auth_routes(app: FastAPI) -> None:
    """Sign-in with a local account, invitations, sessions and API tokens."""

    @app.post("/auth/login", tags=["auth"])
    def login(body: Login, response: Response, session: Session = Depends(_session),
              _: None = Depends(require(policies.SIGN_IN))) -> dict:
        """Sign in with e-mail and password: sets the session cookie (HttpOnly) and the CSRF
        cookie whose value state-changing requests echo in X-CSRF-Token."""
        from core.auth import check_password, start_session

        user = check_password(session, body.email, body.password, org=body.org)
        row, token, csrf = start_session(session, user)
        session.commit()
        _signed_in(response, token, csrf)
        return {"email": user.email, "role": user.role, "org_id": user.org_id,
                "csrf_token": csrf}

    @app.get("/auth/oidc/login", tags=["auth"], status_code=302)
    def sso_login(session: Session = Depends(_session),
                  _: None = Depends(require(policies.SIGN_IN))):
        """Sign in with the company's identity provider: redirects there (PKCE, nonce)."""
        from core import sso
        from core.crypto import cipher_from_settings

        settings = get_settings()
        _sso_configured(settings)
        started = sso.start(session, settings, cipher_from_settings(settings))
        session.commit()
        response = RedirectResponse(started.url, status_code=302)
        # Binds the sign-in to this browser; Lax, so it comes back on the issuer's redirect.
        response.set_cookie(SSO_COOKIE, started.state, max_age=int(sso.SIGN_IN_TTL
                                                                  .total_seconds()),
                            httponly=True, secure=_secure_cookies(), samesite="lax",
                            path="/auth/oidc")
        return response

    @app.get("/auth/oidc/callback", tags=["auth"])
    def sso_callback(request: Request, response: Response, code: str | None = None,
                     state: str | None = None, error: str | None = None,
                     error_description: str | None = None,
                     session: Session = Depends(_session),
                     _: None = Depends(require(policies.SIGN_IN))) -> dict:
        """Where the identity provider sends the person back: checks the ID token, signs in."""
        from core import sso
        from core.auth import AuthFailed, start_session
        from core.crypto import cipher_from_settings

        settings = get_settings()
        _sso_configured(settings)
        if error:
            raise AuthFailed(f"sign-in was not completed: {error_description or error}")
        if not code or not state or len(code) > 2048 or len(state) > 512:
            raise InputError("the callback carries no code and state: start again")
        user = sso.finish(session, settings, cipher_from_settings(settings), code=code,
                          state=state, browser_state=request.cookies.get(SSO_COOKIE))
        row, token, csrf = start_session(session, user, via="oidc")
        session.commit()
        _signed_in(response, token, csrf)
        response.delete_cookie(SSO_COOKIE, path="/auth/oidc")
        return {"email": user.email, "role": user.role, "org_id": user.org_id,
                "csrf_token": csrf, "via": "oidc"}

    @app.post("/auth/accept", tags=["auth"])
    def accept(body: Acceptance, response: Response, session: Session = Depends(_session),
               _: None = Depends(require(policies.SIGN_IN))) -> dict:
        """Accept an invitation: set a password (once, before the link expires); signs in."""
        from core.auth import accept_invitation, start_session

        user = accept_invitation(session, body.token, body.password)
        row, token, csrf = start_session(session, user)
        session.commit()
        _signed_in(response, token, csrf)
        return {"email": user.email, "role": user.role, "org_id": user.org_id,
                "csrf_token": csrf}

    @app.post("/auth/logout", tags=["auth"])
    def logout(response: Response, session: Session = Depends(_session),
               access: Access = Depends(require(policies.SIGNED_IN))) -> dict:
        """End this browser session (here, not only in the browser)."""
        from core.auth import end_session

        if access.principal.session_id is not None:
            end_session(session, access.principal.session_id)
            session.commit()
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return {"signed_out": True}

    @app.get("/auth/me", tags=["auth"])
    def me(access: Access = Depends(require(policies.SIGNED_IN))) -> dict:
        """Who this request acts as."""
        return _me(access)

    @app.post("/auth/invitations", tags=["auth"], status_code=201)
    def invitation(body: InvitationRequest, session: Session = Depends(_session),
                   access: Access = Depends(require(policies.ADMIN))) -> dict:
        """Invite someone to sign in with a password (admins). The link is shown once and
        expires."""
        from core.auth import invite

        row, secret = invite(session, access.org_id, body.email, name=body.name,
                             role=body.role, by=access.principal.name)
        session.commit()
        return {"email": body.email.strip().lower(), "expires_at": row.expires_at.isoformat(),
                "link": f"{get_settings().public_url.rstrip('/')}/auth/accept#{secret}",
                "token": secret}

    @app.get("/auth/tokens", tags=["auth"])
    def tokens(session: Session = Depends(_session),
               access: Access = Depends(require(policies.ADMIN))) -> list[dict]:
        """The org's API tokens (never their secrets)."""
        from core.auth import list_tokens

        return [{"id": t.id, "name": t.name, "prefix": t.prefix, "scopes": t.scopes,
                 "created_by": t.created_by, "created_at": t.created_at.isoformat(),
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                 "revoked": t.revoked_at is not None} for t in list_tokens(session,
                                                                          access.org_id)]

    @app.post("/auth/tokens", tags=["auth"], status_code=201)
    def new_token(body: TokenRequest, session: Session = Depends(_session),
                  access: Access = Depends(require(policies.ADMIN))) -> dict:
        """Create an API token (admins). Its secret is in this answer only."""
        from core.auth import create_token

        row, secret = create_token(session, access.org_id, body.name, list(body.scopes),
                                   by=access.principal.name)
        session.commit()
        return {"id": row.id, "name": row.name, "scopes": row.scopes, "token": secret}

    @app.delete("/auth/tokens/{token_id}", tags=["auth"])
    def revoke(token_id: int = Path(..., ge=1, le=2**62), session: Session = Depends(_session),
               access: Access = Depends(require(policies.ADMIN))) -> dict:
        """Revoke an API token: it stops working at once."""
        from core.auth import revoke_token

        row = revoke_token(session, access.org_id, token_id)
        session.commit()
        return {"id": row.id, "revoked": True}


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coachloop API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script></body></html>"""
_DOCS_START = ('SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", '
               'deepLinking: true, withCredentials: true});')
_DOCS_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}


@lru_cache(maxsize=None)
def _docs_asset_bytes(name: str) -> bytes:
    from swagger_ui_bundle import swagger_ui_path

    return (swagger_ui_path / name).read_bytes()


def _docs_routes(app: FastAPI) -> None:
    """The OpenAPI description and its Swagger UI, all served from here (no CDN)."""
    from fastapi.responses import HTMLResponse

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: None = Depends(require(policies.DOCS))) -> dict:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(_: None = Depends(require(policies.DOCS))):
        return HTMLResponse(_DOCS_PAGE)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str, _: None = Depends(require(policies.DOCS))):
        if name == "start.js":
            return Response(_DOCS_START, media_type="text/javascript")
        if name not in _DOCS_ASSETS:
            raise NotFound(f"no docs asset {name!r}")
        return Response(_docs_asset_bytes(name), media_type=_DOCS_ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


def create_app() -> FastAPI:
    """The application with its routers and error handlers."""
    # The default docs routes would answer without a policy and load Swagger UI from a CDN:
    # ours serve the same UI from the installed package, under a declared policy.
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if not get_settings().runs_in_process:
            _relay.wake()  # events a stopped API process stored but did not relay
        yield

    app = FastAPI(title="coachloop", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan,
                  description="Sales calls in; scored calls, evidence and rep skills out.")

    from core.http_guards import BodyLimit, SecurityHeaders, redact_access_log
    from core.settings import private_data_dir

    private_data_dir(get_settings().data_dir)

    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so every answer has them
    redact_access_log()

    @app.exception_handler(WebhookRejected)
    async def rejected(_: Request, exc: WebhookRejected):
        return _error(exc.status, "rejected", exc.message)

    @app.exception_handler(CoachloopError)
    async def ours(_: Request, exc: CoachloopError):
        status, code = next((status, code) for kind, status, code in _STATUS_OF
                            if isinstance(exc, kind))
        response = _error(status, code, exc.message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="coachloop"'
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal", user_message(exc))

    app.include_router(make_router(enqueue=_enqueue_webhook,
                                   policy=require(policies.WEBHOOK)))
    _docs_routes(app)
    _auth_routes(app)
    from web.pages import install as install_pages

    install_pages(app, require=require, session_dependency=_session, signed_in=_signed_in,
                  policies=policies, csrf_cookie=CSRF_COOKIE)

    @app.get("/health", tags=["ops"])
    def health(session: Session = Depends(_session),
               _: None = Depends(require(policies.HEALTH))) -> dict:
        """Liveness plus a database round trip."""
        from sqlalchemy import text

        session.exec(text("SELECT 1"))
        return {"status": "ok", "database": "ok",
                "tasks": "in-process" if get_settings().runs_in_process else "celery"}

    @app.get("/connect/{provider}", tags=["connections"], status_code=302)
    def connect(provider: str, access: Access = Depends(require(policies.ADMIN))):
        """Start connecting a vendor account (admins): redirects to the vendor's consent
        page."""
        from connectors.oauth_apps import start_connect

        return RedirectResponse(start_connect(provider, access.org_id, get_settings()),
                                status_code=302)

    @app.get("/connect/{provider}/callback", tags=["connections"])
    def connect_callback(request: Request, provider: str, code: str | None = None,
                         state: str | None = None, error: str | None = None,
                         error_description: str | None = None, tenant: str | None = None,
                         _: None = Depends(require(policies.OAUTH_CALLBACK))):
        """Where the vendor sends the admin back: exchanges the code, stores the connection."""
        from connectors.oauth_apps import end_connections, oauth_provider
        from core.connections import finish_connect
        from core.crypto import cipher_from_settings

        settings = get_settings()
        try:
            oauth = oauth_provider(provider, settings)
        except ConfigError:  # nobody can have started a flow for it: nothing to complete
            raise NotFound(f"no connection flow for {provider!r} is set up here") from None
        if error:
            raise InputError(f"{provider} sign-in was not completed: {error_description or error}")
        granted = tenant if oauth.flow == "admin_consent" else code
        if not granted or not state:
            raise InputError("the callback carries no " + ("tenant" if oauth.flow ==
                             "admin_consent" else "code") + " and state: start the connection "
                             "again")
        replaced = []

        def end_others(org_id: int, keep: int) -> None:
            # Another account's grant is revoked at the vendor, not only forgotten here.
            replaced.extend(end_connections(org_id, provider, settings, status="replaced",
                                            keep=keep))

        info = finish_connect(oauth, code=code, state=state, tenant=tenant,
                              cipher=cipher_from_settings(settings), end_others=end_others)
        waiting = _adopt_waiting_events(info)
        if "text/html" in request.headers.get("accept", ""):  # a browser: back to the page
            return RedirectResponse(f"/app/connections?connected={provider}", status_code=303)
        return {"connected": provider, "connection": asdict(info),
                "replaced": [asdict(e) for e in replaced], "webhook_events_resumed": waiting}

    @app.get("/connections", tags=["connections"])
    def connections(session: Session = Depends(_session),
                    access: Access = Depends(require(policies.ADMIN_READ))) -> list[dict]:
        """The org's vendor connections with their status and last error (never tokens)."""
        from core.connections import list_connections

        return [asdict(c) for c in list_connections(session, access.org_id)]

    @app.get("/crm/review", tags=["crm"])
    def crm_review(deal: str | None = None,
                   status: Literal["pending", "approved", "rejected", "written", "superseded",
                                   "all"] = "pending",
                   session: Session = Depends(_session),
                   access: Access = Depends(require(policies.REVIEW))) -> list[dict]:
        """CRM values waiting for approval (review mode), with current value, evidence quote,
        call and confidence: an admin's whole queue, a rep's own deals."""
        from core.review import queue

        return [p.as_dict() for p in queue(session, access.scope, status=status, deal=deal)]

    @app.post("/crm/review", tags=["crm"])
    def crm_review_decide(decision: ReviewDecision, session: Session = Depends(_session),
                          access: Access = Depends(require(policies.REVIEW))) -> dict:
        """Approve, edit or reject queued values, one by one or in bulk. Approved values are
        written by the next write-back, which records who approved them."""
        from core.review import decide

        from worker import write_approved_now

        done = decide(session, access.scope, decision.ids, decision.action,
                      by=access.principal.name, value=decision.value, deal=decision.deal)
        session.commit()
        sent = write_approved_now(access.org_id) if done and decision.action != "reject" \
            else None
        return {"decided": [p.as_dict() for p in done], "write_back": sent}

    @app.post("/crm/review/{proposal_id}/{action}", tags=["crm"])
    def crm_review_one(proposal_id: int, action: Literal["approve", "reject", "edit"],
                       value: str | None = None, session: Session = Depends(_session),
                       access: Access = Depends(require(policies.REVIEW))) -> dict:
        """Approve, edit (with `value`) or reject one queued value."""
        from core.review import decide

        from worker import write_approved_now

        done = decide(session, access.scope, [proposal_id], action, by=access.principal.name,
                      value=value)
        session.commit()
        sent = write_approved_now(access.org_id) if action != "reject" else None
        return {**done[0].as_dict(), "write_back": sent}

    @app.get("/crm/history", tags=["crm"])
    def crm_history(deal: str | None = None, limit: int = Query(200, ge=1, le=1000),
                    session: Session = Depends(_session),
                    access: Access = Depends(require(policies.REVIEW))) -> list[dict]:
        """Who approved, rejected or wrote which field value, with before and after."""
        from core.review import history

        return [{**asdict(h), "at": h.at.isoformat()}
                for h in history(session, access.scope, deal=deal, limit=limit)]

    @app.get("/meetings", tags=["meetings"], response_model=list[reports.MeetingSummary])
    def meetings(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                 session: Session = Depends(_session),
                 access: Access = Depends(require(policies.MEMBER_READ))):
        """Meetings in your scope, newest first, with their stage and overall scores."""
        return reports.list_meetings(session, access.scope, limit=limit, offset=offset)

    @app.get("/meetings/{meeting_id}", tags=["meetings"], response_model=reports.MeetingDetail)
    def meeting(meeting_id: int = Path(..., ge=1, le=2**62),
                session: Session = Depends(_session),
                access: Access = Depends(require(policies.MEMBER_READ))):
        """One meeting: participants, attributed transcript, scores with evidence, fields."""
        return reports.meeting_detail(session, access.scope, meeting_id)

    @app.get("/reps", tags=["reps"], response_model=list[reports.RepOut])
    def reps(session: Session = Depends(_session),
             access: Access = Depends(require(policies.MEMBER_READ))):
        """The people in your scope (an admin: everyone in the org)."""
        return reports.list_reps(session, access.scope)

    @app.get("/reps/{email}/skills", tags=["reps"], response_model=reports.Scorecard)
    def rep_skills(email: str, as_of: date | None = None,
                   window: int = Query(90, ge=1, le=365),
                   session: Session = Depends(_session),
                   access: Access = Depends(require(policies.MEMBER_READ))):
        """A rep's skill scorecard: estimates with intervals, percentiles, trend, evidence."""
        return reports.rep_scorecard(session, access.scope, email, as_of=as_of,
                                     window_days=window)

    @app.get("/reps/{email}/agenda", tags=["reps"])
    def rep_agenda(email: str, as_of: date | None = None,
                   window: int = Query(90, ge=7, le=365),
                   session: Session = Depends(_session),
                   access: Access = Depends(require(policies.MEMBER_READ))) -> dict:
        """This week's coaching agenda: two skills to work on with moments from the rep's own
        calls, what good looks like, and whether last week's focus is sticking."""
        from dataclasses import asdict as as_dict
        from datetime import datetime, timezone

        from core.agenda import coaching_agenda

        settings = get_settings()
        agenda = coaching_agenda(session, access.scope, email,
                                 as_of=as_of or datetime.now(timezone.utc).date(),
                                 window_days=window, min_calls=settings.skills.min_calls,
                                 public_url=settings.public_url)
        return as_dict(agenda)

    @app.get("/team/skills", tags=["reps"], response_model=reports.TeamTable)
    def team(as_of: date | None = None, window: int = Query(90, ge=1, le=365),
             session: Session = Depends(_session),
             access: Access = Depends(require(policies.TEAM_READ))):
        """Every rep's skills side by side (a manager: their team)."""
        return reports.team_table(session, access.scope, as_of=as_of, window_days=window)

    @app.get("/export/{kind}", tags=["reps"], response_class=Response)
    def export(kind: Literal["skills", "scores", "deals", "fields"],
               format: Literal["csv", "parquet"] = "csv", session: Session = Depends(_session),
               access: Access = Depends(require(policies.MEMBER_READ))):
        """Skills, call scores, deals or methodology fields as CSV or Parquet, in the
        caller's scope (a rep: their own; a manager: their team; an admin: the org), with
        the versioned column schema named in `X-Coachloop-Schema`."""
        from core.exports import export_rows, render, schema_tag

        data = render(kind, export_rows(session, access.scope, kind), format)
        media = "text/csv; charset=utf-8" if format == "csv" else \
            "application/vnd.apache.parquet"
        return Response(data, media_type=media, headers={
            "X-Coachloop-Schema": schema_tag(kind),
            "Content-Disposition": f'attachment; filename="{kind}.{format}"'})

    @app.get("/cohorts", tags=["reps"])
    def cohorts(session: Session = Depends(_session),
                access: Access = Depends(require(policies.TEAM_READ))):
        """Per skill an agenda focused on: the score change 30 and 60 days after a focus
        week for the coached against the other rep-weeks (95 % interval, bootstrap over
        reps), and the coached reps' win rates before and after; insufficient data below
        the stated minimum. Not a randomised trial."""
        from dataclasses import asdict

        from core.cohorts import cohort_report

        return [asdict(c) for c in cohort_report(session, access.scope)]

    @app.get("/outcomes", tags=["reps"])
    def outcomes(segment: Literal["size", "manager"] | None = None,
                 window: int = Query(90, ge=1, le=365), session: Session = Depends(_session),
                 access: Access = Depends(require(policies.TEAM_READ))):
        """Which skills go with won deals (a manager: their team's deals): per skill, win
        rate by thirds and the odds of winning per standard deviation with a 95 % interval,
        deal size (and segment) held equal; *insufficient_data* below the stated minimum.
        Association, not proof."""
        from dataclasses import asdict

        from core.outcomes import cached_outcomes_report

        return asdict(cached_outcomes_report(session, access.scope, segment=segment,
                                              window_days=window))

    return app


app = create_app()
