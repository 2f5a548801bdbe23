"""Coaching agendas: what a rep should work on this week, shown in their own calls.

Per rep, as of a date: the two skills to work on (the weakest against peers and the team
among skills with enough calls, weighted by how much each skill matters in the kind of calls
the rep has), each with moments from the rep's own calls that show the gap (a quote with its
time and a link), what good looks like, and last week's focus with whether it is sticking.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlmodel import Session, select

from core.access import Scope
from core.models import (CallScore, CriterionScore, Meeting, Rubric, Segment, Transcript, User,
                         as_utc)
from core.skill_taxonomy import SKILLS, STAGE_RELEVANCE

FOCUS_SKILLS = 2
MOMENTS = 3
STICKING_POINTS = 5.0  # a focus is sticking when calls since score this much higher


@dataclass(frozen=True)
class Moment:
    meeting_id: int
    title: str
    on: date
    start: float
    end: float
    quote: str
    why: str
    link: str


@dataclass(frozen=True)
class FocusSkill:
    skill: str
    label: str
    estimate: float
    percentile: float | None
    n_calls: int
    relevance: float
    why: str
    good: str  # what good looks like, from the rubric criteria that feed the skill
    moments: tuple[Moment, ...]


@dataclass(frozen=True)
class FollowUp:
    """Last week's focus: is it sticking?"""

    skill: str
    label: str
    before: float | None  # mean score on the skill's calls in the 30 days before last week
    since: float | None  # mean over calls since
    n_since: int
    verdict: str
    moments: tuple[Moment, ...]


@dataclass(frozen=True)
class Agenda:
    rep_email: str
    rep_name: str
    as_of: date
    window_days: int
    focus: tuple[FocusSkill, ...]
    last_week: tuple[FollowUp, ...]
    note: str | None = None


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time.max, timezone.utc)


def week_of(day: date) -> date:
    """The Monday a week's agenda belongs to."""
    return day - timedelta(days=day.weekday())


def record_focus(session: Session, org_id: int, rep_id: int, as_of: date,
                 skills: list[str]) -> None:
    """Remember what the rep's agenda for `as_of`'s week focused on (the latest agenda of a
    week counts), for the cohort comparison."""
    from core.models import AgendaFocus

    week = week_of(as_of)
    row = session.exec(select(AgendaFocus).where(AgendaFocus.rep_id == rep_id,
                                                 AgendaFocus.week == week)).first()
    row = row or AgendaFocus(org_id=org_id, rep_id=rep_id, week=week)
    row.skills = sorted(skills)
    session.add(row)


def coaching_agenda(session: Session, org: int | Scope, email: str, *, as_of: date,
                    window_days: int = 90, min_calls: int = 3, public_url: str = "",
                    record: bool = False) -> Agenda:
    """The rep's agenda as of a date; with `record` (the agenda was delivered: the CLI, the
    weekly job), its focus is kept for `core.cohorts`."""
    from core.skill_refresh import skill_observations
    from core.reports import find_user

    rep = find_user(session, org, email)
    org_id = rep.org_id
    # This week's window and last week's, and the 30 days a follow-up looks back over.
    reach = timedelta(days=7 + max(window_days, 30) + 1)
    observations = skill_observations(session, org_id, since=datetime.combine(
        as_of - reach, time.min, timezone.utc))
    focus = _choose(session, org_id, rep, observations, as_of, window_days, min_calls,
                    public_url)
    previous = _choose(session, org_id, rep, observations, as_of - timedelta(days=7),
                       window_days, min_calls, public_url, with_moments=False)
    follow_ups = tuple(_follow_up(session, rep, observations, f.skill, as_of, public_url)
                       for f in previous)
    note = None
    if not focus:
        note = (f"not enough calls yet: a skill needs {min_calls} scored calls in the last "
                f"{window_days} days before it is ranked")
    if record:
        record_focus(session, org_id, rep.id, as_of, [f.skill for f in focus])
    return Agenda(rep.email, rep.name, as_of, window_days, focus, follow_ups, note)


