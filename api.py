"""HTTP API (FastAPI): health, meetings with transcripts and evidence, reps and their skills.

Run with `uvicorn api:app`. Errors are JSON `{"error": {"code", "message"}}`; internals and
tracebacks stay in the server log.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import reports
from core.db import get_engine
from core.errors import CoachloopError, ConfigError, InputError, NotFound, user_message
from core.ingest import current_org
from core.models import Org
from core.settings import get_settings
from webhooks.base import WebhookRejected
from webhooks.router import make_router

log = logging.getLogger("coachloop.api")


def _session() -> Iterator[Session]:
    with Session(get_engine()) as session:
        yield session


def _org(session: Session = Depends(_session)) -> Org:
    return current_org(session, get_settings().org.name)


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


def _enqueue_webhook(event_id: int) -> None:
    """Hand a stored event to the workers. In process, to one background thread that takes
    events in order, so the vendor gets its 2xx at once and calls are transcribed one at a
    time (the event is stored first, so a crash before processing loses nothing)."""
    global _local_worker
    import worker

    if not get_settings().runs_in_process:
        worker.handle_webhook.delay(event_id)
        return
    with _local_lock:
        if _local_worker is None or not _local_worker.is_alive():
            _local_worker = threading.Thread(target=_process_local_events, name="webhooks",
                                             daemon=True)
            _local_worker.start()
    _local_events.put(event_id)


def wait_for_local_events() -> None:
    """Block until the in-process webhook queue is empty (the demo and tests use it)."""
    _local_events.join()


class ReviewDecision(BaseModel):
    """A reviewer's decision on queued CRM values."""

    action: Literal["approve", "reject", "edit"]
    by: str = Field(min_length=1, description="who decides; the audit records it")
    ids: list[int] | None = Field(None, description="proposal ids; none: every pending one "
                                  "(of `deal`, when given)")
    deal: str | None = None
    value: str | None = Field(None, description="edit: the value to write instead")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


# Most specific first: how each of our errors shows over HTTP.
_STATUS_OF = ((NotFound, 404, "not_found"), (InputError, 422, "bad_input"),
              (ConfigError, 503, "misconfigured"), (CoachloopError, 500, "error"))


