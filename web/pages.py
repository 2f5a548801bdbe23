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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session
from starlette.exceptions import HTTPException

from core.access import Policy
from core.auth import ROLES, TOKEN_SCOPES
from core.errors import (
    CoachloopError,
    Forbidden,
    InputError,
    NotFound,
    Unauthenticated,
    user_message,
)

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
FORM_COOKIE = "coachloop_form"
HOME = Policy("home", public_because="a redirect only: no data")
ASSETS = Policy("assets", public_because="the app's own stylesheet and scripts: no data")
STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               "": "text/plain; charset=utf-8"}
FORM_LIMIT = 256 * 1024  # a page's form: a few hundred ids and an edited value at most


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


def _no_form() -> None:
    return None


def _clock(seconds: float | None) -> str:
    """m:ss (h:mm:ss past an hour) for a moment in a call."""
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True)
class PageAccess:
    """A form page's access: who, what they see, and the form they sent."""

    principal: object
    scope: object
    form: dict[str, list[str]]

    @property
    def org_id(self) -> int:
        return self.scope.org_id

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


AUDIO_TYPES = {".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".wav": "audio/wav",
               ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".mp4": "audio/mp4",
               ".webm": "audio/webm", ".flac": "audio/flac"}
WINDOWS = (30, 60, 90)
REVIEW_STATES = ("pending", "approved", "written", "rejected", "superseded", "all")


def _proposal_id(text: str) -> int:
    """A row id from a form (a proposal's, a token's)."""
    if not text.isdigit() or len(text) > 18:
        raise InputError(f"{text[:20]!r} is not an id")
    return int(text)


def _conversation_facts(metrics: dict) -> list[tuple[str, str]]:
    """A call's talk-time metrics in words, leaving out those not known for it."""
    def share(v):
        return f"{v * 100:.0f} %"

    def rate(v):
        return f"{v:.1f} a minute"

    shown = (("talk_ratio", "Rep's share of the talking", share),
             ("questions_per_min", "Rep's questions", rate),
             ("longest_monologue_s", "Rep's longest monologue", _clock),
             ("switches_per_min", "Speaker changes", rate),
             ("buyer_speakers", "Buyer-side people who spoke", str),
             ("talk_listen_score", "Talk–listen score", lambda v: f"{v:.0f}/100"),
             ("unknown_share", "Talk not attributed", share))
    return [(label, words(metrics[key])) for key, label, words in shown
            if isinstance(metrics.get(key), int | float)]


def _level_words(call_scores) -> dict[str, dict[int, str]]:
    """Per rubric scored, what each level of its scale means: only where the rubric found
    now is the version the call was scored with (an older version's words may differ)."""
    from core.rubrics import find_rubric, rubric_search
    from core.settings import get_settings

    words = {}
    for cs in call_scores:
        try:
            rubric = find_rubric(cs.rubric, rubric_search(get_settings()))
        except CoachloopError:
            continue
        if rubric.version == cs.rubric_version:
            words[cs.rubric] = {level: str(text) for level, text in rubric.scale.levels.items()}
    return words


def _with_audio(session: Session, meeting_ids: set[int]) -> set[int]:
    """Which of these meetings have a recording to play."""
    from sqlmodel import select

    from core.models import MediaAsset

    if not meeting_ids:
        return set()
    return set(session.exec(select(MediaAsset.meeting_id).where(
        MediaAsset.meeting_id.in_(meeting_ids), MediaAsset.kind == "audio",
        MediaAsset.local_path.is_not(None))))


def _start_backfill(vendor: str, org_id: int, days: int) -> str:
    """Queue a poll from `days` ago (a worker's job; a background thread without a broker,
    so the page answers at once). Returns when it started, for the progress view."""
    import threading
    from datetime import timedelta

    import worker
    from core.models import utcnow
    from core.settings import get_settings

    started = utcnow()
    since = (started - timedelta(days=days)).isoformat()
    if not get_settings().runs_in_process:
        worker.poll.delay(vendor, org_id, since)
    else:
        def run() -> None:
            try:
                worker.poll.delay(vendor, org_id, since)
            except Exception:  # noqa: BLE001 - each meeting's failure is on it; log the rest
                import logging
                logging.getLogger("coachloop.web").warning("backfill of %s failed", vendor,
                                                           exc_info=True)

        threading.Thread(target=run, name=f"backfill-{vendor}", daemon=True).start()
    return started.isoformat()