def weekly_agendas(org_id: int, as_of: date, *, window_days: int = 90, min_calls: int = 3,
                   public_url: str = "") -> list[Agenda]:
    """Every rep's agenda for the week, recorded (the worker's Monday job)."""
    from core.db import session_scope

    with session_scope() as session:
        emails = session.exec(select(User.email).where(User.org_id == org_id,
                                                       User.role == "rep")
                              .order_by(User.email)).all()
    out = []
    for email in emails:
        with session_scope() as session:
            out.append(coaching_agenda(session, org_id, email, as_of=as_of,
                                       window_days=window_days, min_calls=min_calls,
                                       public_url=public_url, record=True))
    return out


def _choose(session: Session, org_id: int, rep: User, observations: list, as_of: date,
            window_days: int, min_calls: int, public_url: str, *, with_moments: bool = True
            ) -> tuple[FocusSkill, ...]:
    from core.skills import compute_skill_estimates

    reps = session.exec(select(User.id).where(User.org_id == org_id, User.role == "rep")).all()
    estimates = [e for e in compute_skill_estimates(observations, as_of, windows=[window_days],
                                                    min_calls=min_calls, rep_ids=reps)
                 if e.rep_id == rep.id and e.state == "ok" and e.shrunk is not None]
    if not estimates:
        return ()
    stages = _stages(session, rep.id, as_of, window_days)
    ranked = []
    for e in estimates:
        relevance = (sum(STAGE_RELEVANCE.get(s, {}).get(e.skill, 0.0) for s in stages)
                     / len(stages)) if stages else 0.5
        if relevance <= 0:
            continue
        standing = e.shrunk if e.percentile is None else (e.shrunk + e.percentile) / 2
        ranked.append((relevance * (100.0 - standing), e, relevance))
    ranked.sort(key=lambda r: (-r[0], r[1].shrunk, r[1].skill))
    out = []
    for _, e, relevance in ranked[:FOCUS_SKILLS]:
        versus = (f"{e.percentile:.0f}th percentile among peers" if e.percentile is not None
                  else "no peers with enough calls to compare")
        why = (f"estimate {e.shrunk:.0f}/100 over {e.n_calls} calls ({versus}); matters "
               f"{'a lot' if relevance >= 0.9 else 'somewhat'} in this rep's "
               f"{_stage_words(stages)}")
        moments = _gap_moments(session, rep, e.skill, e.meeting_ids, public_url) \
            if with_moments else ()
        out.append(FocusSkill(e.skill, SKILLS[e.skill].label, e.shrunk, e.percentile,
                              e.n_calls, round(relevance, 2), why,
                              _what_good_looks_like(session, e.skill), moments))
    return tuple(out)


def _stages(session: Session, rep_id: int, as_of: date, window_days: int) -> list[str]:
    """The stage of each of the rep's scored calls in the window (one entry per call)."""
    start = _end_of(as_of - timedelta(days=window_days))
    rows = session.exec(select(Meeting.id, Meeting.call_stage)
                        .join(CallScore, CallScore.meeting_id == Meeting.id)
                        .where(CallScore.rep_id == rep_id, Meeting.started_at > start,
                               Meeting.started_at <= _end_of(as_of))).all()
    return [stage or "other" for stage in dict(rows).values()]


def _stage_words(stages: list[str]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for stage in stages:
        counts[stage] += 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])) \
        + " call(s)"


def _what_good_looks_like(session: Session, skill: str) -> str:
    if skill == "talk_listen_balance":
        return ("Keep your share of the talking near 45 %, stop within a minute to let the "
                "buyer react, and trade turns often.")
    from core.rubrics import builtin_rubric

    goods = []
    for key in ("meddic", "bant"):
        for criterion in builtin_rubric(key).criteria:
            if criterion.skill == skill and criterion.good not in goods:
                goods.append(criterion.good.strip())
    return " ".join(goods[:2]) or SKILLS[skill].description