def create_app() -> FastAPI:
    """The application with its routers and error handlers."""
    app = FastAPI(title="coachloop", version="0.1.0",
                  description="Sales calls in; scored calls, evidence and rep skills out.")

    @app.exception_handler(WebhookRejected)
    async def rejected(_: Request, exc: WebhookRejected):
        return _error(exc.status, "rejected", exc.message)

    @app.exception_handler(CoachloopError)
    async def ours(_: Request, exc: CoachloopError):
        status, code = next((status, code) for kind, status, code in _STATUS_OF
                            if isinstance(exc, kind))
        return _error(status, code, exc.message)

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

    app.include_router(make_router(enqueue=_enqueue_webhook))

    @app.get("/health", tags=["ops"])
    def health(session: Session = Depends(_session)) -> dict:
        """Liveness plus a database round trip."""
        from sqlalchemy import text

        session.exec(text("SELECT 1"))
        return {"status": "ok", "database": "ok",
                "tasks": "in-process" if get_settings().runs_in_process else "celery"}

    @app.get("/connect/{provider}", tags=["connections"], status_code=302)
    def connect(provider: str, org: Org = Depends(_org)):
        """Start connecting a vendor account: redirects to the vendor's consent page."""
        from connectors.oauth_apps import start_connect

        return RedirectResponse(start_connect(provider, org.id, get_settings()),
                                status_code=302)

    @app.get("/connect/{provider}/callback", tags=["connections"])
    def connect_callback(provider: str, code: str | None = None, state: str | None = None,
                         error: str | None = None, error_description: str | None = None):
        """Where the vendor sends the admin back: exchanges the code, stores the connection."""
        from connectors.oauth_apps import end_connections, oauth_provider
        from core.connections import finish_connect
        from core.crypto import cipher_from_settings

        if error:
            raise InputError(f"{provider} sign-in was not completed: {error_description or error}")
        if not code or not state:
            raise InputError("the callback carries no code and state: start the connection again")
        settings = get_settings()
        replaced = []

        def end_others(org_id: int, keep: int) -> None:
            # Another account's grant is revoked at the vendor, not only forgotten here.
            replaced.extend(end_connections(org_id, provider, settings, status="replaced",
                                            keep=keep))

        info = finish_connect(oauth_provider(provider, settings), code=code, state=state,
                              cipher=cipher_from_settings(settings), end_others=end_others)
        return {"connected": provider, "connection": asdict(info),
                "replaced": [asdict(e) for e in replaced]}

    @app.get("/connections", tags=["connections"])
    def connections(session: Session = Depends(_session), org: Org = Depends(_org)) -> list[dict]:
        """The org's vendor connections with their status and last error (never tokens)."""
        from core.connections import list_connections

        return [asdict(c) for c in list_connections(session, org.id)]

    @app.get("/crm/review", tags=["crm"])
    def crm_review(deal: str | None = None,
                   status: Literal["pending", "approved", "rejected", "written", "superseded",
                                   "all"] = "pending",
                   session: Session = Depends(_session), org: Org = Depends(_org)) -> list[dict]:
        """CRM values waiting for approval (review mode), with current value, evidence quote,
        call and confidence."""
        from core.review import queue

        return [p.as_dict() for p in queue(session, org.id, status=status, deal=deal)]

    @app.post("/crm/review", tags=["crm"])
    def crm_review_decide(decision: ReviewDecision, session: Session = Depends(_session),
                          org: Org = Depends(_org)) -> dict:
        """Approve, edit or reject queued values, one by one or in bulk. Approved values are
        written by the next write-back, which records who approved them."""
        from core.review import decide

        done = decide(session, org.id, decision.ids, decision.action, by=decision.by,
                      value=decision.value, deal=decision.deal)
        session.commit()
        return {"decided": [p.as_dict() for p in done]}

    @app.post("/crm/review/{proposal_id}/{action}", tags=["crm"])
    def crm_review_one(proposal_id: int, action: Literal["approve", "reject", "edit"],
                       by: str = Query(..., min_length=1), value: str | None = None,
                       session: Session = Depends(_session), org: Org = Depends(_org)) -> dict:
        """Approve, edit (with `value`) or reject one queued value."""
        from core.review import decide

        done = decide(session, org.id, [proposal_id], action, by=by, value=value)
        session.commit()
        return done[0].as_dict()

    @app.get("/crm/history", tags=["crm"])
    def crm_history(deal: str | None = None, limit: int = Query(200, ge=1, le=1000),
                    session: Session = Depends(_session), org: Org = Depends(_org)) -> list[dict]:
        """Who approved, rejected or wrote which field value, with before and after."""
        from core.review import history

        return [{**asdict(h), "at": h.at.isoformat()}
                for h in history(session, org.id, deal=deal, limit=limit)]

    @app.get("/meetings", tags=["meetings"], response_model=list[reports.MeetingSummary])
    def meetings(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
                 session: Session = Depends(_session), org: Org = Depends(_org)):
        """Meetings, newest first, with their stage and overall scores."""
        return reports.list_meetings(session, org.id, limit=limit, offset=offset)

    @app.get("/meetings/{meeting_id}", tags=["meetings"], response_model=reports.MeetingDetail)
    def meeting(meeting_id: int, session: Session = Depends(_session), org: Org = Depends(_org)):
        """One meeting: participants, attributed transcript, scores with evidence, fields."""
        return reports.meeting_detail(session, org.id, meeting_id)

    @app.get("/reps", tags=["reps"], response_model=list[reports.RepOut])
    def reps(session: Session = Depends(_session), org: Org = Depends(_org)):
        """Everyone in the org."""
        return reports.list_reps(session, org.id)

    @app.get("/reps/{email}/skills", tags=["reps"], response_model=reports.Scorecard)
    def rep_skills(email: str, as_of: date | None = None,
                   window: int = Query(90, ge=1, le=365),
                   session: Session = Depends(_session), org: Org = Depends(_org)):
        """A rep's skill scorecard: estimates with intervals, percentiles, trend, evidence."""
        return reports.rep_scorecard(session, org.id, email, as_of=as_of, window_days=window)

    @app.get("/reps/{email}/agenda", tags=["reps"])
    def rep_agenda(email: str, as_of: date | None = None,
                   window: int = Query(90, ge=7, le=365),
                   session: Session = Depends(_session), org: Org = Depends(_org)) -> dict:
        """This week's coaching agenda: two skills to work on with moments from the rep's own
        calls, what good looks like, and whether last week's focus is sticking."""
        from dataclasses import asdict as as_dict
        from datetime import datetime, timezone

        from core.agenda import coaching_agenda

        settings = get_settings()
        agenda = coaching_agenda(session, org.id, email,
                                 as_of=as_of or datetime.now(timezone.utc).date(),
                                 window_days=window, min_calls=settings.skills.min_calls,
                                 public_url=settings.public_url)
        return as_dict(agenda)

    @app.get("/team/skills", tags=["reps"], response_model=reports.TeamTable)
    def team(as_of: date | None = None, window: int = Query(90, ge=1, le=365),
             session: Session = Depends(_session), org: Org = Depends(_org)):
        """Every rep's skills side by side."""
        return reports.team_table(session, org.id, as_of=as_of, window_days=window)

    return app


app = create_app()