def _backfill_progress(session: Session, org_id: int, vendor: str, since: str | None):
    """The meetings a backfill (started at `since`) brought in, by how far each got."""
    from datetime import timedelta

    from sqlmodel import func, select

    from core.models import Meeting, as_utc, utcnow

    try:
        started = datetime.fromisoformat(since or "")
    except ValueError:
        return None
    stages = dict(session.exec(select(Meeting.stage, func.count()).where(
        Meeting.org_id == org_id, Meeting.source == vendor,
        Meeting.created_at >= as_utc(started)).group_by(Meeting.stage)).all())
    busy = sum(n for stage, n in stages.items() if stage not in ("scored", "failed"))
    # Listing a vendor's recordings takes a while before the first arrives: keep looking for
    # a minute, then for as long as any is still being transcribed or scored.
    recent = utcnow() - as_utc(started) < timedelta(seconds=60)
    return {"vendor": vendor, "started": started, "found": sum(stages.values()),
            "scored": stages.get("scored", 0), "failed": stages.get("failed", 0),
            "busy": busy, "running": busy > 0 or recent}


def _safe_next(value: str | None) -> str:
    """Only a path of this app: never another site (an open redirect)."""
    if value and value.startswith("/app") and not value.startswith("//"):
        return value
    return "/app"