def _moment(meeting: Meeting, start: float, end: float, quote: str, why: str,
            public_url: str) -> Moment:
    """A moment in one of the rep's calls, linked to that point of the call."""
    return Moment(meeting.id, meeting.title, as_utc(meeting.started_at).date(), start, end,
                  quote, why,
                  f"{public_url.rstrip('/')}/app/meetings/{meeting.id}?t={int(start)}")


def _gap_moments(session: Session, rep: User, skill: str, meeting_ids, public_url: str
                 ) -> tuple[Moment, ...]:
    """Where the gap shows: a weak criterion's own quote, else the buyer's opening the rep
    did not take up (an answer-style sentence no rep question drew out), else the call."""
    meetings = {m.id: m for m in session.exec(select(Meeting).where(
        Meeting.id.in_(list(meeting_ids))))}
    if skill == "talk_listen_balance":
        return _monologue_moments(session, meetings, public_url)
    rows = session.exec(select(CriterionScore, CallScore.meeting_id, Rubric.key)
                        .join(CallScore, CriterionScore.call_score_id == CallScore.id)
                        .join(Rubric, CallScore.rubric_id == Rubric.id)
                        .where(CallScore.meeting_id.in_(list(meetings)),
                               CallScore.rep_id == rep.id, CriterionScore.skill == skill,
                               CriterionScore.score.is_not(None))).all()
    weak = sorted(((c.score / c.max_score, -as_utc(meetings[m].started_at).timestamp(), c, m, k)
                   for c, m, k in rows if c.score / c.max_score < 0.5),
                  key=lambda r: (r[0], r[1]))
    out: list[Moment] = []
    seen_meetings: set[int] = set()
    for _ratio, _, criterion, meeting_id, rubric_key in weak:
        if meeting_id in seen_meetings or len(out) >= MOMENTS:
            continue
        meeting = meetings[meeting_id]
        moment = None
        if criterion.evidence:
            ev = criterion.evidence[0]
            moment = _moment(meeting, ev["start"], ev["end"], ev["quote"],
                             f"{criterion.criterion.replace('_', ' ')} only touched on "
                             f"({criterion.score:g}/{criterion.max_score:g}): "
                             f"{criterion.rationale}", public_url)
        else:
            opening = _missed_opening(session, meeting_id, rubric_key, criterion.criterion)
            if opening is not None:
                start, end, text = opening
                moment = _moment(meeting, start, end, text,
                                 f"the buyer opened the door to "
                                 f"{criterion.criterion.replace('_', ' ')} here and it was not "
                                 "explored", public_url)
        if moment is None:
            moment = _moment(meeting, 0.0, 0.0, "",
                             f"{criterion.criterion.replace('_', ' ')} never came up in this "
                             f"call ({meeting.call_stage or 'stage unknown'})", public_url)
        out.append(moment)
        seen_meetings.add(meeting_id)
    return tuple(out)


def _missed_opening(session: Session, meeting_id: int, rubric_key: str, criterion_key: str
                    ) -> tuple[float, float, str] | None:
    from core.rubrics import builtin_rubric

    try:
        criterion = builtin_rubric(rubric_key).criterion(criterion_key)
    except Exception:  # an org's own rubric, or a key it no longer has: no opening to show
        return None
    segments = session.exec(select(Segment).join(Transcript, Segment.transcript_id ==
                                                 Transcript.id)
                            .where(Transcript.meeting_id == meeting_id, Segment.role == "buyer")
                            .order_by(Segment.start)).all()
    for segment in segments:
        for sentence in re.split(r"(?<=[.!?])\s+", segment.text):
            if criterion.matches("answer", sentence):
                return segment.start, segment.end, sentence.strip()
    return None


