"""Turn call scores into per-rep skill estimates: pure statistics, no database.

`call_skill_scores` turns one call's criterion results into one `SkillObservation` (0–100) per
skill; `compute_skill_estimates` rolls observations up into one `SkillEstimate` per window,
skill and rep.

Statistical choices, per window and skill. "Reps" here means reps with at least one call in the
window; reps below `min_calls` still count toward the team figures and still get a shrunk
estimate (that estimate is what makes one call safe to show), but get no percentile.

- Team mean: the unweighted mean of the reps' raw means, so a rep with many calls does not
  set the target for everyone.
- Within-rep (call-to-call) variance σ²: pooled over reps, SS / df with SS the squared
  deviations from each rep's own mean and df = Σ(nᵢ − 1), pulled toward 15² by 3 pseudo
  degrees of freedom: σ² = (SS + 3·15²) / (df + 3). With few calls this is about 15², with
  many it is the data's own, and it never reaches 0 (no cliff edge, no division by zero).
- Between-rep variance τ²: method of moments, the sample variance of the rep means minus the
  mean of their sampling variances σ²/nᵢ (unbiased for unweighted means), floored at 1
  (a 1-point sd). With fewer than 3 reps it cannot be estimated and is taken as 10².
- Shrunk estimate: the normal–normal posterior mean (n/σ²·raw + 1/τ²·team) / (n/σ² + 1/τ²),
  with a 90% interval of ±1.645 posterior sd, clipped to [0, 100]. This is plug-in empirical
  Bayes: the interval ignores the uncertainty in the team mean, σ² and τ², so it is too
  narrow with few reps or when τ² sits at its floor.
- Percentile: (mid-rank − 1) / (N − 1) · 100 over the shrunk estimates (as rounded) of the N
  reps whose state is "ok": lowest 0, highest 100, ties share their average rank; None when
  N < 2.
- Trend: least-squares slope of the raw call scores on time in (fractional) days, × 30; only
  from at least 3 calls spanning at least 7 days.

Results are independent of the order of the input; floats are rounded to 3 decimals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.domain import CriterionResult, SkillEstimate, SkillObservation

Z_90 = 1.6448536269514722  # Φ⁻¹(0.95): a two-sided 90% interval
PRIOR_SIGMA2 = 15.0**2  # call-to-call variance assumed before there is data
PRIOR_SIGMA2_DF = 3  # how many degrees of freedom that assumption is worth
TAU2_FLOOR = 1.0
TAU2_DEFAULT = 10.0**2  # between-rep variance when there are too few reps to estimate it
MIN_REPS_FOR_TAU2 = 3
MIN_SLOPE_CALLS = 3
MIN_SLOPE_SPAN_DAYS = 7.0
OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class TeamPrior:
    """What the team's calls say about a skill in a window: where and how hard to shrink."""

    mean: float  # unweighted mean of the reps' raw means
    sigma2: float  # within-rep, call-to-call variance
    tau2: float  # between-rep variance of true skill


@dataclass(frozen=True)
class RepWindow:
    """One rep's calls on one skill in one window, as much as the statistics need: what a
    stored snapshot keeps, so a refresh can re-rank a rep without reading their calls again."""

    n: int
    total: float  # Σ score
    ss: float  # Σ (score − mean)²
    slope_per_30d: float | None = None
    meeting_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, calls: Sequence[SkillObservation]) -> RepWindow:
        """From the rep's calls in the window, in time order."""
        scores = [o.score for o in calls]
        total = math.fsum(scores)
        mean = total / len(scores) if scores else 0.0
        return cls(n=len(scores), total=total, ss=math.fsum((x - mean) ** 2 for x in scores),
                   slope_per_30d=_slope_per_30d(calls),
                   meeting_ids=tuple(o.meeting_id for o in calls))

    @property
    def mean(self) -> float:
        return self.total / self.n


def fit_team_prior(scores_by_rep: Mapping[int, Sequence[float]]) -> TeamPrior | None:
    """Estimate the team mean, σ² and τ² from each rep's call scores; None if no rep has a call."""
    return fit_prior([RepWindow.of([SkillObservation(rep, "", 0, datetime.min, float(x))
                                    for x in scores])
                      for rep, scores in sorted(scores_by_rep.items())])


