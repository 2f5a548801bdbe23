"""Read models for people: meetings with their evidence, reps with their skills.

The API serves these as JSON and the CLI renders them as tables; both ask the same questions
here, so a number on the terminal is the number in the API.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, func, select

from core.access import Scope, as_scope
from core.errors import NotFound
from core.models import (CallScore, CriterionScore, Deal, FieldExtraction, MediaAsset, Meeting,
                         MeetingDeal, Participant, Rubric, Segment, SkillSnapshot, Transcript, User)


class MeetingSummary(BaseModel):
    id: int
    title: str
    source: str
    external_id: str
    started_at: datetime
    duration_s: float | None
    stage: str
    error: str | None
    rep: str | None
    scores: dict[str, float | None]  # rubric key → overall 0–100


class ParticipantOut(BaseModel):
    name: str
    email: str | None
    role: str


class SegmentOut(BaseModel):
    id: int
    start: float
    end: float
    speaker: str | None
    role: str
    attribution_confidence: float
    text: str


class EvidenceOut(BaseModel):
    quote: str
    start: float
    end: float
    segment_id: int


class CriterionOut(BaseModel):
    criterion: str
    skill: str
    score: float | None
    max_score: float
    confidence: float
    rationale: str
    evidence: list[EvidenceOut]
    state: str = "scored"  # scored | abstained | unsupported | not_applicable


class FieldOut(BaseModel):
    field: str
    label: str
    value: str | None
    confidence: float
    evidence: list[EvidenceOut]


class CallScoreOut(BaseModel):
    rubric: str
    rubric_version: str
    scorer: str
    scorer_version: str
    overall: float | None
    abstain_reason: str | None
    model: str | None = None
    usage: dict[str, Any] | None = None  # LLM tokens, cost, cached
    criteria: list[CriterionOut]
    fields: list[FieldOut]


class MeetingDetail(MeetingSummary):
    call_stage: str | None
    conversation: dict[str, Any]  # talk ratio, question rate, longest monologue, ...
    participants: list[ParticipantOut]
    deal: str | None
    transcript_source: str | None
    segments: list[SegmentOut]
    call_scores: list[CallScoreOut]


class SkillOut(BaseModel):
    skill: str
    window_days: int
    as_of: date
    n_calls: int
    raw_mean: float | None
    shrunk: float | None
    interval_low: float | None
    interval_high: float | None
    percentile: float | None
    slope_per_30d: float | None
    state: str


class RepOut(BaseModel):
    id: int
    name: str
    email: str
    role: str
    manager: str | None


class CriterionSummary(BaseModel):
    """One criterion across a rep's calls in a window, with one call moment that shows it."""

    criterion: str
    skill: str
    mean_score: float
    max_score: float
    n_calls: int
    example_meeting_id: int
    example_rationale: str
    evidence: list[EvidenceOut]


class NotMeasured(BaseModel):
    """A skill with no estimate, and why: shown, never silently missing."""

    skill: str
    label: str
    reason: str


class Scorecard(BaseModel):
    rep: RepOut
    as_of: date | None
    window_days: int
    skills: list[SkillOut]
    not_measured: list[NotMeasured]
    recent_calls: list[MeetingSummary]
    strengths: list[CriterionSummary]  # criteria done well on average, best moment quoted
    gaps: list[CriterionSummary]  # criteria done poorly on average, a telling moment


class TeamRow(BaseModel):
    rep: RepOut
    n_calls: int
    skills: dict[str, SkillOut]


class TeamTable(BaseModel):
    as_of: date | None
    window_days: int
    skills: list[str]
    rows: list[TeamRow]
    not_measured: list[NotMeasured]


