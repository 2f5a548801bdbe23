"""Skill snapshots per org: the database rolls criteria up into call scores, `core.skills` turns
them into estimates, and a refresh writes them, reading again only the reps whose calls changed.

A refresh is debounced: a scored call schedules one for its org (`schedule_refresh`) unless one
is already due, and that one sees every call scored meanwhile (`begin_refresh`); while a
backfill is still being scored, the due one waits for it (`calls_in_flight`,
`postpone_refresh`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, insert
from sqlmodel import Session, delete, select, update

from core.db import session_scope
from core.domain import SkillEstimate, SkillObservation
from core.models import CallScore, CriterionScore, Meeting, Org, SkillSnapshot, User, utcnow
from core.settings import Settings, get_settings
from core.skills import RepWindow, _r, compute_skill_estimates, estimate_windows


def skill_observations(session: Session, org_id: int, since: datetime | None = None,
                       rep_ids: Collection[int] | None = None) -> list[SkillObservation]:
    """Every scored call's per-skill scores (`SkillObservation`s) for the org's reps.

    The database does the roll-up from criteria to one score per call and skill (the
    weighted mean of score / max_score × 100 over the skill's scored criteria, as
    `core.skills.call_skill_scores` defines it), reading only the columns it needs: no
    evidence, no rationale, no ORM objects. 920,000 criterion rows become a few hundred
    thousand small tuples. `since`: only calls that started after it; `rep_ids`: only
    these reps' calls."""
    calls_of = (CallScore.org_id == org_id, CallScore.rep_id.is_not(None),
                *(() if since is None else (Meeting.started_at > since,)),
                *(() if rep_ids is None else (CallScore.rep_id.in_(sorted(rep_ids)),)))
    weight = func.sum(CriterionScore.weight)
    weighted = func.sum(CriterionScore.weight * CriterionScore.score * 100.0
                        / CriterionScore.max_score)
    scored = (select(CallScore.meeting_id, CallScore.rep_id, Meeting.started_at,
                     CriterionScore.skill, weighted, weight)
              .join(Meeting, CallScore.meeting_id == Meeting.id)
              .join(CriterionScore, CriterionScore.call_score_id == CallScore.id)
              .where(*calls_of, CriterionScore.score.is_not(None))
              .group_by(CallScore.meeting_id, CallScore.rep_id, Meeting.started_at,
                        CriterionScore.skill))
    observations = [SkillObservation(rep_id, skill, meeting_id, at,
                                     _r(min(max(total / weights, 0.0), 100.0)))
                    for meeting_id, rep_id, at, skill, total, weights in session.exec(scored)
                    if weights and weights > 0]
    # Talk/listen balance comes from the conversation's shape, not from a rubric: one per
    # call that has criteria (scored or not), as for the rubric skills.
    calls = (select(CallScore.meeting_id, CallScore.rep_id, Meeting.started_at,
                    Meeting.conversation)
             .join(Meeting, CallScore.meeting_id == Meeting.id)
             .where(*calls_of, CallScore.id.in_(select(CriterionScore.call_score_id))))
    seen: set[tuple[int, int]] = set()
    for meeting_id, rep_id, at, shape in session.exec(calls):
        score = (shape or {}).get("talk_listen_score")
        if score is not None and (meeting_id, rep_id) not in seen:
            seen.add((meeting_id, rep_id))
            observations.append(SkillObservation(rep_id, "talk_listen_balance", meeting_id,
                                                 at, float(score)))
    return observations


def refresh_skills(org_id: int, as_of: date | None = None, *,
                   settings: Settings | None = None, full: bool = False) -> int:
    """Recompute every rep's skill snapshots as of a date (default: today, UTC); returns the
    number of snapshot rows. Idempotent.

    When that date's snapshots exist, only reps whose scored calls changed since (a new,
    re-scored, moved or deleted call) are read again; everyone is re-ranked against them
    from the sums their rows keep. `full`, or too many changed reps, recomputes everyone."""
    settings = settings or get_settings()
    as_of = as_of or datetime.now(timezone.utc).date()
    with session_scope() as session:
        # One refresh of an org at a time (two `process` runs, a worker and the CLI): the
        # org's row is locked until this one's snapshots are in (SQLite: one writer anyway).
        session.exec(select(Org.id).where(Org.id == org_id).with_for_update()).first()
        reps = set(session.exec(select(User.id).where(User.org_id == org_id,
                                                      User.role == "rep")).all())
        # Only the calls the longest window can hold (a day's margin for time zones): a
        # refresh costs what the windows hold, not the org's whole history.
        since = datetime.combine(as_of - timedelta(days=max(settings.skills.windows) + 1),
                                 datetime.min.time(), timezone.utc)
        digests = _call_digests(session, org_id, since)
        if not full:
            count = _refresh_changed(session, org_id, as_of, since, reps, digests, settings)
            if count is not None:
                return count
        estimates = compute_skill_estimates(skill_observations(session, org_id, since), as_of,
                                            windows=settings.skills.windows,
                                            min_calls=settings.skills.min_calls, rep_ids=reps)
        session.exec(delete(SkillSnapshot).where(SkillSnapshot.org_id == org_id,
                                                 SkillSnapshot.as_of == as_of))
        _insert(session, org_id, estimates, digests)
    return len(estimates)