def _monologue_moments(session: Session, meetings: dict[int, Meeting], public_url: str
                       ) -> tuple[Moment, ...]:
    ranked = sorted(meetings.values(), key=lambda m: (
        (m.conversation or {}).get("talk_listen_score", 100), m.id))
    out = []
    for meeting in ranked[:MOMENTS]:
        shape = meeting.conversation or {}
        if shape.get("talk_listen_score") is None or shape["talk_listen_score"] >= 70:
            continue
        segments = session.exec(select(Segment).join(Transcript, Segment.transcript_id ==
                                                     Transcript.id)
                                .where(Transcript.meeting_id == meeting.id)
                                .order_by(Segment.start)).all()
        best, run = (0.0, None, None), None
        for s in segments:
            if s.role == "rep":
                run = (run[0], s) if run else (s, s)
                if run[1].end - run[0].start > best[0]:
                    best = (run[1].end - run[0].start, run[0], run[1])
            elif s.role == "buyer":
                run = None
        if best[1] is None:
            continue
        length, first, last = best
        out.append(_moment(meeting, first.start, last.end, first.text,
                           f"you spoke {shape.get('talk_ratio', 0) * 100:.0f} % of the time; "
                           f"this stretch ran {length:.0f} s without the buyer", public_url))
    return tuple(out)


def _follow_up(session: Session, rep: User, observations: list, skill: str, as_of: date,
               public_url: str) -> FollowUp:
    pivot = _end_of(as_of - timedelta(days=7))
    mine = [o for o in observations if o.rep_id == rep.id and o.skill == skill]
    before = [o.score for o in mine if pivot - timedelta(days=30) < as_utc(o.at) <= pivot]
    since = [o for o in mine if pivot < as_utc(o.at) <= _end_of(as_of)]
    mean_before = round(sum(before) / len(before), 1) if before else None
    mean_since = round(sum(o.score for o in since) / len(since), 1) if since else None
    if not since:
        verdict = "no calls since: nothing to judge yet"
    elif mean_before is None:
        verdict = "calls since, but none in the month before to compare with"
    elif mean_since >= mean_before + STICKING_POINTS:
        verdict = f"sticking: {mean_before:.0f} → {mean_since:.0f}"
    elif mean_since <= mean_before - STICKING_POINTS:
        verdict = f"slipping: {mean_before:.0f} → {mean_since:.0f}"
    else:
        verdict = f"not yet: {mean_before:.0f} → {mean_since:.0f}"
    moments = _best_moments(session, rep, skill, [o.meeting_id for o in since], public_url)
    return FollowUp(skill, SKILLS[skill].label, mean_before, mean_since, len(since), verdict,
                    moments)


def _best_moments(session: Session, rep: User, skill: str, meeting_ids: list[int],
                  public_url: str) -> tuple[Moment, ...]:
    """The strongest evidence for the skill in calls since: proof it is (or isn't) sticking."""
    if not meeting_ids:
        return ()
    rows = session.exec(select(CriterionScore, Meeting)
                        .join(CallScore, CriterionScore.call_score_id == CallScore.id)
                        .join(Meeting, CallScore.meeting_id == Meeting.id)
                        .where(Meeting.id.in_(meeting_ids), CallScore.rep_id == rep.id,
                               CriterionScore.skill == skill,
                               CriterionScore.score.is_not(None))).all()
    rows = sorted((r for r in rows if r[0].evidence),
                  key=lambda r: (-(r[0].score / r[0].max_score), r[1].id))
    out, quoted = [], set()
    for criterion, meeting in rows:
        ev = criterion.evidence[0]
        if (meeting.id, ev["quote"]) in quoted or len(out) == 2:
            continue
        quoted.add((meeting.id, ev["quote"]))
        out.append(_moment(meeting, ev["start"], ev["end"], ev["quote"],
                           f"{criterion.criterion.replace('_', ' ')} "
                           f"{criterion.score:g}/{criterion.max_score:g}", public_url))
    return tuple(out)
