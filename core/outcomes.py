"""Skills joined to deal outcomes: which skills go with won deals, honestly about how many
deals that rests on.

A closed deal's **skill profile** is its owner's skill estimates as of the day it closed,
computed from the calls before that day (`core.skills.compute_skill_estimates` recomputes
any date exactly; nothing later leaks in), with the deal's own call evidence beside them.
The analysis then asks, per skill: the win rate in the lower, middle and upper third of
deals by that skill; and the association with winning controlled for deal size and segment,
a logistic regression of winning on all skills together (statsmodels GEE, deals grouped by
rep with the bias-reduced sandwich), because one rep's deals share one skill level and
whatever else about that rep wins deals: treating them as independent would find effects
that are not there. Below `MIN_DEALS` deals, or
`MIN_EACH` wins or losses, a skill is *insufficient data*, never ranked.
"""

from __future__ import annotations

import math
import threading
import warnings
from bisect import bisect_left, bisect_right
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median

from core.domain import SkillEstimate

MIN_DEALS = 40
MIN_EACH = 10  # wins and losses each: fewer, and a logistic fit is mostly noise
MIN_CLUSTERS = 10  # reps: fewer, and clustered standard errors are not to be trusted
ALPHA = 0.05
TOP = 3
CAVEAT = ("Association, not proof: reps with these skills win more often here, with deal "
          "size and segment held equal; other things they do may be the cause.")


@dataclass(frozen=True)
class DealProfile:
    """A closed deal as the analysis sees it: outcome, size, segment, and its owner's skill
    estimates (0–100) as of its close date (None: not measured then)."""

    deal_id: int
    name: str
    owner_id: int | None
    close_date: date
    won: bool
    amount: float | None
    segment: str | None
    skills: dict[str, float | None]
    n_calls: int = 0  # the deal's own calls before it closed
    fields_found: dict[str, str] = field(default_factory=dict)  # methodology field → status
    crm: str | None = None
    crm_id: str | None = None  # the deal's id in its CRM
    owner_email: str | None = None
    stages: tuple[str, ...] = ()  # the stages its calls before the close were in, in order
    # Every other rep who was on its calls before the close: their estimates then, by e-mail.
    other_reps: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # The owner's full estimates at the close (interval, calls, state), by skill.
    estimates: dict[str, SkillEstimate] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Band:
    label: str  # lower | middle | upper third
    low: float
    high: float
    deals: int
    wins: int
    win_rate: float
    interval: tuple[float, float]  # Wilson 95 %


@dataclass(frozen=True)
class SkillOutcome:
    """One skill against winning: `odds_ratio` per standard deviation of the skill."""

    skill: str
    deals: int
    wins: int
    state: str  # ok | insufficient_data
    reason: str = ""
    bands: tuple[Band, ...] = ()
    odds_ratio: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    controls: tuple[str, ...] = ()
    significant: bool = False  # the 95 % interval excludes "no association" (1)


@dataclass(frozen=True)
class SegmentOutcomes:
    segment: str  # "all", or one segment's value
    deals: int
    wins: int
    skills: list[SkillOutcome]
    top: list[str]  # up to three skills most associated with winning (significant only)


