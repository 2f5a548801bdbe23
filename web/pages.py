"""The app's pages: server-rendered HTML over the same read models, roles and scopes as the
JSON API. Every page declares one policy, like every API route; a page asked for without a
sign-in sends the browser to the sign-in form, and an error is a page that says what went
wrong, never a traceback.

The sign-in form is protected against login CSRF by a double-submit token: a random value
in an HttpOnly, SameSite=Strict cookie scoped to the form's path, echoed by the form.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from core.access import Policy
from core.errors import CoachloopError, Forbidden, NotFound, Unauthenticated, user_message

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
FORM_COOKIE = "coachloop_form"
HOME = Policy("home", public_because="a redirect only: no data")
ASSETS = Policy("assets", public_because="the app's own stylesheet: no data")
STATIC = {"app.css": "text/css; charset=utf-8"}


class SignInFirst(Exception):
    """A page was asked for without a sign-in: the browser goes to the form, then back."""

    def __init__(self, next_path: str):
        self.next_path = next_path


class PageRefused(Exception):
    """Signed in, but this page is not for this role: a page that says so (403)."""

    def __init__(self, message: str):
        self.message = message


def _colour(score: float) -> str:
    """A heatmap cell: red (low) to green (high), light enough for dark text (WCAG AA)."""
    hue = max(0.0, min(100.0, score)) * 1.2
    return f"hsl({hue:.0f}, 65%, 82%)"


def _labels() -> dict[str, str]:
    from core.skill_taxonomy import SKILLS

    return {key: skill.label for key, skill in SKILLS.items()} | {
        "talk_listen_balance": "Talk/listen balance"}


def _secret_setting(vendor) -> str:
    """The setting that holds the secret a vendor signs its webhooks with (its own
    webhook secret where it has one, else the app's client secret, as HubSpot signs)."""
    fields = vendor.load("settings").model_fields if vendor.settings else {}
    name = "webhook_secret_token" if "webhook_secret_token" in fields else "client_secret"
    return f"COACHLOOP_{vendor.name.upper()}__{name.upper()}"


def _safe_next(value: str | None) -> str:
    """Only a path of this app: never another site (an open redirect)."""
    if value and value.startswith("/app") and not value.startswith("//"):
        return value
    return "/app"


def install(app: FastAPI, *, require: Callable, session_dependency: Callable,
            signed_in: Callable, policies) -> None:
    """Add the pages and their error handling to the API's app. `require`: the API's policy
    dependency; `signed_in(response, token, csrf)`: sets the session cookies."""

    def page(policy: Policy):
        inner = require(policy)

        def dependency(request: Request, session: Session = Depends(session_dependency)):
            try:
                return inner(request, session)
            except Unauthenticated:
                raise SignInFirst(request.url.path + (f"?{request.url.query}"
                                                      if request.url.query else "")) from None
            except Forbidden as exc:
                raise PageRefused(exc.message) from None

        dependency.policy = policy  # type: ignore[attr-defined]  # one policy per route
        return dependency

    def render(request: Request, name: str, access, session: Session, status: int = 200,
               **context):
        """A page with the signed-in person in its header (a token has none)."""
        from core.models import User

        me = None
        if access.principal.user_id is not None:
            user = session.get(User, access.principal.user_id)
            me = {"email": user.email, "name": user.name, "role": user.role}
        return TEMPLATES.TemplateResponse(request, name, {"me": me, "labels": _labels(),
                                                          "colour": _colour, **context},
                                          status_code=status)

    def failed(request: Request, access, session: Session, exc: CoachloopError):
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) \
            else 400
        title = {404: "Not found", 403: "Not allowed"}.get(status, "Something is wrong")
        return render(request, "error.html", access, session, status, title=title,
                      message=user_message(exc))

    @app.exception_handler(SignInFirst)
    async def sign_in_first(_: Request, exc: SignInFirst):
        return RedirectResponse(f"/app/sign-in?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(PageRefused)
    async def refused(request: Request, exc: PageRefused):
        return TEMPLATES.TemplateResponse(request, "error.html", {
            "me": None, "title": "Not allowed", "message": exc.message}, status_code=403)

    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def home(_: None = Depends(require(HOME))):
        return RedirectResponse("/app", status_code=303)

    @router.get("/static/{name}")
    def static(name: str, _: None = Depends(require(ASSETS))):
        if name not in STATIC:
            raise NotFound(f"no asset {name!r}")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/app/sign-in", response_class=HTMLResponse)
    def sign_in_form(request: Request, next: str | None = None,
                     _: None = Depends(require(policies.SIGN_IN))):
        return _form(request, next, "", "", 200)

    def _form(request: Request, next_path: str | None, email: str, error: str, status: int):
        token = secrets.token_urlsafe(24)
        response = TEMPLATES.TemplateResponse(request, "sign_in.html", {
            "me": None, "form_token": token, "next": _safe_next(next_path), "email": email,
            "error": error}, status_code=status)
        response.set_cookie(FORM_COOKIE, token, max_age=1800, httponly=True, samesite="strict",
                            path="/app/sign-in")
        return response

    @router.post("/app/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request, session: Session = Depends(session_dependency),
                      _: None = Depends(require(policies.SIGN_IN))):
        from core.auth import check_password, start_session

        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(
            "utf-8", "replace")).items()}
        email, next_path = form.get("email", "")[:320], form.get("next")
        token = request.cookies.get(FORM_COOKIE, "")
        if not token or not secrets.compare_digest(token, form.get("form_token", "")):
            return _form(request, next_path, email, "The form expired: sign in again.", 400)
        try:
            user = check_password(session, email, form.get("password", "")[:1024])
        except CoachloopError as exc:
            return _form(request, next_path, email, user_message(exc), 401)
        _, secret, csrf = start_session(session, user)
        session.commit()
        response = RedirectResponse(_safe_next(next_path), status_code=303)
        signed_in(response, secret, csrf)
        response.delete_cookie(FORM_COOKIE, path="/app/sign-in")
        return response

    @router.get("/app")
    def start(access=Depends(page(policies.MEMBER_READ))):
        if access.principal.role in ("manager", "admin") and access.principal.via == "session":
            return RedirectResponse("/app/team", status_code=303)
        if access.principal.email:
            return RedirectResponse(f"/app/reps/{quote(access.principal.email, safe='@')}",
                                    status_code=303)
        return RedirectResponse("/app/team", status_code=303)

    @router.get("/app/team", response_class=HTMLResponse)
    def team(request: Request, window: int = 90, session: Session = Depends(session_dependency),
             access=Depends(page(policies.TEAM_READ))):
        from core import reports

        window = window if window in (30, 60, 90) else 90
        table = reports.team_table(session, access.scope, window_days=window)
        return render(request, "team.html", access, session, team=table)

    @router.get("/app/reps/{email}", response_class=HTMLResponse)
    def rep(request: Request, email: str, window: int = 90,
            session: Session = Depends(session_dependency),
            access=Depends(page(policies.MEMBER_READ))):
        from core import reports
        from core.agenda import coaching_agenda
        from core.settings import get_settings

        window = window if window in (30, 60, 90) else 90
        try:
            card = reports.rep_scorecard(session, access.scope, email, window_days=window)
        except CoachloopError as exc:
            return failed(request, access, session, exc)
        settings = get_settings()
        agenda = coaching_agenda(session, access.scope, email,
                                 as_of=card.as_of or datetime.now(timezone.utc).date(),
                                 window_days=window, min_calls=settings.skills.min_calls,
                                 public_url=settings.public_url)
        return render(request, "rep.html", access, session, card=card, agenda=agenda)

    @router.get("/app/meetings/{meeting_id}", response_class=HTMLResponse)
    def meeting(request: Request, meeting_id: int, t: int | None = None,
                session: Session = Depends(session_dependency),
                access=Depends(page(policies.MEMBER_READ))):
        """A call: participants, scores with rationale and evidence linked into the
        transcript, deal facts. `t`: the second to show (the agenda's links)."""
        from core import reports

        try:
            detail = reports.meeting_detail(session, access.scope, meeting_id)
        except CoachloopError as exc:
            return failed(request, access, session, exc)
        quoted = {e.segment_id for cs in detail.call_scores for c in cs.criteria
                  for e in c.evidence}
        moment = next((seg.id for seg in detail.segments if t is not None and seg.end >= t),
                      None)
        return render(request, "meeting.html", access, session, m=detail, quoted=quoted,
                      t=t, moment=moment)

    @router.get("/app/connections", response_class=HTMLResponse)
    def connections(request: Request, connected: str | None = None,
                    session: Session = Depends(session_dependency),
                    access=Depends(page(policies.ADMIN_READ))):
        """Every vendor that connects with OAuth: its connection checked live, a button to
        connect or replace it, and the webhook addresses to give the vendors."""
        from connectors.oauth_apps import check_connections, oauth_provider
        from core.settings import get_settings
        from core.vendors import with_a
        from webhooks.router import configured_receivers

        settings = get_settings()
        health = {h.provider: h for h in check_connections(access.org_id, settings)
                  if h.status not in ("disconnected", "replaced")}
        vendors = []
        for vendor in with_a("oauth"):
            problem = None
            try:
                oauth_provider(vendor.name, settings)
            except CoachloopError as exc:
                problem = user_message(exc)
            vendors.append({"name": vendor.name, "label": vendor.label,
                            "health": health.get(vendor.name), "problem": problem})
        receivers = configured_receivers(settings)
        base = settings.public_url.rstrip("/")
        hooks = [{"label": v.label, "url": f"{base}/webhooks/{v.name}",
                  "setting": _secret_setting(v), "configured": v.name in receivers}
                 for v in with_a("webhooks")]
        known = {v["name"] for v in vendors}
        return render(request, "connections.html", access, session, vendors=vendors,
                      webhooks=hooks, connected=connected if connected in known else None)

    app.include_router(router)