def fit_prior(reps: Sequence[RepWindow]) -> TeamPrior | None:
    """`fit_team_prior` from each rep's summary; reps without calls are left out."""
    samples = [r for r in reps if r.n]
    if not samples:
        return None
    means = [r.mean for r in samples]
    team_mean = math.fsum(means) / len(means)

    ss = math.fsum(r.ss for r in samples)
    df = sum(r.n - 1 for r in samples)
    sigma2 = (ss + PRIOR_SIGMA2_DF * PRIOR_SIGMA2) / (df + PRIOR_SIGMA2_DF)

    k = len(samples)
    if k < MIN_REPS_FOR_TAU2:
        tau2 = TAU2_DEFAULT
    else:
        between = math.fsum((m - team_mean) ** 2 for m in means) / (k - 1)
        sampling = math.fsum(sigma2 / r.n for r in samples) / k
        tau2 = max(between - sampling, TAU2_FLOOR)
    return TeamPrior(mean=team_mean, sigma2=sigma2, tau2=tau2)


def shrink(prior: TeamPrior, n_calls: int, raw_mean: float) -> tuple[float, float]:
    """Posterior (mean, sd) of a rep's true skill given n_calls calls averaging raw_mean."""
    if n_calls < 1:
        raise ValueError(f"shrink needs at least one call, got n_calls={n_calls}")
    data_precision = n_calls / prior.sigma2
    prior_precision = 1.0 / prior.tau2
    precision = data_precision + prior_precision
    mean = (data_precision * raw_mean + prior_precision * prior.mean) / precision
    return mean, 1.0 / math.sqrt(precision)


def compute_skill_estimates(
    observations: Iterable[SkillObservation],
    as_of: date,
    windows: Iterable[int] = (30, 60, 90),
    min_calls: int = 3,
    rep_ids: Iterable[int] | None = None,
) -> list[SkillEstimate]:
    """Estimate every rep's standing on every skill over each window ending on `as_of`.

    A call is in a window when `as_of - window < at.date() <= as_of`. Skills are those seen in
    `observations`; reps are those seen there plus `rep_ids` (a rep without calls gets a row of
    Nones, so "no data" is explicit). Rows come ordered by (window, skill, rep_id). Raises
    ValueError on scores outside 0–100 or two observations for one rep, skill and meeting.
    """
    obs = list(observations)
    _check_observations(obs)
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    window_list = sorted(set(windows))
    if any(not isinstance(w, int) or w < 1 for w in window_list):
        raise ValueError(f"windows must be positive whole days, got {window_list}")
    if min_calls < 1:
        raise ValueError(f"min_calls must be at least 1, got {min_calls}")

    reps = sorted({o.rep_id for o in obs} | set(rep_ids or ()))
    return estimate_windows(obs, as_of, window_list, min_calls, reps, sorted({o.skill for o in obs}))


def estimate_windows(
    observations: Iterable[SkillObservation], as_of: date, windows: Iterable[int],
    min_calls: int, reps: Iterable[int], skills: Iterable[str],
    known: Mapping[tuple[int, str, int], RepWindow] | None = None,
) -> list[SkillEstimate]:
    """Every rep's estimate per window and skill, ordered by (window, skill, rep_id). A rep
    is summarised from `observations`, unless `known` holds their summary for that skill
    and window already, (rep_id, skill, window) → RepWindow (a rep whose calls did not
    change since it was stored)."""
    known = known or {}
    by_skill_rep: dict[tuple[str, int], list[SkillObservation]] = defaultdict(list)
    for o in sorted(observations, key=lambda o: (o.at, o.meeting_id)):
        by_skill_rep[(o.skill, o.rep_id)].append(o)
    reps, skills = sorted(reps), sorted(skills)
    estimates: list[SkillEstimate] = []
    for window in windows:
        start = as_of - timedelta(days=window)
        for skill in skills:
            calls = {rep: known.get((rep, skill, window)) or RepWindow.of(
                [o for o in by_skill_rep.get((skill, rep), ()) if start < o.at.date() <= as_of])
                for rep in reps}
            estimates.extend(estimate_peers(skill, window, as_of, calls, min_calls))
    return estimates