def _call_digests(session: Session, org_id: int, since: datetime) -> dict[int, str]:
    """Each rep's scored calls since a time, fingerprinted by count, last score id and last
    score time: a new, re-scored or deleted call moves it (ids only grow; SQLite may reuse
    the highest after a delete, the time tells that apart)."""
    rows = session.exec(select(CallScore.rep_id, func.count(CallScore.id), func.max(CallScore.id),
                               func.max(CallScore.created_at))
                        .join(Meeting, CallScore.meeting_id == Meeting.id)
                        .where(CallScore.org_id == org_id, CallScore.rep_id.is_not(None),
                               Meeting.started_at > since)
                        .group_by(CallScore.rep_id))
    return {rep: f"{count}:{last_id}:{last_at}" for rep, count, last_id, last_at in rows}


def _insert(session: Session, org_id: int, estimates: Iterable[SkillEstimate],
            digests: dict[int, str]) -> None:
    rows = [dict(asdict(e), org_id=org_id, meeting_ids=list(e.meeting_ids),
                 calls_digest=digests.get(e.rep_id, ""), computed_at=utcnow())
            for e in estimates]
    if rows:
        session.exec(insert(SkillSnapshot), params=rows)


_RERANKED = ("shrunk", "interval_low", "interval_high", "percentile", "state")


def _refresh_changed(session: Session, org_id: int, as_of: date, since: datetime,
                     reps: set[int], digests: dict[int, str], settings: Settings) -> int | None:
    """The incremental refresh, or None when it cannot stand in for a full one: no snapshots
    for the date yet (or from before fingerprints), other windows, or most reps changed."""
    stored = session.exec(select(SkillSnapshot.id, SkillSnapshot.rep_id, SkillSnapshot.skill,
                                 SkillSnapshot.window_days, SkillSnapshot.n_calls,
                                 SkillSnapshot.score_sum, SkillSnapshot.score_ss,
                                 SkillSnapshot.slope_per_30d, SkillSnapshot.calls_digest)
                          .where(SkillSnapshot.org_id == org_id,
                                 SkillSnapshot.as_of == as_of)).all()
    windows = sorted(set(settings.skills.windows))
    if not stored or any(row.calls_digest is None for row in stored) \
            or sorted({row.window_days for row in stored}) != windows:
        return None
    everyone = reps | set(digests)
    stored_digest = {row.rep_id: row.calls_digest for row in stored}
    changed = {rep for rep in everyone | set(stored_digest)
               if digests.get(rep, "") != stored_digest.get(rep)}
    if not changed:
        return len(stored)
    if 2 * len(changed) > len(everyone):
        return None

    observations = skill_observations(session, org_id, since, rep_ids=changed)
    kept = {(row.rep_id, row.skill, row.window_days): row for row in stored
            if row.rep_id not in changed}
    skills = {row.skill for row in stored} | {o.skill for o in observations}
    # A skill only the changed reps had before, and no longer, drops out of a full refresh;
    # whether an unchanged rep has a call just outside the windows (which keeps it) is not
    # in their rows, so a full refresh decides.
    still_seen = {skill for (_, skill, _), row in kept.items() if row.n_calls} \
        | {o.skill for o in observations}
    if skills - still_seen:
        return None

    known = {key_: RepWindow(row.n_calls, row.score_sum, row.score_ss, row.slope_per_30d)
             for key_, row in kept.items()}
    estimates = estimate_windows(observations, as_of, windows, settings.skills.min_calls,
                                 everyone, skills, known)

    session.exec(delete(SkillSnapshot).where(SkillSnapshot.org_id == org_id,
                                             SkillSnapshot.as_of == as_of,
                                             SkillSnapshot.rep_id.in_(sorted(changed))))
    fresh, reranked = [], []
    for e in estimates:
        row = kept.get((e.rep_id, e.skill, e.window_days))
        if row is None:
            fresh.append(e)
        else:
            reranked.append(dict(id=row.id, computed_at=utcnow(),
                                 **{name: getattr(e, name) for name in _RERANKED}))
    _insert(session, org_id, fresh, digests)
    if reranked:
        session.exec(update(SkillSnapshot), params=reranked)
    return len(estimates)


# A schedule older than this was lost (its task never ran): another may take its place.
_LOST_SCHEDULE = timedelta(minutes=10)


def schedule_refresh(org_id: int, debounce: timedelta) -> bool:
    """Whether the caller should schedule the org's refresh `debounce` from now: True for
    the first call scored in a window, False while one is already due (it will see this
    call's scores too). A conditional update: two workers never both schedule."""
    now = utcnow()
    with session_scope() as session:
        won = session.exec(update(Org).where(
            Org.id == org_id, (Org.refresh_due_at.is_(None))
            | (Org.refresh_due_at < now - _LOST_SCHEDULE))
            .values(refresh_due_at=now + debounce))
        return won.rowcount == 1


def calls_in_flight(org_id: int) -> int:
    """The org's calls still to be transcribed or scored (failed ones are not waiting)."""
    with session_scope() as session:
        return session.exec(select(func.count(Meeting.id)).where(
            Meeting.org_id == org_id, Meeting.stage.in_(("ingested", "transcribed")))).one()


def postpone_refresh(org_id: int, delay: timedelta) -> None:
    """The due refresh waits `delay` more; calls scored meanwhile still schedule nothing."""
    with session_scope() as session:
        session.exec(update(Org).where(Org.id == org_id)
                     .values(refresh_due_at=utcnow() + delay))


def begin_refresh(org_id: int) -> None:
    """The scheduled refresh starts: calls scored from now on schedule the next one."""
    with session_scope() as session:
        session.exec(update(Org).where(Org.id == org_id).values(refresh_due_at=None))