def not_measured(measured: set[str], methodologies: list[str] | None = None,
                 rubric_dirs: tuple = ()) -> list[NotMeasured]:
    """Every skill of the taxonomy without an estimate in `measured`, with the reason: no
    methodology in use scores it (and which built-in ones would), or no call showed it."""
    from core.rubrics import builtin_rubrics_scoring, find_rubric, rubric_search, skills_scored_by
    from core.settings import get_settings
    from core.skill_taxonomy import SKILLS

    if methodologies is None:
        scoring = get_settings().scoring
        methodologies, rubric_dirs = scoring.methodologies, rubric_search(get_settings())
    covered = skills_scored_by([find_rubric(k, rubric_dirs) for k in methodologies])
    out = []
    for skill, info in SKILLS.items():
        if skill in measured:
            continue
        if skill in covered:
            reason = "no scored call in this window showed it"
        else:
            others = ", ".join(builtin_rubrics_scoring(skill)) or "none"
            reason = (f"none of the methodologies in use "
                      f"({', '.join(methodologies)}) scores it; built-in rubrics that do: "
                      f"{others} (add one to COACHLOOP_SCORING__METHODOLOGIES)")
        out.append(NotMeasured(skill=skill, label=info.label, reason=reason))
    return out


def _rep_out(user: User, managers: dict[int, str]) -> RepOut:
    return RepOut(id=user.id, name=user.name, email=user.email, role=user.role,
                  manager=managers.get(user.manager_id) if user.manager_id else None)


def _names(session: Session, org_id: int) -> dict[int, str]:
    return {u.id: u.name for u in session.exec(select(User).where(User.org_id == org_id))}


def _overall_by_meeting(session: Session, meeting_ids: list[int]) -> dict[int, dict[str, float | None]]:
    out: dict[int, dict[str, float | None]] = defaultdict(dict)
    if meeting_ids:
        rows = session.exec(select(CallScore.meeting_id, Rubric.key, CallScore.overall)
                            .join(Rubric, CallScore.rubric_id == Rubric.id)
                            .where(CallScore.meeting_id.in_(meeting_ids)))
        for meeting_id, key, overall in rows:
            out[meeting_id][key] = overall
    return out


def list_meetings(session: Session, org: int | Scope, *, rep_id: int | None = None,
                  limit: int = 100, offset: int = 0) -> list[MeetingSummary]:
    """Meetings in scope, newest first."""
    scope = as_scope(org)
    org_id = scope.org_id
    query = select(Meeting).where(scope.meeting_clause())
    if rep_id is not None:
        query = query.where(Meeting.id.in_(select(CallScore.meeting_id)
                                           .where(CallScore.rep_id == rep_id)))
    meetings = session.exec(query.order_by(Meeting.started_at.desc(), Meeting.id.desc())
                            .offset(offset).limit(limit)).all()
    return _summaries(session, org_id, list(meetings))


def _evidence(raw: list) -> list[EvidenceOut]:
    return [EvidenceOut(**e) for e in raw]


def _criterion_out(row: CriterionScore) -> CriterionOut:
    return CriterionOut(criterion=row.criterion, skill=row.skill, score=row.score,
                        max_score=row.max_score, confidence=row.confidence,
                        rationale=row.rationale, evidence=_evidence(row.evidence),
                        state=row.state)