def call_skill_scores(
    criteria: Iterable[CriterionResult], rep_id: int, meeting_id: int, at: datetime
) -> list[SkillObservation]:
    """One call's score per skill: the weighted mean of score/max_score × 100 over the skill's
    scored criteria, rounded to 3 decimals. Abstentions (score None) are left out; a skill with
    nothing scored (or only zero weights) gets no observation. Ordered by skill."""
    weighted: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for c in criteria:
        if not c.max_score > 0:
            raise ValueError(f"criterion {c.key!r}: max_score must be positive, got {c.max_score}")
        if not c.weight >= 0:
            raise ValueError(f"criterion {c.key!r}: weight must not be negative, got {c.weight}")
        if c.score is None:
            continue
        if not 0 <= c.score <= c.max_score:
            raise ValueError(f"criterion {c.key!r}: score {c.score} is outside 0–{c.max_score}")
        weighted[c.skill].append((c.weight, c.score / c.max_score * 100.0))

    observations = []
    for skill in sorted(weighted):
        total_weight = math.fsum(w for w, _ in weighted[skill])
        if total_weight == 0:
            continue
        score = math.fsum(w * pct for w, pct in weighted[skill]) / total_weight
        score = _r(min(max(score, 0.0), 100.0))  # float noise must not break 0–100 or show
        observations.append(SkillObservation(rep_id=rep_id, skill=skill, meeting_id=meeting_id,
                                             at=at, score=score))
    return observations


# ----------------------------------------------------------------- internals ----


def _check_observations(obs: Sequence[SkillObservation]) -> None:
    seen: set[tuple[int, str, int]] = set()
    for o in obs:
        if not (math.isfinite(o.score) and 0 <= o.score <= 100):
            raise ValueError(f"rep {o.rep_id}, skill {o.skill!r}, meeting {o.meeting_id}: "
                             f"score {o.score} is outside 0–100")
        key = (o.rep_id, o.skill, o.meeting_id)
        if key in seen:
            # Counting a call twice would silently double its weight; the caller must pick one.
            raise ValueError(f"rep {o.rep_id}, skill {o.skill!r}: meeting {o.meeting_id} "
                             f"appears more than once")
        seen.add(key)


def estimate_peers(
    skill: str, window: int, as_of: date, reps: Mapping[int, RepWindow], min_calls: int,
) -> list[SkillEstimate]:
    """Estimates for every rep in `reps` on one skill and window: the team prior from all of
    them, then each rep shrunk toward it and ranked among the reps with enough calls."""
    prior = fit_prior([r for _, r in sorted(reps.items())])
    rows = []
    for rep, calls in sorted(reps.items()):
        raw = shrunk = low = high = None
        if calls.n:
            mean, sd = shrink(prior, calls.n, calls.mean)
            shrunk = _r(mean)
            low = _r(max(0.0, mean - Z_90 * sd))
            high = _r(min(100.0, mean + Z_90 * sd))
            raw = _r(calls.mean)
        rows.append(dict(
            rep_id=rep, skill=skill, window_days=window, as_of=as_of, n_calls=calls.n,
            raw_mean=raw, shrunk=shrunk, interval_low=low, interval_high=high,
            slope_per_30d=calls.slope_per_30d,
            state=OK if calls.n >= min_calls else INSUFFICIENT_DATA,
            meeting_ids=calls.meeting_ids, score_sum=calls.total, score_ss=calls.ss,
        ))
    percentiles = _percentiles({r["rep_id"]: r["shrunk"] for r in rows if r["state"] == OK})
    return [SkillEstimate(**r, percentile=percentiles.get(r["rep_id"])) for r in rows]


def _percentiles(values: Mapping[int, float]) -> dict[int, float]:
    """Percentile (0–100) of each value among all of them, mid-rank for ties; {} if < 2."""
    n = len(values)
    if n < 2:
        return {}
    result = {}
    for key, v in values.items():
        below = sum(1 for u in values.values() if u < v)
        equal = sum(1 for u in values.values() if u == v)  # includes v itself
        mid_rank = below + (equal + 1) / 2
        result[key] = _r((mid_rank - 1) / (n - 1) * 100.0)
    return result


def _slope_per_30d(calls: Sequence[SkillObservation]) -> float | None:
    """Least-squares score change per 30 days, or None with < 3 calls or < 7 days of span."""
    if len(calls) < MIN_SLOPE_CALLS:
        return None
    t0 = min(o.at for o in calls)
    days = [(o.at - t0).total_seconds() / 86400.0 for o in calls]
    if max(days) - min(days) < MIN_SLOPE_SPAN_DAYS:
        return None
    t_mean = math.fsum(days) / len(days)
    y_mean = math.fsum(o.score for o in calls) / len(calls)
    sxy = math.fsum((t - t_mean) * (o.score - y_mean) for t, o in zip(days, calls))
    sxx = math.fsum((t - t_mean) ** 2 for t in days)
    return _r(sxy / sxx * 30.0)


def _r(x: float) -> float:
    return round(x, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
