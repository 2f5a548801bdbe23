"""The pipeline stages, each callable by meeting id: transcribe, score; then skills per org.

Each stage loads what it needs, runs plain domain code with no transaction open (ASR takes
minutes), and writes its results in one transaction, replacing earlier output, so a stage
can be re-run or retried after a crash without duplicating anything.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta

from sqlmodel import Session, select, update

from core.db import session_scope
from core.domain import (AudioTrack, CallScoreResult, Role, TranscriptSegment, TranscriptView)
from core.errors import (CoachloopError, ConfigError, InputError, NotFound, Resolution, classify,
                         user_message)
from core.ingest import clear_derived
from core.models import (CallScore, CriterionScore, FieldExtraction, MediaAsset, Meeting, Participant, Rubric, Segment, Transcript, as_utc,
                         utcnow)
from core.settings import Settings, get_settings
from core.speakers import (UNATTRIBUTED, Speaker, attribute_by_name, attribute_by_track,
                           drop_channel_bleed)
from core.transcribe import ProgressCallback, transcribe_tracks

STAGES = ("ingested", "transcribed", "scored")


def _meeting(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"meeting {meeting_id} does not exist")
    return meeting


def _speakers(session: Session, meeting_id: int) -> list[Speaker]:
    rows = session.exec(select(Participant).where(Participant.meeting_id == meeting_id)
                        .order_by(Participant.id)).all()
    return [Speaker(p.id, p.name, p.email, Role(p.role)) for p in rows]


# ------------------------------------------------------------------ transcribe ----


# A runner holds a meeting's stage with a short lease it renews while it works, so a runner
# that dies (SIGKILL, a lost machine) frees the meeting within CLAIM_TTL, however long
# Whisper takes for the living.
CLAIM_TTL = timedelta(seconds=60)
CLAIM_RENEW_S = 20.0
# The stages a meeting may be in for each step to run on it.
RUNS_FROM = {"transcribe": ("ingested", "failed"), "score": ("transcribed", "scored", "failed")}


class AlreadyClaimed(CoachloopError):
    """Another runner is on this meeting's stage (`retry_in` seconds until its lease lapses,
    if not renewed), or has done it already (`retry_in` None): nothing to do here now."""

    resolution = Resolution.SKIP

    def __init__(self, message: str, *, retry_in: float | None = None):
        super().__init__(message)
        self.retry_in = retry_in


def _runner() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(holder: str | None) -> bool:
    """Whether `holder` is a process of this machine that no longer exists."""
    import os
    import socket

    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _renew(meeting_id: int, me: str, stop) -> None:
    while not stop.wait(CLAIM_RENEW_S):
        try:
            with session_scope() as session:
                session.exec(update(Meeting).where(Meeting.id == meeting_id,
                                                   Meeting.claimed_by == me)
                             .values(claimed_until=utcnow() + CLAIM_TTL))
        except Exception:  # a database hiccup: the next beat tries again
            pass


@contextmanager
def claimed(meeting_id: int, step: str):
    """Run `step` of a meeting only if nobody else is (a conditional update, so two runners
    never both win) and the meeting is in a stage the step runs from; the lease is renewed
    while the step runs and released after."""
    import threading

    me, now = _runner(), utcnow()
    with session_scope() as session:
        current = session.get(Meeting, meeting_id)
        if current is None:
            raise NotFound(f"meeting {meeting_id} does not exist")
        free = (Meeting.claimed_until.is_(None)) | (Meeting.claimed_until < now)
        if _dead_here(current.claimed_by):  # its runner died on this machine: take over
            free = free | (Meeting.claimed_by == current.claimed_by)
        won = session.exec(update(Meeting).where(
            Meeting.id == meeting_id, Meeting.stage.in_(RUNS_FROM[step]), free)
            .values(claimed_by=me, claimed_until=now + CLAIM_TTL))
        if won.rowcount != 1:
            session.refresh(current)
            until = as_utc(current.claimed_until)
            if current.stage in RUNS_FROM[step] and until and until >= now:
                raise AlreadyClaimed(f"meeting {meeting_id}: another runner "
                                     f"({current.claimed_by}) is on its {step} step; skipped "
                                     "here", retry_in=(until - now).total_seconds() + 1)
            raise AlreadyClaimed(f"meeting {meeting_id} is {current.stage} already: its {step} "
                                 "step was done by another runner; skipped here")
    stop = threading.Event()
    beat = threading.Thread(target=_renew, args=(meeting_id, me, stop), daemon=True,
                            name=f"claim-{meeting_id}")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        with session_scope() as session:
            session.exec(update(Meeting).where(Meeting.id == meeting_id,
                                               Meeting.claimed_by == me)
                         .values(claimed_by=None, claimed_until=None))


def transcribe_meeting(meeting_id: int, *, settings: Settings | None = None,
                       progress: ProgressCallback | None = None) -> int:
    """Platform transcript if the meeting has one, else Whisper on its tracks. Returns
    #segments. Raises AlreadyClaimed when another runner has it."""
    with claimed(meeting_id, "transcribe"):
        return _transcribe(meeting_id, settings=settings, progress=progress)


