"""Did coaching on a skill move it? Reps whose weekly agenda focused on a skill against reps
whose did not, from the focus each week's agenda recorded (`AgendaFocus`).

For every rep-week with calls on the skill before and after: the movement is the rep's mean
call score on the skill over the `h` days after the week began minus the mean over the 30
days before (h = 30 and 60). Focused rep-weeks are compared with the other rep-weeks of the
same weeks; the difference of means gets a 95 % interval from a bootstrap over reps (a
rep's weeks are not independent of each other). The focused reps' win rates on deals closed
in the 90 days before and after their first focus week on the skill are shown beside it,
with Wilson intervals. Too few focused rep-weeks or reps: *insufficient data*, never a
number that looks like an answer. Not a randomised trial: managers may choose whom to
coach; the report says so.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.outcomes import naive_utc, wilson

HORIZONS = (30, 60)
BEFORE_DAYS = 30
WIN_WINDOW_DAYS = 90
MIN_FOCUSED = 10  # focused rep-weeks with calls before and after
MIN_REPS = 3
BOOTSTRAP = 1000
CAVEAT = ("Not a randomised trial: reps were not assigned to coaching by chance, so a "
          "difference can come from who was coached as well as from the coaching.")


@dataclass(frozen=True)
class Movement:
    horizon_days: int
    focused: int  # rep-weeks
    others: int
    focused_mean: float | None
    others_mean: float | None
    difference: float | None
    interval: tuple[float, float] | None


@dataclass(frozen=True)
class WinRate:
    deals: int
    wins: int
    rate: float | None
    interval: tuple[float, float]


@dataclass(frozen=True)
class Cohort:
    skill: str
    state: str  # ok | insufficient_data
    reason: str
    focused_reps: int
    movements: tuple[Movement, ...]
    wins_before: WinRate | None = None
    wins_after: WinRate | None = None


@dataclass(frozen=True)
class RepWeek:
    rep_id: int
    week: date
    focused: bool


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def movements(scores: dict[int, list[tuple[datetime, float]]], weeks: list[RepWeek],
              horizon: int) -> list[tuple[RepWeek, float]]:
    """Each rep-week's movement on the skill (after minus before), where the rep has calls
    on both sides; `scores`: rep → (time, score) sorted by time."""
    out = []
    for rw in weeks:
        calls = scores.get(rw.rep_id, [])
        times = [t for t, _ in calls]
        start = datetime.combine(rw.week, datetime.min.time())
        before = [s for _, s in calls[bisect_left(times, start - timedelta(days=BEFORE_DAYS)):
                                      bisect_left(times, start)]]
        after = [s for _, s in calls[bisect_left(times, start):
                                     bisect_right(times, start + timedelta(days=horizon))]]
        if before and after:
            out.append((rw, _mean(after) - _mean(before)))
    return out


def compare(moved: list[tuple[RepWeek, float]], horizon: int, *, seed: int = 0) -> Movement:
    focused = [m for rw, m in moved if rw.focused]
    others = [m for rw, m in moved if not rw.focused]
    if not focused or not others:
        return Movement(horizon, len(focused), len(others), _mean(focused), _mean(others),
                        None, None)
    difference = _mean(focused) - _mean(others)
    by_rep: dict[int, list[tuple[bool, float]]] = defaultdict(list)
    for rw, m in moved:
        by_rep[rw.rep_id].append((rw.focused, m))
    reps = sorted(by_rep)
    rng = random.Random(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        sample = [row for _ in reps for row in by_rep[rng.choice(reps)]]
        f = [m for is_f, m in sample if is_f]
        o = [m for is_f, m in sample if not is_f]
        if f and o:
            draws.append(_mean(f) - _mean(o))
    draws.sort()
    interval = (draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]) \
        if len(draws) >= 100 else None
    return Movement(horizon, len(focused), len(others), _mean(focused), _mean(others),
                    difference, interval)


def cohort(skill: str, scores: dict[int, list[tuple[datetime, float]]],
           focus: dict[tuple[int, date], set[str]], deals: list[tuple[int, date, bool]],
           *, seed: int = 0) -> Cohort:
    """One skill's cohorts. `focus`: (rep, week) → the skills that week's agenda focused
    on, for every rep-week an agenda was made; `deals`: (owner, close date, won)."""
    weeks = [RepWeek(rep, week, skill in skills) for (rep, week), skills in sorted(focus.items())]
    focused_reps = {rw.rep_id for rw in weeks if rw.focused}
    moved = {h: movements(scores, weeks, h) for h in HORIZONS}
    n_focused = sum(1 for rw, _ in moved[HORIZONS[0]] if rw.focused)
    if n_focused < MIN_FOCUSED or len(focused_reps) < MIN_REPS:
        return Cohort(skill, "insufficient_data",
                      f"{n_focused} focused rep-week(s) with calls before and after, over "
                      f"{len(focused_reps)} rep(s); at least {MIN_FOCUSED} over {MIN_REPS} "
                      "reps are needed", len(focused_reps),
                      tuple(Movement(h, 0, 0, None, None, None, None) for h in HORIZONS))
    results = tuple(compare(moved[h], h, seed=seed) for h in HORIZONS)
    first = {}
    for rw in weeks:
        if rw.focused and rw.rep_id not in first:
            first[rw.rep_id] = rw.week
    before, after = [], []
    for owner, close, won in deals:
        start = first.get(owner)
        if start is None:
            continue
        if start - timedelta(days=WIN_WINDOW_DAYS) <= close < start:
            before.append(won)
        elif start <= close < start + timedelta(days=WIN_WINDOW_DAYS):
            after.append(won)
    return Cohort(skill, "ok", "", len(focused_reps), results, _rate(before), _rate(after))


def _rate(outcomes: list[bool]) -> WinRate:
    wins = sum(outcomes)
    return WinRate(len(outcomes), wins, wins / len(outcomes) if outcomes else None,
                   wilson(wins, len(outcomes)))


def cohort_report(session, org, *, skills: list[str] | None = None) -> list[Cohort]:
    """`coachloop report cohorts` and `GET /cohorts`: every skill an agenda focused on (or
    `skills`), for the reps in scope."""
    from sqlmodel import select

    from core.access import as_scope
    from core.models import AgendaFocus, Deal
    from core.skill_refresh import skill_observations

    scope = as_scope(org)
    rows = session.exec(select(AgendaFocus).where(
        AgendaFocus.org_id == scope.org_id,
        *(() if scope.rep_ids is None else (AgendaFocus.rep_id.in_(scope.rep_ids),)))).all()
    focus = {(r.rep_id, r.week): set(r.skills) for r in rows}
    wanted = skills or sorted({s for r in rows for s in r.skills})
    reps = {r.rep_id for r in rows}
    by_skill: dict[str, dict[int, list[tuple[datetime, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for o in skill_observations(session, scope.org_id, rep_ids=reps or None):
        if o.skill in wanted:
            by_skill[o.skill][o.rep_id].append((naive_utc(o.at), o.score))
    for per_rep in by_skill.values():
        for calls in per_rep.values():
            calls.sort()
    deals = [(d.owner_id, d.close_date, d.is_won) for d in session.exec(select(Deal).where(
        Deal.org_id == scope.org_id, Deal.is_closed, Deal.close_date.is_not(None),
        Deal.owner_id.in_(reps or [-1])))]
    return [cohort(skill, by_skill.get(skill, {}), focus, deals) for skill in wanted]
