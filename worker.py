"""Celery app: one thin task per pipeline stage, passing ids.

Without `COACHLOOP_BROKER_URL` tasks run in process (the embedded default). With a broker,
run workers with `celery -A worker worker -Q asr,default,crm`; transcription has its own `asr`
queue so it can be given GPU machines, and CRM write-back its own `crm` queue so its rate can
be governed per CRM account. Tasks acknowledge late: a worker that dies mid-task
leaves its message to be redelivered, and every stage replaces its earlier output, so a
redelivery neither loses nor duplicates a call.
"""

from __future__ import annotations

import logging
from datetime import date

from celery import Celery, signals
from celery.schedules import crontab

from core.errors import CoachloopError, Resolution, classify, user_message
from core.settings import get_settings

log = logging.getLogger("coachloop.worker")
# A CRM sends one webhook per changed deal: a short wait lets one pull take a burst of them.
CRM_PULL_DEBOUNCE_S = 5


def make_app() -> Celery:
    """The Celery app configured from settings."""
    settings = get_settings()
    app = Celery("coachloop", broker=settings.broker_url or "memory://",
                 backend=settings.result_backend)
    app.conf.update(
        task_always_eager=settings.runs_in_process,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_routes={"coachloop.transcribe": {"queue": "asr"},
                     "coachloop.crm_sync": {"queue": "crm"}},
        broker_transport_options=settings.broker_transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=settings.result_backend is None,
        beat_schedule={**_poll_schedule(settings), "weekly-agendas": {
            "task": "coachloop.agendas_all",
            "schedule": crontab(minute=0, hour=6, day_of_week="mon")}},
    )
    return app


def _poll_schedule(settings) -> dict:
    """One beat entry per vendor with a poll, at its own interval (its settings say)."""
    from core.vendors import with_a

    return {f"poll-{vendor.name}": {
        "task": "coachloop.poll_all", "args": (vendor.name,),
        "schedule": 60.0 * getattr(vendor.settings_of(settings), vendor.poll_minutes_setting)
        if vendor.poll_minutes_setting else 900.0} for vendor in with_a("poll")}


app = make_app()


@signals.worker_init.connect
def _private_data_dir(**_) -> None:
    """A worker process writes recordings and transcripts: owner-only, as the CLI and API
    do (in process, the CLI has done it already; importing this module changes nothing)."""
    from core.settings import private_data_dir

    private_data_dir(get_settings().data_dir)


def _backoff(retries: int, exc: BaseException) -> float:
    """What the vendor asked for (a quota pause may be until tomorrow), else 5 s doubling
    up to 5 minutes, with jitter."""
    from core.retry import backoff

    return backoff(retries, exc, base=5.0, cap=300.0)


def _retry_if_transient(task, exc: BaseException) -> None:
    """Send the task back to the queue with backoff (or the vendor's Retry-After) when `exc`
    is transient and retries remain; otherwise return, and the caller decides."""
    if classify(exc) is Resolution.TRANSIENT and task.request.retries < task.max_retries:
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries, exc)) from exc


def _stage_of(meeting_id: int) -> str | None:
    from core.db import session_scope
    from core.models import Meeting

    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        return meeting.stage if meeting is not None else None


def _run_stage(task, stage: str, meeting_id: int, fn) -> bool:
    """Run a stage; transient failures retry with backoff, others are recorded on the meeting."""
    from core.pipeline import AlreadyClaimed, record_failure

    try:
        fn(meeting_id)
        return True
    except AlreadyClaimed as exc:  # another runner has it, or has done it: nothing failed
        log.info("%s", exc.message)
        # On a broker, come back when that lease would lapse: if its runner died, it is ours.
        if exc.retry_in is not None and not get_settings().runs_in_process:
            raise task.retry(countdown=exc.retry_in, max_retries=None) from exc
        return False
    except Exception as exc:  # classified below; nothing escapes unrecorded
        resolution = record_failure(meeting_id, stage, exc)
        _retry_if_transient(task, exc)
        if resolution is Resolution.TRANSIENT:  # out of retries: now it is terminal
            # (a TransientError here would be "worth retrying" again and never recorded)
            record_failure(meeting_id, stage, CoachloopError(
                f"{stage} kept failing after {task.max_retries} retries: {user_message(exc)}"))
        log.warning("meeting %s: %s failed (%s)", meeting_id, stage, classify(exc).value)
        return False