def _transcribe(meeting_id: int, *, settings: Settings | None,
                progress: ProgressCallback | None) -> int:
    from core.transcripts import load_platform_transcript

    settings = settings or get_settings()
    with session_scope() as session:
        meeting = _meeting(session, meeting_id)
        speakers = _speakers(session, meeting_id)
        assets = session.exec(select(MediaAsset).where(MediaAsset.meeting_id == meeting_id)
                              .order_by(MediaAsset.id)).all()
        platform = next((a for a in assets if a.kind == "transcript"), None)
        tracks = [AudioTrack(a.local_path or a.remote_ref, a.channel, a.speaker_email)
                  for a in assets if a.kind == "audio"]
        org_id = meeting.org_id

    started = time.perf_counter()
    if platform is not None:
        utterances = load_platform_transcript(platform.local_path or platform.remote_ref,
                                              max_bytes=settings.max_transcript_bytes,
                                              max_cues=settings.max_segments)
        attributions = attribute_by_name(utterances, speakers)
        source, model, language, duration = "platform", None, None, None
        if progress:
            progress(1.0, "platform transcript")
    elif tracks:
        results = transcribe_tracks(tracks, settings.asr, max_bytes=settings.max_media_bytes,
                                    progress=progress)
        utterances = sorted((u for r in results for u in r.utterances),
                            key=lambda u: (u.start, u.end, u.speaker_label or ""))
        if len(utterances) > settings.max_segments:
            raise InputError(f"the recording transcribed into {len(utterances):,} segments, "
                             f"over the limit of {settings.max_segments:,} "
                             "(COACHLOOP_MAX_SEGMENTS)", file=meeting.origin or None)
        labelled = all(t.speaker_email for t in tracks)
        if labelled and len(tracks) > 1:
            utterances = drop_channel_bleed(utterances)
        # Mixed audio without a platform transcript: nobody can be credited with anything.
        attributions = (attribute_by_track(utterances, speakers) if labelled
                        else [UNATTRIBUTED] * len(utterances))
        source, model = "asr", settings.asr.model
        language = next((r.language for r in results if r.language), None)
        duration = max((r.duration_s for r in results), default=None)
    else:
        raise InputError("meeting has neither a platform transcript nor audio to transcribe",
                         file=meeting.origin or None)
    asr_seconds = time.perf_counter() - started if source == "asr" else None

    with session_scope() as session:
        meeting = _meeting(session, meeting_id)
        clear_derived(session, meeting_id)
        transcript = Transcript(org_id=org_id, meeting_id=meeting_id, source=source, model=model,
                                language=language, duration_s=duration, asr_seconds=asr_seconds)
        session.add(transcript)
        session.flush()
        for idx, (utterance, attribution) in enumerate(zip(utterances, attributions, strict=True)):
            session.add(Segment(
                org_id=org_id, transcript_id=transcript.id, idx=idx, start=utterance.start,
                end=utterance.end, text=utterance.text, speaker_label=utterance.speaker_label,
                participant_id=attribution.speaker.key if attribution.speaker else None,
                role=attribution.role.value, attribution_confidence=attribution.confidence,
                words=[asdict(w) for w in utterance.words]))
        meeting.duration_s = duration or (max((u.end for u in utterances), default=0.0) or None)
        _advance(meeting, "transcribed")
        session.add(meeting)
    return len(utterances)