def naive_utc(moment: datetime) -> datetime:
    """A stored time as naive UTC (SQLite gives naive, PostgreSQL aware datetimes)."""
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def wilson(wins: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _bands(values: list[tuple[float, bool]]) -> tuple[Band, ...]:
    ordered = sorted(values, key=lambda v: v[0])
    n = len(ordered)
    cuts = [0, n // 3, 2 * n // 3, n]
    out = []
    for label, (start, end) in zip(("lower third", "middle third", "upper third"),
                                   zip(cuts, cuts[1:])):
        part = ordered[start:end]
        if not part:
            continue
        wins = sum(1 for _, won in part if won)
        out.append(Band(label, part[0][0], part[-1][0], len(part), wins, wins / len(part),
                        wilson(wins, len(part))))
    return tuple(out)


def _design(rows: list[DealProfile], skills: list[str]):
    """Standardised skills, then log deal size (when every deal has an amount) and segment
    indicators, and a constant: the columns, and the controls they include."""
    import numpy as np
    import statsmodels.api as sm

    columns, controls = [], []
    for skill in skills:
        x = np.array([r.skills[skill] for r in rows], dtype=float)
        columns.append((x - x.mean()) / (x.std() or 1.0))
    amounts = [r.amount for r in rows]
    if all(a is not None and a > 0 for a in amounts) and len(set(amounts)) > 1:
        size = np.log(np.array(amounts, dtype=float))
        columns.append((size - size.mean()) / (size.std() or 1.0))
        controls.append("deal size")
    segments = sorted({r.segment for r in rows if r.segment is not None})
    if len(segments) > 1:
        for value in segments[1:]:
            columns.append(np.array([1.0 if r.segment == value else 0.0 for r in rows]))
        controls.append("segment")
    return sm.add_constant(np.column_stack(columns), has_constant="add"), tuple(controls)


def _fit(rows: list[DealProfile], skills: list[str]) -> tuple[dict[str, tuple], tuple[str, ...]]:
    """Logistic regression of winning on the standardised skills together (each one's
    association with the others held equal), log deal size and segment, standard errors
    clustered by rep (by deal when there are too few reps to cluster). Per skill: odds ratio
    per standard deviation, its 95 % interval, p-value."""
    import numpy as np
    import statsmodels.api as sm

    design, controls = _design(rows, skills)
    won = np.array([1.0 if r.won else 0.0 for r in rows])
    groups = np.array([r.owner_id if r.owner_id is not None else -r.deal_id for r in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes; a failed fit raises
        if len(set(groups.tolist())) >= MIN_CLUSTERS:
            # GEE with the bias-reduced (Mancl–DeRouen) sandwich: plain clustered errors
            # over-reject with a few dozen reps (14 % at a 5 % level on synthetic orgs).
            result = sm.GEE(won, design, groups=groups, family=sm.families.Binomial(),
                            cov_struct=sm.cov_struct.Exchangeable()).fit(
                                cov_type="bias_reduced", maxiter=200)
        else:
            result = sm.Logit(won, design).fit(disp=0, cov_type="HC1", maxiter=200)
    params = np.asarray(result.params)
    bounds = np.asarray(result.conf_int(alpha=ALPHA))
    pvalues = np.asarray(result.pvalues)
    out = {}
    for index, skill in enumerate(skills, start=1):
        out[skill] = (math.exp(float(params[index])),
                      (math.exp(float(bounds[index][0])), math.exp(float(bounds[index][1]))),
                      float(pvalues[index]))
    return out, controls


def _too_few(skill: str, rows: list[DealProfile], min_deals: int, min_each: int) -> str:
    measured = [r for r in rows if r.skills.get(skill) is not None]
    wins = sum(1 for r in measured if r.won)
    losses = len(measured) - wins
    if len(measured) < min_deals or wins < min_each or losses < min_each:
        return (f"{len(measured)} closed deals with this skill measured ({wins} won, {losses} "
                f"lost); at least {min_deals}, with {min_each} of each, are needed")
    return ""


def skill_outcomes(rows: list[DealProfile], skills: list[str], *, min_deals: int = MIN_DEALS,
                   min_each: int = MIN_EACH) -> list[SkillOutcome]:
    """Each skill against winning. Skills with enough deals are fitted together on the
    deals where all of them are measured (too few such deals: each alone)."""
    enough = [s for s in skills if not _too_few(s, rows, min_deals, min_each)]
    complete = [r for r in rows if all(r.skills.get(s) is not None for s in enough)]
    fitted: dict[str, tuple] = {}
    controls: tuple[str, ...] = ()
    failure = ""
    try:
        if enough and not _too_few(enough[0], complete, min_deals, min_each):
            fitted, controls = _fit(complete, enough)
            controls = ("the other skills", *controls)
        else:
            for skill in enough:
                one, controls = _fit([r for r in rows if r.skills.get(skill) is not None],
                                     [skill])
                fitted.update(one)
    except Exception as exc:  # perfect separation, a singular design: say so, don't guess
        failure = f"the model could not be fitted ({type(exc).__name__})"
    out = []
    for skill in skills:
        measured = [r for r in rows if r.skills.get(skill) is not None]
        wins = sum(1 for r in measured if r.won)
        reason = _too_few(skill, rows, min_deals, min_each) or (
            failure if skill not in fitted else "")
        bands = _bands([(r.skills[skill], r.won) for r in measured]) if measured else ()
        if reason:
            out.append(SkillOutcome(skill, len(measured), wins, "insufficient_data", reason,
                                    bands))
            continue
        ratio, interval, p_value = fitted[skill]
        out.append(SkillOutcome(skill, len(measured), wins, "ok", "", bands, ratio, interval,
                                p_value, controls, interval[0] > 1 or interval[1] < 1))
    return out


def analyze(profiles: list[DealProfile], *, by_segment: bool = False,
            min_deals: int = MIN_DEALS, min_each: int = MIN_EACH) -> list[SegmentOutcomes]:
    """Every skill against winning, over all closed deals and (with `by_segment`) within
    each segment."""
    parts: list[tuple[str, list[DealProfile]]] = [("all", profiles)]
    if by_segment:
        grouped: dict[str, list[DealProfile]] = defaultdict(list)
        for p in profiles:
            grouped[p.segment or "(none)"].append(p)
        parts += sorted(grouped.items())
    out = []
    for label, rows in parts:
        skills = sorted({s for r in rows for s, v in r.skills.items() if v is not None})
        results = skill_outcomes(rows, skills, min_deals=min_deals, min_each=min_each)
        ranked = sorted((r for r in results if r.state == "ok" and r.significant
                         and r.odds_ratio > 1), key=lambda r: -r.odds_ratio)
        out.append(SegmentOutcomes(label, len(rows), sum(1 for r in rows if r.won), results,
                                   [r.skill for r in ranked[:TOP]]))
    return out


def size_segment(profiles: list[DealProfile]) -> list[DealProfile]:
    """Segment deals by size: below or above the median amount."""
    from dataclasses import replace

    amounts = [p.amount for p in profiles if p.amount is not None]
    if not amounts:
        return profiles
    middle = median(amounts)
    return [replace(p, segment=None if p.amount is None else
                    ("smaller deals" if p.amount < middle else "larger deals"))
            for p in profiles]


# ------------------------------------------------------------ from the database ----

def deal_profiles(session, org, *, window_days: int = 90,
                  deal_ids: list[int] | None = None) -> list[DealProfile]:
    """Every closed deal in scope (`org`: an org id or an `core.access.Scope`) with a close
    date, profiled as of that date: its owner's skill estimates over `window_days` from the
    calls before it (the rep of its latest call when the CRM names no owner we know), those
    of every other rep on its calls, its own calls before it, the stages they were in, and
    what they found of each methodology field (the best status any of them reached).
    `deal_ids`: only these deals."""
    from sqlmodel import select

    from core.access import as_scope
    from core.models import CallScore, Deal, FieldExtraction, Meeting, MeetingDeal, User
    from core.skill_refresh import skill_observations
    from core.skills import compute_skill_estimates

    scope = as_scope(org)
    deals = session.exec(select(Deal).where(
        Deal.org_id == scope.org_id, Deal.is_closed, Deal.close_date.is_not(None),
        *(() if deal_ids is None else (Deal.id.in_(deal_ids),)))
        .order_by(Deal.close_date, Deal.id)).all()
    if not deals:
        return []
    calls: dict[int, list[tuple]] = defaultdict(list)  # deal → (meeting, started, rep, stage)
    for deal_id, meeting_id, started, host, rep, stage in session.exec(
            select(MeetingDeal.deal_id, Meeting.id, Meeting.started_at, Meeting.host_id,
                   CallScore.rep_id, Meeting.call_stage)
            .join(Meeting, MeetingDeal.meeting_id == Meeting.id)
            .join(CallScore, CallScore.meeting_id == Meeting.id, isouter=True)
            .where(MeetingDeal.org_id == scope.org_id)):
        calls[deal_id].append((meeting_id, started, rep or host, stage))
    owner_of, before_close = {}, {}
    for deal in deals:
        before = sorted((c for c in calls[deal.id] if c[1].date() <= deal.close_date),
                        key=lambda c: c[1])
        before_close[deal.id] = before
        owner_of[deal.id] = deal.owner_id or (before[-1][2] if before else None)
    in_scope = [d for d in deals if scope.rep_ids is None or owner_of[d.id] in scope.rep_ids]
    observations = sorted(skill_observations(session, scope.org_id), key=lambda o: o.at)
    times = [naive_utc(o.at) for o in observations]
    skills = sorted({o.skill for o in observations})
    estimates: dict[tuple[date, int], dict[str, SkillEstimate]] = {}
    for close in sorted({d.close_date for d in in_scope}):
        owners = sorted({rep for d in in_scope if d.close_date == close
                         for rep in [owner_of[d.id], *(c[2] for c in before_close[d.id])]
                         if rep is not None})
        # Only the window's calls can count (the estimator filters exactly; this is speed).
        first = bisect_left(times, datetime.combine(close - timedelta(days=window_days + 1),
                                                    datetime.min.time()))
        last = bisect_right(times, datetime.combine(close + timedelta(days=1),
                                                    datetime.min.time()))
        for e in compute_skill_estimates(observations[first:last], close,
                                         windows=(window_days,), rep_ids=owners):
            if e.rep_id in owners:
                estimates.setdefault((close, e.rep_id), {})[e.skill] = e
    meeting_ids = {c[0] for d in in_scope for c in calls[d.id]}
    found: dict[int, dict[str, str]] = defaultdict(dict)
    rank = {"absent": 0, "ambiguous": 1, "found": 2}
    if meeting_ids:
        for meeting_id, key, status in session.exec(
                select(FieldExtraction.meeting_id, FieldExtraction.field, FieldExtraction.status)
                .where(FieldExtraction.meeting_id.in_(sorted(meeting_ids)))):
            best = found[meeting_id].get(key, "absent")
            if rank.get(status, 0) >= rank[best]:
                found[meeting_id][key] = status
    emails = dict(session.exec(select(User.id, User.email).where(
        User.org_id == scope.org_id)).all())
    out = []
    for deal in in_scope:
        owner = owner_of[deal.id]
        own = sorted({c[0] for c in calls[deal.id] if c[1].date() <= deal.close_date})
        coverage: dict[str, str] = {}
        for meeting_id in own:
            for key, status in found[meeting_id].items():
                if rank[status] >= rank[coverage.get(key, "absent")]:
                    coverage[key] = status
        profile = estimates.get((deal.close_date, owner), {}) if owner else {}
        others = {emails[rep]: {s: e.shrunk for s, e in estimates.get(
                      (deal.close_date, rep), {}).items() if e.n_calls}
                  for rep in sorted({c[2] for c in before_close[deal.id]} - {owner, None})
                  if rep in emails}
        stages = tuple(dict.fromkeys(c[3] for c in before_close[deal.id] if c[3]))
        out.append(DealProfile(
            deal.id, deal.name, owner, deal.close_date, deal.is_won, deal.amount, None,
            {s: profile[s].shrunk if s in profile and profile[s].n_calls else None
             for s in skills}, len(own), coverage, crm=deal.crm, crm_id=deal.external_id,
            owner_email=emails.get(owner), stages=stages, other_reps=others,
            estimates={s: e for s, e in profile.items() if e.n_calls}))
    return out


SEGMENTS = ("size", "manager")


@dataclass(frozen=True)
class OutcomesReport:
    """Skills against outcomes over the closed deals in scope, overall and per segment."""

    window_days: int
    segment_by: str | None
    deals: int
    wins: int
    without_owner_skills: int  # closed deals whose owner had no scored calls before the close
    results: list[SegmentOutcomes]
    min_deals: int = MIN_DEALS
    min_each: int = MIN_EACH
    caveat: str = CAVEAT


def outcomes_report(session, org, *, segment: str | None = None, window_days: int = 90,
                    profiles: list[DealProfile] | None = None) -> OutcomesReport:
    """`coachloop report outcomes` and `GET /outcomes`: the closed deals in scope profiled
    as of their close, analysed overall and (with `segment`: size | manager) per segment."""
    from dataclasses import replace

    from sqlmodel import select

    from core.access import as_scope
    from core.errors import InputError
    from core.models import User

    if segment is not None and segment not in SEGMENTS:
        raise InputError(f"unknown segment {segment!r} (segments: {', '.join(SEGMENTS)})")
    if profiles is None:
        profiles = deal_profiles(session, org, window_days=window_days)
    if segment == "size":
        profiles = size_segment(profiles)
    elif segment == "manager":
        people = {u.id: u for u in session.exec(select(User).where(
            User.org_id == as_scope(org).org_id))}

        def manager_of(owner_id: int | None) -> str | None:
            manager = people.get(people[owner_id].manager_id) if owner_id in people else None
            return manager.name if manager else None

        profiles = [replace(p, segment=manager_of(p.owner_id)) for p in profiles]
    measured = [p for p in profiles if any(v is not None for v in p.skills.values())]
    return OutcomesReport(window_days, segment, len(profiles),
                          sum(1 for p in profiles if p.won), len(profiles) - len(measured),
                          analyze(measured, by_segment=segment is not None))


_PROFILES: OrderedDict[tuple, list[DealProfile]] = OrderedDict()
_PROFILES_LOCK = threading.Lock()
KEPT_PROFILES = 8


def data_version(session, org_id: int) -> tuple:
    """What deal profiles are computed from, summarised in a few aggregate queries: any new
    or rescored call, pulled deal, deal link or change of manager gives a new value."""
    from sqlmodel import func, select

    from core.models import CallScore, Deal, MeetingDeal, User

    calls = session.exec(select(func.count(), func.max(CallScore.id),
                                func.max(CallScore.created_at))
                         .where(CallScore.org_id == org_id)).one()
    deals = session.exec(select(func.count(), func.max(Deal.id), func.max(Deal.pulled_at))
                         .where(Deal.org_id == org_id)).one()
    links = session.exec(select(func.count(), func.max(MeetingDeal.id))
                         .where(MeetingDeal.org_id == org_id)).one()
    people = hash(tuple(session.exec(select(User.id, User.manager_id).where(
        User.org_id == org_id).order_by(User.id))))
    return (*calls, *deals, *links, people)


def org_profiles(session, org_id: int, window_days: int) -> list[DealProfile]:
    """Every closed deal of the org profiled as of its close, kept in this process until its
    data changes: profiling a year of deals takes seconds, a page view must not. Whose deals
    are in scope does not change a profile (each owner is shrunk toward the whole team), so
    every role's view filters the same list."""
    key = (org_id, window_days, data_version(session, org_id))
    with _PROFILES_LOCK:
        if key in _PROFILES:
            _PROFILES.move_to_end(key)
            return _PROFILES[key]
    profiles = deal_profiles(session, org_id, window_days=window_days)
    with _PROFILES_LOCK:
        _PROFILES[key] = profiles
        while len(_PROFILES) > KEPT_PROFILES:
            _PROFILES.popitem(last=False)
    return profiles


def cached_outcomes_report(session, org, *, segment: str | None = None,
                           window_days: int = 90) -> OutcomesReport:
    """`outcomes_report` over the kept profiles, narrowed to the deals in scope."""
    from core.access import as_scope

    scope = as_scope(org)
    profiles = org_profiles(session, scope.org_id, window_days)
    if scope.rep_ids is not None:
        profiles = [p for p in profiles if p.owner_id in scope.rep_ids]
    return outcomes_report(session, scope, segment=segment, window_days=window_days,
                           profiles=profiles)


def warm_profiles(window_days: int = 90) -> None:
    """Profile every org's deals ahead of the first Outcomes view (the API starts this)."""
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Org

    with session_scope() as session:
        for org_id in session.exec(select(Org.id)).all():
            org_profiles(session, org_id, window_days)