def meeting_detail(session: Session, org: int | Scope, meeting_id: int) -> MeetingDetail:
    """One meeting with participants, transcript, scores, evidence and field values."""
    scope = as_scope(org)
    org_id = scope.org_id
    meeting = session.exec(select(Meeting).where(Meeting.id == meeting_id,
                                                 scope.meeting_clause())).first()
    if meeting is None:  # another org's, or out of scope: the same answer as none at all
        raise NotFound(f"meeting {meeting_id} not found")
    base = _summaries(session, org_id, [meeting])[0]
    participants = session.exec(select(Participant).where(Participant.meeting_id == meeting_id)
                                .order_by(Participant.id)).all()
    by_participant = {p.id: p for p in participants}
    transcript = session.exec(select(Transcript).where(Transcript.meeting_id == meeting_id)).first()
    segments = []
    if transcript:
        for s in session.exec(select(Segment).where(Segment.transcript_id == transcript.id)
                              .order_by(Segment.idx)):
            person = by_participant.get(s.participant_id)
            segments.append(SegmentOut(id=s.id, start=s.start, end=s.end, role=s.role,
                                       speaker=person.name if person else s.speaker_label,
                                       attribution_confidence=s.attribution_confidence,
                                       text=s.text))
    call_scores = []
    for call, rubric in session.exec(select(CallScore, Rubric).join(
            Rubric, CallScore.rubric_id == Rubric.id).where(CallScore.meeting_id == meeting_id)
            .order_by(Rubric.key)):
        criteria = session.exec(select(CriterionScore).where(
            CriterionScore.call_score_id == call.id).order_by(CriterionScore.id)).all()
        fields = session.exec(select(FieldExtraction).where(
            FieldExtraction.call_score_id == call.id).order_by(FieldExtraction.id)).all()
        call_scores.append(CallScoreOut(
            rubric=rubric.key, rubric_version=rubric.version, scorer=call.scorer,
            scorer_version=call.scorer_version, overall=call.overall,
            abstain_reason=call.abstain_reason, model=call.model,
            usage=None if call.prompt_tokens is None else {
                "prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens,
                "cost_usd": call.cost_usd, "cached": call.cached},
            criteria=[_criterion_out(c) for c in criteria],
            fields=[FieldOut(field=f.field, label=f.label, value=f.value,
                             confidence=f.confidence, evidence=_evidence(f.evidence))
                    for f in fields]))
    deal = session.exec(select(Deal.name).join(MeetingDeal, MeetingDeal.deal_id == Deal.id)
                        .where(MeetingDeal.meeting_id == meeting_id)).first()
    return MeetingDetail(**base.model_dump(), call_stage=meeting.call_stage,
                         conversation=meeting.conversation or {},
                         participants=[ParticipantOut(name=p.name, email=p.email, role=p.role)
                                       for p in participants],
                         deal=deal, transcript_source=transcript.source if transcript else None,
                         segments=segments, call_scores=call_scores)



def meeting_audio(session: Session, org: int | Scope, meeting_id: int) -> Path:
    """The recording of a meeting in scope, as a local file: the mixed recording where there
    is one, else its first track. Out of scope reads the same as no recording at all."""
    scope = as_scope(org)
    visible = session.exec(select(Meeting.id).where(Meeting.id == meeting_id,
                                                    scope.meeting_clause())).first()
    assets = session.exec(select(MediaAsset).where(
        MediaAsset.meeting_id == meeting_id, MediaAsset.kind == "audio",
        MediaAsset.local_path.is_not(None))).all() if visible else []
    for asset in sorted(assets, key=lambda a: (a.channel is not None, a.channel or 0, a.id)):
        path = Path(asset.local_path)
        if path.is_file():
            return path
    raise NotFound(f"no recording of meeting {meeting_id} to play")

def _summaries(session: Session, org_id: int, meetings: list[Meeting]) -> list[MeetingSummary]:
    names = _names(session, org_id)
    ids = [m.id for m in meetings]
    overall = _overall_by_meeting(session, ids)
    reps = dict(session.exec(select(CallScore.meeting_id, CallScore.rep_id)
                             .where(CallScore.meeting_id.in_(ids))).all()) if ids else {}
    return [MeetingSummary(id=m.id, title=m.title, source=m.source, external_id=m.external_id,
                           started_at=m.started_at, duration_s=m.duration_s, stage=m.stage,
                           error=m.error, rep=names.get(reps.get(m.id) or m.host_id),
                           scores=overall.get(m.id, {})) for m in meetings]


def list_reps(session: Session, org: int | Scope) -> list[RepOut]:
    """The people in scope."""
    scope = as_scope(org)
    managers = _names(session, scope.org_id)
    users = session.exec(select(User).where(scope.user_clause()).order_by(User.name)).all()
    return [_rep_out(u, managers) for u in users]


def latest_as_of(session: Session, org_id: int) -> date | None:
    """The newest date skills were computed for."""
    return session.exec(select(func.max(SkillSnapshot.as_of))
                        .where(SkillSnapshot.org_id == org_id)).one()