@app.task(name="coachloop.ingest", bind=True, max_retries=5)
def ingest(self, org_id: int, source: str, origin: str) -> int | None:
    """Store one meeting a source describes (by its origin), then transcribe it."""
    from core.db import session_scope
    from core.ingest import ingest_record
    from core.models import Org
    from connectors import load_source

    from core.errors import NotFound

    record = load_source(source).record_for(origin)
    with session_scope() as session:
        org = session.get(Org, org_id)
        if org is None:
            raise NotFound(f"org {org_id} does not exist")
        result = ingest_record(session, org, record)
    if result.meeting_id is not None and result.outcome in ("created", "updated"):
        transcribe.delay(result.meeting_id)
    return result.meeting_id


@app.task(name="coachloop.transcribe", bind=True, max_retries=5)
def transcribe(self, meeting_id: int) -> None:
    """Transcript for one meeting (platform or ASR), then score it."""
    from core.pipeline import transcribe_meeting

    stage = _stage_of(meeting_id)
    if stage in ("transcribed", "scored"):
        # A message delivered again (a worker lost before its ack, or a visibility timeout
        # shorter than Whisper) for work that is done: running it again would cost a Whisper
        # pass and wipe the scores. Only make sure scoring was started.
        if stage == "transcribed":
            score.delay(meeting_id)
        return
    if _run_stage(self, "transcribe", meeting_id, transcribe_meeting):
        score.delay(meeting_id)


@app.task(name="coachloop.score", bind=True, max_retries=5)
def score(self, meeting_id: int) -> None:
    """Score one meeting, then refresh its org's skills."""
    from core.db import session_scope
    from core.models import Meeting
    from core.pipeline import score_meeting

    if _stage_of(meeting_id) == "scored":  # delivered again: scored already
        return
    if _run_stage(self, "score", meeting_id, score_meeting):
        with session_scope() as session:
            org_id = session.get(Meeting, meeting_id).org_id
        refresh_org_soon(org_id)


def refresh_org_soon(org_id: int) -> None:
    """One skills refresh (and CRM sync) per org per debounce window, however many calls are
    scored in it: a backfill of 1,000 calls writes to the CRM in batches, not per call."""
    from datetime import timedelta

    from core.skill_refresh import schedule_refresh

    settings = get_settings()
    debounce = timedelta(seconds=settings.refresh_debounce_s)
    if settings.runs_in_process:
        skills.delay(org_id)  # no broker, no timers: at once
    elif schedule_refresh(org_id, debounce):
        skills.apply_async((org_id,), countdown=debounce.total_seconds())


@app.task(name="coachloop.skills", bind=True, max_retries=5)
def skills(self, org_id: int, as_of: str | None = None, waiting_since: str | None = None) -> int:
    """Recompute one org's skill snapshots (as of an ISO date, default today), then write
    back to the CRM if one is connected. A scheduled refresh that finds calls of its org
    still in flight waits for them (up to `refresh_max_wait_s`), so a backfill reaches the
    CRM in whole batches."""
    from datetime import datetime, timedelta

    from connectors.crm_sync import crm_connected
    from core.models import utcnow
    from core.skill_refresh import (begin_refresh, calls_in_flight, postpone_refresh,
                                    refresh_skills)

    settings = get_settings()
    if not settings.runs_in_process and as_of is None:
        since = datetime.fromisoformat(waiting_since) if waiting_since else utcnow()
        waited = (utcnow() - since).total_seconds()
        if waited < settings.refresh_max_wait_s and calls_in_flight(org_id):
            delay = timedelta(seconds=settings.refresh_debounce_s)
            postpone_refresh(org_id, delay)
            skills.apply_async((org_id, None, since.isoformat()),
                               countdown=delay.total_seconds())
            return 0
    begin_refresh(org_id)
    try:
        count = refresh_skills(org_id, date.fromisoformat(as_of) if as_of else None)
    except Exception as exc:
        _retry_if_transient(self, exc)
        raise
    if crm_connected(org_id):
        crm_sync.delay(org_id)
    return count


@app.task(name="coachloop.poll", bind=True, max_retries=5)
def poll(self, vendor: str, org_id: int, since: str | None = None) -> int:
    """Fetch a vendor's recordings for one org since its last poll (what webhooks missed), or
    since an ISO time (a backfill), then transcribe them."""
    from datetime import datetime

    from core.vendors import vendors

    try:
        started = vendors()[vendor].load("poll")(
            org_id, since=datetime.fromisoformat(since) if since else None)
    except Exception as exc:
        _retry_if_transient(self, exc)
        raise
    for meeting_id in started:
        transcribe.delay(meeting_id)
    return len(started)