def _advance(meeting: Meeting, stage: str) -> None:
    meeting.stage, meeting.error, meeting.error_stage = stage, None, None
    meeting.updated_at = utcnow()


# ---------------------------------------------------------------------- score ----


def transcript_view(session: Session, meeting_id: int, min_confidence: float) -> TranscriptView:
    """The attributed transcript the scorer sees; weakly attributed segments count as unknown."""
    transcript = session.exec(select(Transcript).where(Transcript.meeting_id == meeting_id)).first()
    if transcript is None:
        raise InputError(f"meeting {meeting_id} has no transcript yet; transcribe it first")
    rows = session.exec(select(Segment, Participant).join(
        Participant, Segment.participant_id == Participant.id, isouter=True)
        .where(Segment.transcript_id == transcript.id).order_by(Segment.idx)).all()
    segments = []
    for segment, participant in rows:
        role = Role(segment.role)
        if segment.attribution_confidence < min_confidence:
            role = Role.UNKNOWN
        speaker = (participant.email or participant.name) if participant else segment.speaker_label
        segments.append(TranscriptSegment(segment.id, segment.start, segment.end, segment.text,
                                          role, speaker, segment.attribution_confidence,
                                          participant.name if participant else None))
    return TranscriptView(meeting_id, tuple(segments), transcript.source)


def get_scorer(settings: Settings):
    """The configured scorer (the built-in offline one is the embedded default)."""
    from core.score import BuiltinScorer

    if settings.scoring.scorer == "builtin":
        return BuiltinScorer()
    if settings.scoring.scorer == "llm":
        from core.llm_scorer import LlmScorer

        return LlmScorer(settings)
    raise ConfigError(f"COACHLOOP_SCORING__SCORER={settings.scoring.scorer!r} is not a known "
                      "scorer (available: builtin, llm)")


def scored_rep(session: Session, view: TranscriptView, meeting_id: int) -> int | None:
    """The org member who did most of our side's talking (the rep being coached)."""
    talk: dict[str, float] = defaultdict(float)
    for segment in view.segments:
        if segment.role is Role.REP and segment.speaker:
            talk[segment.speaker] += segment.end - segment.start
    participants = session.exec(select(Participant).where(
        Participant.meeting_id == meeting_id, Participant.user_id.is_not(None))).all()
    by_key = {(p.email or p.name): p.user_id for p in participants}
    for speaker, _ in sorted(talk.items(), key=lambda kv: (-kv[1], kv[0])):
        if speaker in by_key:
            return by_key[speaker]
    return _meeting(session, meeting_id).host_id


def score_meeting(meeting_id: int, *, settings: Settings | None = None) -> list[CallScoreResult]:
    """Score the meeting against every configured methodology; replaces earlier scores.
    Raises AlreadyClaimed when another runner has it."""
    with claimed(meeting_id, "score"):
        return _score(meeting_id, settings=settings)