def _skill_out(row: SkillSnapshot) -> SkillOut:
    return SkillOut(**row.model_dump(include=set(SkillOut.model_fields)))


def rep_skills(session: Session, org_id: int, rep_id: int, as_of: date | None = None,
               window_days: int | None = None) -> list[SkillOut]:
    """A rep's skill snapshots as of a date (default: the latest computed)."""
    as_of = as_of or latest_as_of(session, org_id)
    query = select(SkillSnapshot).where(SkillSnapshot.org_id == org_id,
                                        SkillSnapshot.rep_id == rep_id,
                                        SkillSnapshot.as_of == as_of)
    if window_days:
        query = query.where(SkillSnapshot.window_days == window_days)
    return [_skill_out(r) for r in session.exec(query.order_by(SkillSnapshot.window_days,
                                                               SkillSnapshot.skill))]


def find_user(session: Session, org: int | Scope, email: str) -> User:
    """The person with this e-mail, if in scope (out of scope reads as nobody)."""
    user = session.exec(select(User).where(as_scope(org).user_clause(),
                                           User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(f"no one with email {email!r} in this org")
    return user


def rep_scorecard(session: Session, org: int | Scope, email: str, *,
                  as_of: date | None = None, window_days: int = 90) -> Scorecard:
    """A rep's skills in one window, their recent calls, and evidence-backed strengths and gaps."""
    user = find_user(session, org, email)
    org_id = user.org_id
    as_of = as_of or latest_as_of(session, org_id)
    skills = rep_skills(session, org_id, user.id, as_of, window_days)
    recent = list_meetings(session, org_id, rep_id=user.id, limit=10)
    strengths, gaps = _strengths_and_gaps(session, user.id, as_of, window_days)
    measured = {s.skill for s in skills if s.n_calls}
    return Scorecard(rep=_rep_out(user, _names(session, org_id)), as_of=as_of,
                     window_days=window_days, skills=skills,
                     not_measured=not_measured(measured), recent_calls=recent,
                     strengths=strengths, gaps=gaps)


STRENGTH_AT, GAP_AT = 0.6, 0.35  # mean share of the scale


def _strengths_and_gaps(session: Session, rep_id: int, as_of: date | None, window_days: int
                        ) -> tuple[list[CriterionSummary], list[CriterionSummary]]:
    query = (select(CriterionScore, CallScore.meeting_id).join(
        CallScore, CriterionScore.call_score_id == CallScore.id).join(
        Meeting, CallScore.meeting_id == Meeting.id).where(
        CallScore.rep_id == rep_id, CriterionScore.score.is_not(None))
        .order_by(Meeting.started_at.desc(), CriterionScore.id))
    if as_of is not None:
        start = datetime.combine(as_of - timedelta(days=window_days), time.max, timezone.utc)
        end = datetime.combine(as_of, time.max, timezone.utc)
        query = query.where(Meeting.started_at > start, Meeting.started_at <= end)
    by_criterion: dict[str, list[tuple[CriterionScore, int]]] = defaultdict(list)
    for row, meeting_id in session.exec(query):
        by_criterion[row.criterion].append((row, meeting_id))

    def summary(rows: list[tuple[CriterionScore, int]], best: bool) -> CriterionSummary:
        ratio = lambda r: r[0].score / r[0].max_score  # noqa: E731
        # Strength: the best-evidenced strong moment. Gap: a weak moment, quoted if possible.
        example = (max(rows, key=lambda r: (ratio(r), r[0].confidence, -r[0].id)) if best
                   else min(rows, key=lambda r: (ratio(r), not r[0].evidence, r[0].id)))
        first = rows[0][0]
        return CriterionSummary(
            criterion=first.criterion, skill=first.skill, max_score=first.max_score,
            mean_score=round(sum(r.score for r, _ in rows) / len(rows), 2), n_calls=len(rows),
            example_meeting_id=example[1], example_rationale=example[0].rationale,
            evidence=_evidence(example[0].evidence))

    means = {key: sum(r.score / r.max_score for r, _ in rows) / len(rows)
             for key, rows in by_criterion.items()}
    strengths = [summary(by_criterion[k], True) for k in sorted(means, key=lambda k: (-means[k], k))
                 if means[k] >= STRENGTH_AT][:3]
    gaps = [summary(by_criterion[k], False) for k in sorted(means, key=lambda k: (means[k], k))
            if means[k] <= GAP_AT][:3]
    return strengths, gaps


def team_table(session: Session, org: int | Scope, *, as_of: date | None = None,
               window_days: int = 90) -> TeamTable:
    """Every rep in scope, skills side by side in one window."""
    scope = as_scope(org)
    org_id = scope.org_id
    as_of = as_of or latest_as_of(session, org_id)
    managers = _names(session, org_id)
    rows = session.exec(select(SkillSnapshot, User).join(User, SkillSnapshot.rep_id == User.id)
                        .where(scope.user_clause(), SkillSnapshot.as_of == as_of,
                               SkillSnapshot.window_days == window_days)
                        .order_by(User.name, SkillSnapshot.skill)).all()
    by_rep: dict[int, TeamRow] = {}
    skills: set[str] = set()
    for snapshot, user in rows:
        row = by_rep.setdefault(user.id, TeamRow(rep=_rep_out(user, managers), n_calls=0, skills={}))
        row.skills[snapshot.skill] = _skill_out(snapshot)
        row.n_calls = max(row.n_calls, snapshot.n_calls)
        skills.add(snapshot.skill)
    measured = {skill for row in by_rep.values() for skill, s in row.skills.items()
                if s.n_calls}
    return TeamTable(as_of=as_of, window_days=window_days, skills=sorted(skills),
                     rows=list(by_rep.values()), not_measured=not_measured(measured))



class TrendPoint(BaseModel):
    """A skill's estimate as of one week's end, with its 90 % interval."""

    as_of: date
    shrunk: float | None
    interval_low: float | None
    interval_high: float | None
    n_calls: int
    state: str


def skill_trend(session: Session, org: int | Scope, email: str, *, as_of: date | None = None,
                window_days: int = 90, weeks: int = 12, min_calls: int = 3
                ) -> dict[str, list[TrendPoint]]:
    """A rep's estimate per skill at each of the last `weeks` week ends up to `as_of`, each
    from the calls in the window before it and shrunk toward the team of that day (the
    estimator the snapshots use, so the last point is the scorecard's)."""
    from bisect import bisect_right

    from core.skill_refresh import skill_observations
    from core.skills import RepWindow, estimate_peers

    user = find_user(session, org, email)
    org_id = user.org_id
    as_of = as_of or latest_as_of(session, org_id)
    if as_of is None:
        return {}
    ends = [as_of - timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]
    earliest = datetime.combine(ends[0] - timedelta(days=window_days), time.min, timezone.utc)
    calls: dict[tuple[str, int], list] = defaultdict(list)
    for o in sorted(skill_observations(session, org_id, since=earliest),
                    key=lambda o: (o.at, o.meeting_id)):
        calls[(o.skill, o.rep_id)].append(o)
    days = {key: [o.at.date() for o in found] for key, found in calls.items()}
    trend: dict[str, list[TrendPoint]] = {}
    for skill in sorted({skill for skill, rep in calls if rep == user.id}):
        peers = [rep for s, rep in calls if s == skill]
        for end in ends:  # each rep's calls in (end - window, end], as the snapshots count
            start = end - timedelta(days=window_days)
            windows = {rep: RepWindow.of(calls[(skill, rep)][
                bisect_right(days[(skill, rep)], start):bisect_right(days[(skill, rep)], end)])
                for rep in peers}
            mine = next(e for e in estimate_peers(skill, window_days, end, windows, min_calls)
                        if e.rep_id == user.id)
            trend.setdefault(skill, []).append(TrendPoint(
                as_of=end, shrunk=mine.shrunk, interval_low=mine.interval_low,
                interval_high=mine.interval_high, n_calls=mine.n_calls, state=mine.state))
    return trend


def rep_segments(session: Session, org_id: int) -> dict[int, str]:
    """Each deal owner's segment: whether the median of their deals' amounts is below or above
    the org's median deal (the size segments the outcomes analysis uses)."""
    from statistics import median

    amounts: dict[int, list[float]] = defaultdict(list)
    for owner, amount in session.exec(select(Deal.owner_id, Deal.amount).where(
            Deal.org_id == org_id, Deal.owner_id.is_not(None), Deal.amount.is_not(None))):
        amounts[owner].append(amount)
    if not amounts:
        return {}
    middle = median(a for values in amounts.values() for a in values)
    return {owner: "smaller deals" if median(values) < middle else "larger deals"
            for owner, values in amounts.items()}

# ------------------------------------------------------------ calls not scored ----

STAGE_WORDS = {"transcribe": "transcription", "score": "scoring", "ingest": "ingest"}


class NotScored(BaseModel):
    """Calls that were ingested but do not count toward any rep's skills, by reason."""

    total: int
    reasons: dict[str, int]  # reason → calls, most common first

    def line(self) -> str:
        """'3 calls not scored: 2 no speech ... attributed to the rep, 1 transcription
        failed: …' ('' when every call is scored)."""
        if not self.total:
            return ""
        parts = ", ".join(f"{n} {reason}" for reason, n in self.reasons.items())
        return f"{self.total} call{'s' if self.total != 1 else ''} not scored: {parts}"


def _general(reason: str) -> str:
    """An abstention reason without its per-call figures, so like calls group together."""
    import re

    return re.sub(r"\s*\([^)]*\)", "", reason).strip().rstrip(".")


def not_scored(session: Session, org_id: int, *, meeting_ids: list[int] | None = None,
               rep_id: int | None = None, as_of: date | None = None,
               window_days: int | None = None) -> NotScored:
    """Why calls (all the org's; or these; or one rep's) have no scores that count: failed
    stages (with the stored error), scorer abstentions (with the stored reason), no rep of
    ours on the call, or still waiting for `coachloop process` (with the last transient
    error, if any)."""
    query = select(Meeting).where(Meeting.org_id == org_id)
    if meeting_ids is not None:
        query = query.where(Meeting.id.in_(meeting_ids or [-1]))
    if rep_id is not None:
        query = query.where((Meeting.host_id == rep_id) | Meeting.id.in_(
            select(Participant.meeting_id).where(Participant.user_id == rep_id)))
    if as_of is not None and window_days:  # the window the skill tables show
        query = query.where(
            Meeting.started_at > datetime.combine(as_of - timedelta(days=window_days), time.max,
                                                  timezone.utc),
            Meeting.started_at <= datetime.combine(as_of, time.max, timezone.utc))
    meetings = session.exec(query).all()
    ids = [m.id for m in meetings]
    scores: dict[int, list[CallScore]] = defaultdict(list)
    if ids:
        for call in session.exec(select(CallScore).where(CallScore.meeting_id.in_(ids))):
            scores[call.meeting_id].append(call)
    reasons: dict[str, int] = defaultdict(int)
    for meeting in meetings:
        reason = None
        if meeting.stage == "failed":
            stage = STAGE_WORDS.get(meeting.error_stage or "", meeting.error_stage or "a stage")
            reason = f"{stage} failed: {meeting.error or 'no reason recorded'}"
        elif meeting.stage != "scored":
            reason = "not processed yet" + (f" (last try: {meeting.error})" if meeting.error
                                            else "; run `coachloop process`")
        else:
            calls = scores.get(meeting.id, [])
            if calls and all(c.overall is None and c.abstain_reason for c in calls):
                reason = _general(calls[0].abstain_reason)
            elif calls and all(c.rep_id is None for c in calls):
                reason = "no rep of ours identified on the call"
        if reason is not None:
            reasons[reason] += 1
    ordered = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return NotScored(total=sum(ordered.values()), reasons=ordered)