@app.task(name="coachloop.poll_all")
def poll_all(vendor: str) -> int:
    """Queue a poll of `vendor` for every org with an active connection to it (celery beat
    runs this at the vendor's own interval)."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Connection

    with session_scope() as session:
        orgs = sorted(set(session.exec(select(Connection.org_id).where(
            Connection.provider == vendor, Connection.status == "active"))))
    for org_id in orgs:
        poll.delay(vendor, org_id)
    return len(orgs)


@app.task(name="coachloop.crm_sync", bind=True, max_retries=20)
def crm_sync(self, org_id: int) -> int:
    """Write the org's newly scored calls and skill scores back to its CRM (idempotent)."""
    from connectors.crm_sync import sync_configured

    try:
        report = sync_configured(org_id)
    except Exception as exc:
        _retry_if_transient(self, exc)
        log.warning("org %s: CRM write-back failed (%s)", org_id, classify(exc).value)
        raise
    return len(report.writes)


def write_approved_now(org_id: int) -> str:
    """After a person approves CRM values: send them now (in process without a broker, else
    a `crm_sync` task), and say what happened, for the page or the API's answer."""
    from connectors.crm_sync import crm_connected

    if not crm_connected(org_id):
        return "No CRM is connected: they are written once one is."
    try:
        crm_sync.delay(org_id)
    except Exception as exc:  # noqa: BLE001 - reported to the person; the next run retries
        why = user_message(exc) if isinstance(exc, CoachloopError) else classify(exc).value
        return f"Writing them to the CRM failed ({why}); the next run retries."
    return ("Written to the CRM." if get_settings().runs_in_process
            else "The CRM write-back is under way.")


@app.task(name="coachloop.agendas_all")
def agendas_all() -> int:
    """Monday: every org's reps get this week's agenda, and its focus is recorded (what the
    cohort comparison reads)."""
    from datetime import datetime, timezone

    from sqlmodel import select

    from core.agenda import weekly_agendas
    from core.db import session_scope
    from core.models import Org

    settings = get_settings()
    today = datetime.now(timezone.utc).date()
    with session_scope() as session:
        orgs = session.exec(select(Org.id)).all()
    return sum(len(weekly_agendas(org_id, today, min_calls=settings.skills.min_calls,
                                  public_url=settings.public_url)) for org_id in orgs)


@app.task(name="coachloop.crm_pull", bind=True, max_retries=20)
def crm_pull(self, org_id: int) -> int:
    """Pull the org's deals changed since the last pull (stage, amount, won or lost)."""
    from connectors.crm_sync import crm_writer, pull_outcomes
    from core.settings import get_settings

    try:
        _, writer = crm_writer(org_id, get_settings())
        try:
            return pull_outcomes(org_id, writer)
        finally:
            writer.close()
    except Exception as exc:
        _retry_if_transient(self, exc)
        log.warning("org %s: deal pull failed (%s)", org_id, classify(exc).value)
        raise


@app.task(name="coachloop.webhook", bind=True, max_retries=5)
def handle_webhook(self, event_id: int) -> int:
    """Turn a stored webhook event into meetings (via its provider's source), then ingest them."""
    from core.db import session_scope
    from core.errors import user_message
    from core.ingest import ingest_record
    from core.models import Org, WebhookEvent
    from core.crypto import cipher_from_settings
    from core.webhook_events import event_payload, mark_processed
    from connectors import load_source
    from core.vendors import vendor as vendor_of

    with session_scope() as session:
        event = session.get(WebhookEvent, event_id)
        if event is None or event.processed_at is not None:
            return 0  # gone, or already handled by an earlier delivery of this task
        provider, org_id = event.provider, event.org_id
        payload = event_payload(event, cipher_from_settings())
        deals_changed = vendor_of(provider).source is None  # a CRM's event
        if deals_changed:
            mark_processed(session, event_id, error=None if org_id is not None else (
                f"no active {provider} connection is for this account: connect it, then "
                "`coachloop webhooks replay`"))
    if deals_changed:
        if org_id is not None:
            try:
                crm_pull.apply_async((org_id,), countdown=CRM_PULL_DEBOUNCE_S)
            except Exception:  # in process, the pull runs here; its failure is its own
                log.warning("org %s: deal pull after a %s webhook failed", org_id, provider)
        return 0
    from connectors.base import SourceProblem

    started, problems = [], []
    try:
        source = load_source(provider).for_webhook(org_id)
        with session_scope() as session:
            org = session.get(Org, source.org_id)
            for record in source.meetings_from_event(payload):
                if isinstance(record, SourceProblem):  # one meeting; the others go on
                    problems.append(str(record))
                    continue
                result = ingest_record(session, org, record)
                if result.outcome in ("created", "updated"):
                    started.append(result.meeting_id)
            mark_processed(session, event_id, error="; ".join(problems)[:2000] or None)
    except Exception as exc:
        _retry_if_transient(self, exc)
        with session_scope() as session:
            mark_processed(session, event_id, error=user_message(exc))
        return 0
    for meeting_id in started:
        transcribe.delay(meeting_id)
    return len(started)