def _score(meeting_id: int, *, settings: Settings | None) -> list[CallScoreResult]:
    from core.conversation import classify_stage, conversation_metrics
    from core.rubrics import find_rubric, rubric_search
    from core.score import for_stage

    settings = settings or get_settings()
    scorer = get_scorer(settings)
    rubrics = [find_rubric(key, rubric_search(settings))
               for key in settings.scoring.methodologies]
    with session_scope() as session:
        meeting = _meeting(session, meeting_id)
        view = transcript_view(session, meeting_id, settings.scoring.min_attribution_confidence)
        rep_id = scored_rep(session, view, meeting_id)
        org_id, title = meeting.org_id, meeting.title
    stage = classify_stage(title, view)
    metrics = conversation_metrics(view)
    results = [for_stage(scorer.score(view, rubric), rubric, stage.stage) for rubric in rubrics]

    with session_scope() as session:
        meeting = _meeting(session, meeting_id)
        clear_derived(session, meeting_id, keep_transcript=True)
        for rubric, result in zip(rubrics, results, strict=True):
            rubric_row = _rubric_row(session, org_id, rubric)
            usage = result.usage
            call = CallScore(org_id=org_id, meeting_id=meeting_id, rubric_id=rubric_row.id,
                             rep_id=rep_id, scorer=result.scorer,
                             scorer_version=result.scorer_version, overall=result.overall,
                             abstain_reason=result.abstain_reason, model=result.model,
                             prompt_version=result.prompt_version,
                             prompt_tokens=usage.prompt_tokens if usage else None,
                             completion_tokens=usage.completion_tokens if usage else None,
                             cost_usd=usage.cost_usd if usage else None,
                             cached=bool(usage and usage.cached))
            session.add(call)
            session.flush()
            for criterion in result.criteria:
                session.add(CriterionScore(
                    org_id=org_id, call_score_id=call.id, criterion=criterion.key,
                    skill=criterion.skill, score=criterion.score, max_score=criterion.max_score,
                    weight=criterion.weight, confidence=criterion.confidence,
                    rationale=criterion.rationale, state=criterion.state,
                    evidence=[asdict(e) for e in criterion.evidence]))
            for found in result.fields:
                session.add(FieldExtraction(
                    org_id=org_id, call_score_id=call.id, meeting_id=meeting_id, field=found.key,
                    label=found.label, value=found.value, confidence=found.confidence,
                    evidence=[asdict(e) for e in found.evidence], status=found.status,
                    negative=found.negative))
        _advance(meeting, "scored")
        meeting.call_stage = stage.stage
        meeting.conversation = {**metrics.as_dict(), "stage_confidence": stage.confidence,
                                "stage_reason": stage.reason}
        meeting.crm_synced_at = None  # new scores: the CRM is due an update
        session.add(meeting)
    return results


def _rubric_row(session: Session, org_id: int, rubric) -> Rubric:
    from sqlalchemy.exc import IntegrityError

    def existing() -> Rubric | None:
        return session.exec(select(Rubric).where(Rubric.org_id == org_id,
                                                 Rubric.key == rubric.key,
                                                 Rubric.version == rubric.version)).first()

    row = existing()
    if row is None:
        try:
            with session.begin_nested():  # another runner may be adding it at this moment
                row = Rubric(org_id=org_id, key=rubric.key, name=rubric.name,
                             version=rubric.version, content=rubric.model_dump(mode="json"))
                session.add(row)
        except IntegrityError:
            row = existing()
    return row


# ---------------------------------------------------------------- bookkeeping ----


def record_failure(meeting_id: int, stage: str, exc: BaseException) -> Resolution:
    """Remember why a stage failed, on the meeting, unless it is worth retrying (or another
    runner has it: then nothing failed)."""
    if isinstance(exc, AlreadyClaimed):
        return Resolution.SKIP
    resolution = classify(exc)
    if resolution is Resolution.TRANSIENT:
        # Worth retrying: the stage stays pending, but the reason is kept so reports can say
        # why the call is not scored yet.
        with session_scope() as session:
            meeting = session.get(Meeting, meeting_id)
            if meeting is not None:
                meeting.error, meeting.updated_at = user_message(exc), utcnow()
                session.add(meeting)
        return resolution
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is not None:
            meeting.stage, meeting.error_stage = "failed", stage
            meeting.error = user_message(exc)
            meeting.updated_at = utcnow()
            session.add(meeting)
    return resolution


def pending_meetings(org_id: int | None = None, *, include_failed: bool = False) -> list[tuple[int, str]]:
    """(meeting id, stage) for meetings that still have stages to run, oldest first."""
    with session_scope() as session:
        query = select(Meeting.id, Meeting.stage, Meeting.error_stage).order_by(Meeting.started_at,
                                                                                Meeting.id)
        if org_id is not None:
            query = query.where(Meeting.org_id == org_id)
        out = []
        for meeting_id, stage, error_stage in session.exec(query):
            if stage == "scored":
                continue
            if stage == "failed":
                if not include_failed:
                    continue
                stage = "transcribed" if error_stage == "score" else "ingested"
            out.append((meeting_id, stage))
        return out