async def read_form(request: Request) -> dict[str, list[str]]:
    """A page's form fields (an uploaded file as its text), read before sign-in is checked so
    that its CSRF field counts (a page cannot send the X-CSRF-Token header without script)."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise PageRefused("that form is too large (256 KiB at most)")
    fields: dict[str, list[str]] = {}
    try:
        async with request.form(max_files=1, max_fields=2000) as form:
            for name, value in form.multi_items():
                if not isinstance(value, str):  # a file: its text, and its name beside it
                    fields.setdefault(f"{name}:filename", []).append(value.filename or "")
                    value = (await value.read()).decode("utf-8", "replace")
                fields.setdefault(name, []).append(value)
    except HTTPException as exc:  # Starlette's answer to a malformed or oversized form
        raise PageRefused(f"that form could not be read ({exc.detail})") from None
    request.state.form_csrf = (fields.get("csrf_token") or [None])[0]
    return fields


def install(app: FastAPI, *, require: Callable, session_dependency: Callable,
            signed_in: Callable, policies, csrf_cookie: str) -> None:
    """Add the pages and their error handling to the API's app. `require`: the API's policy
    dependency; `signed_in(response, token, csrf)`: sets the session cookies."""

    def page(policy: Policy, *, form: bool = False):
        """The page's one policy; `form`: a POST whose form (with its CSRF field) is read
        first, and handed to the route as `access.form`."""
        inner = require(policy)

        def dependency(request: Request, session: Session = Depends(session_dependency),
                       fields: dict = Depends(read_form) if form else Depends(_no_form)):
            try:
                access = inner(request, session)
                return PageAccess(access.principal, access.scope, fields) if form else access
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
        return TEMPLATES.TemplateResponse(request, name, {
            "me": me, "labels": _labels(), "colour": _colour, "clock": _clock,
            "csrf": request.cookies.get(csrf_cookie, ""), **context}, status_code=status)

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

    @router.get("/static/{name:path}")
    def static(name: str, _: None = Depends(require(ASSETS))):
        from web.vendor import served_files

        path = HERE / "static" / name if name in STATIC else served_files().get(name)
        if path is None:
            raise NotFound(f"no asset {name!r}")
        media = STATIC.get(name) or ASSET_TYPES[path.suffix]
        return Response(path.read_bytes(), media_type=media,
                        headers={"Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

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
    def team(request: Request, window: int = 90, manager: str | None = None,
             segment: str | None = None, session: Session = Depends(session_dependency),
             access=Depends(page(policies.TEAM_READ))):
        """Reps × skills in a window, filtered by manager and deal-size segment."""
        from core import reports

        window = window if window in WINDOWS else 90
        table = reports.team_table(session, access.scope, window_days=window)
        segments = reports.rep_segments(session, access.org_id)
        managers = sorted({r.rep.manager for r in table.rows if r.rep.manager})
        rows = [r for r in table.rows
                if (not manager or r.rep.manager == manager)
                and (not segment or segments.get(r.rep.id) == segment)]
        return render(request, "team.html", access, session, team=table, rows=rows,
                      managers=managers, manager=manager or "", segment=segment or "",
                      segments=sorted(set(segments.values())), segment_of=segments,
                      windows=WINDOWS)

    @router.get("/app/reps/{email}", response_class=HTMLResponse)
    def rep(request: Request, email: str, window: int = 90,
            session: Session = Depends(session_dependency),
            access=Depends(page(policies.MEMBER_READ))):
        """A rep's skills: a trend per skill with its interval band, strengths and gaps with
        their moments, this week's agenda, and their calls."""
        from core import reports
        from core.agenda import coaching_agenda
        from core.settings import get_settings

        window = window if window in WINDOWS else 90
        settings = get_settings()
        try:
            card = reports.rep_scorecard(session, access.scope, email, window_days=window)
            trend = reports.skill_trend(session, access.scope, email, as_of=card.as_of,
                                        window_days=window, min_calls=settings.skills.min_calls)
        except CoachloopError as exc:
            return failed(request, access, session, exc)
        agenda = coaching_agenda(session, access.scope, email,
                                 as_of=card.as_of or datetime.now(timezone.utc).date(),
                                 window_days=window, min_calls=settings.skills.min_calls,
                                 public_url=settings.public_url)
        chart = {skill: {"label": _labels().get(skill, skill),
                         "points": [p.model_dump(mode="json") for p in points]}
                 for skill, points in trend.items()}
        return render(request, "rep.html", access, session, card=card, agenda=agenda,
                      trend=trend, chart=chart, windows=WINDOWS)

    @router.get("/app/outcomes", response_class=HTMLResponse)
    def outcomes(request: Request, segment: str | None = None, window: int = 90,
                 session: Session = Depends(session_dependency),
                 access=Depends(page(policies.TEAM_READ))):
        """Closed deals against their owners' skills at the close: win rate by skill band,
        and the skills most associated with winning per segment, with intervals."""
        from core.outcomes import SEGMENTS, cached_outcomes_report

        segment = segment if segment in SEGMENTS else None
        window = window if window in WINDOWS else 90
        report = cached_outcomes_report(session, access.scope, segment=segment,
                                        window_days=window)
        return render(request, "outcomes.html", access, session, report=report,
                      segments=SEGMENTS, segment=segment or "", windows=WINDOWS)

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
                      t=t, moment=moment, audible=bool(_with_audio(session, {meeting_id})),
                      facts=_conversation_facts(detail.conversation),
                      levels=_level_words(detail.call_scores))

    @router.get("/app/connections", response_class=HTMLResponse)
    def connections(request: Request, connected: str | None = None, done: str | None = None,
                    backfill: str | None = None, since: str | None = None,
                    session: Session = Depends(session_dependency),
                    access=Depends(page(policies.ADMIN_READ))):
        """Every vendor that connects with OAuth: its connection checked live, a button to
        connect, replace or disconnect it, a backfill with its progress, and the webhook
        addresses to give the vendors."""
        from connectors.oauth_apps import check_connections, oauth_provider
        from core.settings import get_settings
        from core.vendors import with_a
        from webhooks.router import configured_receivers

        settings = get_settings()
        health = {h.provider: h for h in check_connections(access.org_id, settings)
                  if h.status not in ("disconnected", "replaced")}
        pollable = {v.name for v in with_a("poll")}
        vendors = []
        for vendor in with_a("oauth"):
            problem, direct = None, vendor.connects_directly(settings)
            try:
                if not direct:
                    oauth_provider(vendor.name, settings)
            except CoachloopError as exc:
                problem = user_message(exc)
            vendors.append({"name": vendor.name, "label": vendor.label,
                            "health": health.get(vendor.name), "problem": problem,
                            "backfills": vendor.name in pollable, "direct": direct})
        receivers = configured_receivers(settings)
        base = settings.public_url.rstrip("/")
        hooks = [{"label": v.label, "url": f"{base}/webhooks/{v.name}", "setup": v.webhook_setup,
                  "setting": f"COACHLOOP_{v.name.upper()}__"
                             f"{(v.webhook_secret_setting or '').upper()}",
                  "configured": v.name in receivers}
                 for v in with_a("webhooks")]
        known = {v["name"] for v in vendors}
        progress = _backfill_progress(session, access.org_id, backfill, since) \
            if backfill in pollable else None
        return render(request, "connections.html", access, session, vendors=vendors,
                      webhooks=hooks, connected=connected if connected in known else None,
                      notice=done, progress=progress)

    @router.post("/app/connections/{vendor}/{action}")
    def connection_action(request: Request, vendor: str, action: str,
                          session: Session = Depends(session_dependency),
                          access=Depends(page(policies.ADMIN, form=True))):
        """`disconnect`: revoke at the vendor and delete the tokens here. `backfill`: fetch
        the last `days` of recordings (7, 30 or 90) in the background, then score them.
        `connect`: connect (or replace) without consent, where the vendor's settings allow
        it (a Google service account)."""
        from connectors.oauth_apps import end_connections, label, replace_directly
        from core.settings import get_settings
        from core.vendors import with_a

        oauth = {v.name for v in with_a("oauth")}
        try:
            if vendor not in oauth or action not in ("disconnect", "backfill", "connect"):
                raise NotFound(f"no {action!r} for {vendor!r} here")
            if action == "connect":
                replace_directly(vendor, access.org_id, get_settings())
                return RedirectResponse(f"/app/connections?connected={vendor}",
                                        status_code=303)
            if action == "disconnect":
                ended = end_connections(access.org_id, vendor, get_settings(),
                                        status="disconnected")
                said = (f"Disconnected {label(vendor)}: its tokens are deleted here"
                        + ("." if all(e.revoked for e in ended) else f"; {label(vendor)} did "
                           "not confirm the revocation, so remove the app's access in its "
                           "admin settings too.")) if ended else f"No {label(vendor)} " \
                    "connection to disconnect."
                return RedirectResponse("/app/connections?done=" + quote(said),
                                        status_code=303)
            if vendor not in {v.name for v in with_a("poll")}:
                raise InputError(f"{label(vendor)} has no recordings to backfill")
            days = _proposal_id(access.field("days") or "")
            if days not in (7, 30, 90):
                raise InputError("backfill 7, 30 or 90 days")
        except CoachloopError as exc:
            return failed(request, access, session, exc)
        started = _start_backfill(vendor, access.org_id, days)
        return RedirectResponse(f"/app/connections?backfill={vendor}&since="
                                f"{quote(started)}#backfill", status_code=303)

    @router.get("/app/meetings/{meeting_id}/audio")
    def audio(meeting_id: int, session: Session = Depends(session_dependency),
              access=Depends(page(policies.MEMBER_READ))):
        """The call's recording for the page's player: byte ranges (seeking), only to those
        who may see the call."""
        from core.reports import meeting_audio

        path = meeting_audio(session, access.scope, meeting_id)
        media = AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, headers={
            "Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})

    @router.get("/app/review", response_class=HTMLResponse)
    def review(request: Request, status: str = "pending", deal: str | None = None,
               done: str | None = None, session: Session = Depends(session_dependency),
               access=Depends(page(policies.REVIEW))):
        """CRM values waiting for a person: per deal, current against proposed with the
        evidence and a play button at its moment; approve, edit, reject, in bulk; and what
        was decided and written, by whom."""
        from core.review import history, queue

        status = status if status in REVIEW_STATES else "pending"
        rows = queue(session, access.scope, status=status, deal=deal or None)
        deals: dict[str, list] = {}
        for row in rows:
            deals.setdefault(row.record_id, []).append(row)
        audible = _with_audio(session, {r.meeting_id for r in rows if r.meeting_id})
        return render(request, "review.html", access, session, deals=deals, shown=status,
                      states=REVIEW_STATES, deal=deal or "", audible=audible, notice=done,
                      history=history(session, access.scope, deal=deal or None, limit=50))

    @router.post("/app/review", response_class=HTMLResponse)
    def review_decide(request: Request, session: Session = Depends(session_dependency),
                      access=Depends(page(policies.REVIEW, form=True))):
        """One button per row (`one` = action:id) or the bulk buttons over the ticked rows;
        approved values go to the CRM at once where one is connected."""
        from core.review import decide
        from worker import write_approved_now

        one, bulk = access.field("one"), access.field("bulk")
        try:
            if one:
                action, _, ident = one.partition(":")
                ids = [_proposal_id(ident)]
                value = access.field(f"value_{ident}") if action == "edit" else None
            elif bulk:
                action, value = bulk, None
                ids = [_proposal_id(i) for i in access.form.get("ids", [])]
                if not ids:
                    raise InputError("tick the values to decide first")
            else:
                raise InputError("say what to do: a row's button or a bulk button")
            decided = decide(session, access.scope, ids, action, by=access.principal.name,
                             value=value)
            session.commit()
        except CoachloopError as exc:
            session.rollback()
            return failed(request, access, session, exc)
        verb = {"approve": "Approved", "edit": "Edited and approved", "reject": "Rejected"}[action]
        notice = f"{verb} {len(decided)} value(s)."
        if action != "reject":
            notice += " " + write_approved_now(access.org_id)
        back = access.field("back") or "/app/review"
        back = back if back.startswith("/app/review") else "/app/review"
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}done={quote(notice)}", status_code=303)

    def settings_page(request: Request, access, session: Session, status: int = 200,
                      **shown):
        """Methodologies and rubrics, each CRM's mapping, people and roles, API tokens;
        `shown`: a one-time secret or an upload's error, for this response only."""
        from sqlmodel import select

        from core.auth import list_tokens
        from core.models import User
        from core.rubrics import (find_rubric, list_builtin_rubrics, rubric_search,
                                  uploaded_rubrics)
        from core.settings import get_settings
        from core.vendors import with_a
        from mappings import configured_mapping

        settings = get_settings()
        search = rubric_search(settings)
        keys = set(list_builtin_rubrics()) | {p.stem for folder in search
                                              for p in Path(folder).glob("*.yaml")}
        rubrics, broken = [], []
        for key in sorted(keys):
            where = next((f for f in search if (Path(f) / f"{key}.yaml").is_file()), None)
            try:
                rubric = find_rubric(key, search)
            except CoachloopError as exc:
                broken.append({"key": key, "problem": user_message(exc)})
                continue
            rubrics.append({"rubric": rubric, "scoring": key in settings.scoring.methodologies,
                            "where": "built-in" if where is None else "uploaded here"
                            if Path(where) == uploaded_rubrics(settings) else str(where)})
        mappings = []
        for vendor in with_a("writer"):
            try:
                mappings.append({"label": vendor.label,
                                 "setting": f"COACHLOOP_{vendor.name.upper()}__MAPPING",
                                 "mapping": configured_mapping(vendor.name, settings)})
            except CoachloopError as exc:
                mappings.append({"label": vendor.label, "problem": user_message(exc)})
        people = session.exec(select(User).where(User.org_id == access.org_id)
                              .order_by(User.role, User.email)).all()
        names = {u.id: u.name for u in people}
        return render(request, "settings.html", access, session, status, rubrics=rubrics,
                      broken=broken, methodologies=settings.scoring.methodologies,
                      mappings=mappings, people=people, managers=names,
                      tokens=list_tokens(session, access.org_id), roles=ROLES,
                      token_scopes=TOKEN_SCOPES, **shown)

    @router.get("/app/settings", response_class=HTMLResponse)
    def settings_view(request: Request, done: str | None = None,
                      session: Session = Depends(session_dependency),
                      access=Depends(page(policies.ADMIN_READ))):
        return settings_page(request, access, session, notice=done)

    @router.post("/app/settings/rubrics", response_class=HTMLResponse)
    def upload_rubric(request: Request, session: Session = Depends(session_dependency),
                      access=Depends(page(policies.ADMIN, form=True))):
        """A custom rubric, from a file or pasted: validated (each error with its line),
        then kept among the org's rubrics."""
        from core.rubrics import save_rubric
        from core.settings import get_settings

        text = access.field("file") or access.field("text") or ""
        name = (access.field("file:filename") or "the pasted rubric")[:120]
        if not text.strip():
            return settings_page(request, access, session, 400, rubric_text="",
                                 rubric_error="choose a rubric file or paste its YAML")
        try:
            rubric = save_rubric(text, source=name, settings=get_settings())
        except CoachloopError as exc:
            return settings_page(request, access, session, 400, rubric_text=text,
                                 rubric_error=user_message(exc))
        return RedirectResponse("/app/settings?done=" + quote(
            f"Rubric {rubric.key} ({rubric.name}) saved, version {rubric.version}; it scores "
            "calls once its key is among the methodologies."), status_code=303)

    @router.post("/app/settings/people", response_class=HTMLResponse)
    def people(request: Request, session: Session = Depends(session_dependency),
               access=Depends(page(policies.ADMIN, form=True))):
        """Invite someone (the one-time link is shown once, here) or stop someone signing in."""
        from core.auth import disable_user, invite
        from core.settings import get_settings

        email = (access.field("email") or "").strip()
        try:
            if access.field("action") == "disable":
                if email.lower() == (access.principal.email or "").lower():
                    raise InputError("you cannot disable yourself")
                ended = disable_user(session, access.org_id, email)
                session.commit()
                return RedirectResponse("/app/settings?done=" + quote(
                    f"{email} can no longer sign in; {ended} session(s) ended."),
                    status_code=303)
            invitation, secret = invite(session, access.org_id, email,
                                        role=access.field("role") or "rep",
                                        name=access.field("name") or None,
                                        by=access.principal.name)
            session.commit()
        except CoachloopError as exc:
            session.rollback()
            return settings_page(request, access, session, 400, people_error=user_message(exc))
        link = f"{get_settings().public_url.rstrip('/')}/auth/accept#{secret}"
        return settings_page(request, access, session, invited={
            "email": email, "link": link, "expires": invitation.expires_at})

    @router.post("/app/settings/tokens", response_class=HTMLResponse)
    def tokens(request: Request, session: Session = Depends(session_dependency),
               access=Depends(page(policies.ADMIN, form=True))):
        """Create an API token (its secret shown once, here) or revoke one."""
        from core.auth import create_token, revoke_token

        try:
            if access.field("revoke"):
                row = revoke_token(session, access.org_id, _proposal_id(access.field("revoke")))
                session.commit()
                return RedirectResponse("/app/settings?done=" + quote(
                    f"Token {row.name} revoked: it stops working at once."), status_code=303)
            row, secret = create_token(session, access.org_id, access.field("name") or "",
                                       access.form.get("scopes", []), by=access.principal.name)
            session.commit()
        except CoachloopError as exc:
            session.rollback()
            return settings_page(request, access, session, 400, token_error=user_message(exc))
        return settings_page(request, access, session, new_token={"name": row.name,
                                                                  "secret": secret})

    app.include_router(router)
