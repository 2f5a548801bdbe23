"""Skill statistics: hand-computed cases for shrinkage, windows, percentiles, trends."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

import pytest

from core.domain import CriterionResult, SkillObservation
from core.skills import (
    PRIOR_SIGMA2,
    TAU2_DEFAULT,
    TAU2_FLOOR,
    Z_90,
    TeamPrior,
    call_skill_scores,
    compute_skill_estimates,
    fit_team_prior,
    shrink,
)

AS_OF = date(2024, 6, 30)


def ob(rep: int, meeting: int, at: datetime, score: float, skill: str = "discovery"):
    return SkillObservation(rep_id=rep, skill=skill, meeting_id=meeting, at=at, score=score)


def calls(rep: int, scores: list[float], skill: str = "discovery", first_day: int = 1):
    """One call a day in June 2024 at noon, meeting ids rep*100 + i."""
    return [ob(rep, rep * 100 + i, datetime(2024, 6, first_day + i, 12), s, skill)
            for i, s in enumerate(scores)]


def by_rep(estimates, window=30, skill="discovery"):
    return {e.rep_id: e for e in estimates if e.window_days == window and e.skill == skill}


# Three reps with 10 noisy calls each, one rep with a single call.
#   means: 60, 70, 50, 90 → team mean = 270/4 = 67.5
#   SS within = 3 reps × 10 calls × 20² = 12000, df = 3 × 9 = 27
#   σ² = (12000 + 3·225) / (27 + 3) = 12675/30 = 422.5
#   between = ((−7.5)² + 2.5² + (−17.5)² + 22.5²) / 3 = 875/3
#   sampling = (3 · 422.5/10 + 422.5/1) / 4 = 549.25/4 = 137.3125
#   τ² = 875/3 − 137.3125 = 7409/48 ≈ 154.354
TEAM = calls(1, [40, 80] * 5) + calls(2, [50, 90] * 5) + calls(3, [30, 70] * 5) + calls(4, [90])
TEAM_MEAN, SIGMA2, TAU2 = 67.5, 422.5, 875 / 3 - 137.3125


def posterior(n, raw):
    precision = n / SIGMA2 + 1 / TAU2
    return (n / SIGMA2 * raw + TEAM_MEAN / TAU2) / precision, 1 / math.sqrt(precision)


# ------------------------------------------------------------------ team prior ----


def test_team_prior_matches_hand_computation():
    prior = fit_team_prior({1: [40, 80] * 5, 2: [50, 90] * 5, 3: [30, 70] * 5, 4: [90], 5: []})
    assert prior.mean == pytest.approx(67.5)
    assert prior.sigma2 == pytest.approx(422.5)
    assert prior.tau2 == pytest.approx(7409 / 48)


def test_team_mean_is_mean_of_rep_means_not_of_calls():
    # Mean over calls would be (10·80 + 20 + 20) / 12 = 70; over reps it is (80+20+20)/3 = 40.
    prior = fit_team_prior({1: [80] * 10, 2: [20], 3: [20]})
    assert prior.mean == pytest.approx(40.0)


def test_sigma2_falls_back_to_prior_without_repeat_calls_and_tau2_to_default_with_few_reps():
    prior = fit_team_prior({1: [90], 2: [10]})  # no within-rep df, only two reps
    assert prior.sigma2 == pytest.approx(PRIOR_SIGMA2)
    assert prior.tau2 == TAU2_DEFAULT


def test_tau2_is_floored_when_reps_do_not_differ():
    prior = fit_team_prior({1: [60, 80], 2: [70, 70], 3: [80, 60]})  # every mean is 70
    assert prior.tau2 == TAU2_FLOOR
    assert prior.mean == pytest.approx(70.0)


def test_no_calls_no_prior():
    assert fit_team_prior({1: [], 2: []}) is None


# ------------------------------------------------------------------- shrinkage ----


def test_shrinkage_pulls_one_call_rep_strongly_and_ten_call_rep_barely():
    est = by_rep(compute_skill_estimates(TEAM, AS_OF, windows=(30,)))
    one, ten = est[4], est[3]
    assert (one.n_calls, one.raw_mean) == (1, 90.0)
    assert (ten.n_calls, ten.raw_mean) == (10, 50.0)
    # hand-computed: 90 → 73.521 (B = 0.267), 50 → 53.761 (B = 0.785)
    assert one.shrunk == pytest.approx(73.521, abs=1e-3)
    assert ten.shrunk == pytest.approx(53.761, abs=1e-3)
    assert one.shrunk == pytest.approx(posterior(1, 90)[0], abs=1e-3)
    assert ten.shrunk == pytest.approx(posterior(10, 50)[0], abs=1e-3)
    moved_one = (one.raw_mean - one.shrunk) / (one.raw_mean - TEAM_MEAN)
    moved_ten = (ten.shrunk - ten.raw_mean) / (TEAM_MEAN - ten.raw_mean)
    assert moved_one > 0.7
    assert moved_ten < 0.25


def test_interval_is_90_percent_of_posterior_and_narrows_with_n():
    est = by_rep(compute_skill_estimates(TEAM, AS_OF, windows=(30,)))
    for rep, n, raw in [(3, 10, 50), (4, 1, 90)]:
        mean, sd = posterior(n, raw)
        assert est[rep].interval_low == pytest.approx(mean - Z_90 * sd, abs=1e-3)
        assert est[rep].interval_high == pytest.approx(mean + Z_90 * sd, abs=1e-3)
    assert (est[4].interval_low, est[4].interval_high) == pytest.approx((56.031, 91.010), abs=1e-3)
    assert (est[3].interval_low, est[3].interval_high) == pytest.approx((44.287, 63.234), abs=1e-3)
    width = {r: e.interval_high - e.interval_low for r, e in est.items()}
    assert width[3] < width[4] / 1.8


def test_posterior_sd_shrinks_as_calls_accumulate():
    prior = TeamPrior(mean=60.0, sigma2=400.0, tau2=100.0)
    sds = [shrink(prior, n, 80.0)[1] for n in (1, 2, 5, 10, 50)]
    assert sds == sorted(sds, reverse=True) and len(set(sds)) == 5
    # n = 4: precision = 4/400 + 1/100 = 0.02 → mean = (0.01·80 + 0.01·60)/0.02 = 70, sd = √50
    assert shrink(prior, 4, 80.0) == pytest.approx((70.0, math.sqrt(50.0)))
    with pytest.raises(ValueError):
        shrink(prior, 0, 80.0)


def test_interval_is_clipped_to_the_scale():
    data = calls(1, [100] * 5) + calls(2, [100] * 5) + calls(3, [99] * 5)
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,)))
    assert est[1].interval_high == 100.0
    assert est[1].interval_low < est[1].shrunk < 100.0
    low_data = calls(1, [0] * 5) + calls(2, [0] * 5) + calls(3, [1] * 5)
    assert by_rep(compute_skill_estimates(low_data, AS_OF, windows=(30,)))[1].interval_low == 0.0


# --------------------------------------------------------------------- windows ----


def test_window_boundaries_exclude_the_start_day_and_include_as_of():
    data = [
        ob(1, 1, datetime(2024, 5, 31, 23, 59), 50),  # as_of − 30 days: outside 30, inside 60
        ob(1, 2, datetime(2024, 6, 1, 0, 0), 60),  # first day of the 30-day window
        ob(1, 3, datetime(2024, 6, 30, 23, 59), 70),  # as_of itself, late in the day
        ob(1, 4, datetime(2024, 7, 1, 0, 0), 80),  # after as_of: in no window
        ob(1, 5, datetime(2024, 5, 1, 12), 40),  # as_of − 60 days: outside 60
        ob(1, 6, datetime(2024, 4, 1, 12), 30),  # as_of − 90 days: outside 90
    ]
    est = {e.window_days: e for e in compute_skill_estimates(data, AS_OF, min_calls=1)}
    assert est[30].meeting_ids == (2, 3)
    assert est[30].raw_mean == 65.0
    assert est[60].meeting_ids == (1, 2, 3)
    assert est[90].meeting_ids == (5, 1, 2, 3)  # in time order
    assert est[90].n_calls == 4


def test_as_of_may_be_given_as_a_datetime():
    data = calls(1, [50, 60, 70])
    as_dt = compute_skill_estimates(data, datetime(2024, 6, 30, 8), windows=(30,))
    assert as_dt == compute_skill_estimates(data, AS_OF, windows=(30,))
    assert as_dt[0].as_of == AS_OF


# ----------------------------------------------------------------- percentiles ----


def test_percentiles_rank_ok_reps_with_mid_rank_for_ties():
    data = (calls(1, [60] * 3) + calls(2, [60] * 3) + calls(3, [80] * 3) + calls(4, [40] * 3)
            + calls(5, [100]))  # rep 5 has one call: insufficient, not ranked
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,)))
    assert est[1].shrunk == est[2].shrunk
    assert est[4].shrunk < est[1].shrunk < est[3].shrunk
    # 4 ranked reps: ranks 1, 2.5, 2.5, 4 → (rank − 1)/3 · 100
    assert {r: e.percentile for r, e in est.items()} == {1: 50.0, 2: 50.0, 3: 100.0, 4: 0.0,
                                                         5: None}


def test_percentiles_follow_shrunk_estimates_and_round():
    data = calls(1, [10] * 3) + calls(2, [40] * 3) + calls(3, [70] * 3) + calls(4, [95] * 3)
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,)))
    assert [est[r].percentile for r in (1, 2, 3, 4)] == [0.0, 33.333, 66.667, 100.0]


def test_no_percentile_with_fewer_than_two_ok_peers():
    data = calls(1, [70] * 3) + calls(2, [50]) + calls(3, [90, 80])
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,)))
    assert est[1].state == "ok"
    assert all(e.percentile is None for e in est.values())


# ------------------------------------------------------------------------ state ----


def test_insufficient_data_below_min_calls_still_gets_a_shrunk_estimate():
    data = calls(1, [70, 80]) + calls(2, [50] * 3) + calls(3, [60] * 3)
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,), min_calls=3))
    assert [est[r].state for r in (1, 2, 3)] == ["insufficient_data", "ok", "ok"]
    assert est[1].shrunk is not None and est[1].interval_low is not None
    assert est[1].percentile is None
    assert est[2].percentile == 0.0 and est[3].percentile == 100.0

    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,), min_calls=2))
    assert est[1].state == "ok"
    assert [est[r].percentile for r in (1, 2, 3)] == [100.0, 0.0, 50.0]


def test_rep_without_calls_gets_nones():
    data = calls(1, [70, 80, 90]) + [ob(2, 200, datetime(2024, 1, 1, 12), 50)]  # rep 2: too old
    est = by_rep(compute_skill_estimates(data, AS_OF, windows=(30,), rep_ids=[3, 1]))
    assert sorted(est) == [1, 2, 3]
    for rep in (2, 3):
        e = est[rep]
        assert (e.n_calls, e.meeting_ids, e.state) == (0, (), "insufficient_data")
        assert (e.raw_mean, e.shrunk, e.interval_low, e.interval_high,
                e.percentile, e.slope_per_30d) == (None,) * 6


def test_no_observations_no_estimates():
    assert compute_skill_estimates([], AS_OF, rep_ids=[1, 2]) == []


# ------------------------------------------------------------------------ trend ----


def test_slope_on_a_known_linear_series():
    rising = [ob(1, i, datetime(2024, 6, 1, 12) + timedelta(days=10 * i), 50 + 10 * i)
              for i in range(3)]  # +10 per 10 days = +30 per 30 days
    falling = [ob(2, 10 + i, datetime(2024, 6, 1, 12) + timedelta(days=6 * i), 90 - 3 * i)
               for i in range(5)]  # −3 per 6 days = −15 per 30 days
    est = by_rep(compute_skill_estimates(rising + falling, AS_OF, windows=(30,)))
    assert est[1].slope_per_30d == pytest.approx(30.0)
    assert est[2].slope_per_30d == pytest.approx(-15.0)


def test_slope_is_least_squares_on_noisy_points():
    # (0, 50), (10, 70), (20, 60): t̄ = 10, ȳ = 60, Sxy = 100, Sxx = 200 → 0.5/day = 15/30 days
    data = [ob(1, 1, datetime(2024, 6, 1), 50), ob(1, 2, datetime(2024, 6, 11), 70),
            ob(1, 3, datetime(2024, 6, 21), 60)]
    assert compute_skill_estimates(data, AS_OF, windows=(30,))[0].slope_per_30d == 15.0


def test_slope_needs_three_calls_over_seven_days():
    start = datetime(2024, 6, 10, 9)
    two = [ob(1, 1, start, 40), ob(1, 2, start + timedelta(days=20), 80)]
    short = [ob(2, 10 + i, start + timedelta(days=3.45 * i), 40 + 10 * i) for i in range(3)]
    week = [ob(3, 20 + i, start + timedelta(days=3.5 * i), 40 + 10 * i) for i in range(3)]
    est = by_rep(compute_skill_estimates(two + short + week, AS_OF, windows=(30,)))
    assert est[1].slope_per_30d is None
    assert est[2].slope_per_30d is None  # spans 6.9 days
    assert est[3].slope_per_30d == pytest.approx(10 / 3.5 * 30, abs=1e-3)  # spans exactly 7


# ------------------------------------------------------------- shape and order ----


def test_output_order_rounding_and_determinism():
    data = (TEAM + calls(1, [33, 67, 71], skill="closing") + calls(2, [12.3456], skill="closing"))
    result = compute_skill_estimates(data, AS_OF, windows=(90, 30, 30), rep_ids=[7])
    keys = [(e.window_days, e.skill, e.rep_id) for e in result]
    assert keys == sorted(keys)
    assert {w for w, _, _ in keys} == {30, 90}
    assert len(result) == 2 * 2 * 5  # windows × skills × reps (1–4 plus 7)
    for e in result:
        for value in (e.raw_mean, e.shrunk, e.interval_low, e.interval_high, e.percentile,
                      e.slope_per_30d):
            assert value is None or round(value, 3) == value

    shuffled = list(data)
    random.Random(7).shuffle(shuffled)
    assert compute_skill_estimates(iter(shuffled), AS_OF, windows=(30, 90), rep_ids={7}) == result


def test_bad_observations_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        compute_skill_estimates(calls(1, [50]) + calls(1, [60]), AS_OF)
    with pytest.raises(ValueError, match="outside 0–100"):
        compute_skill_estimates(calls(1, [101]), AS_OF)
    with pytest.raises(ValueError, match="outside 0–100"):
        compute_skill_estimates(calls(1, [math.nan]), AS_OF)
    with pytest.raises(ValueError, match="min_calls"):
        compute_skill_estimates(calls(1, [50]), AS_OF, min_calls=0)
    with pytest.raises(ValueError, match="windows"):
        compute_skill_estimates(calls(1, [50]), AS_OF, windows=(0, 30))


# ------------------------------------------------------------- call skill scores ----


def crit(key, skill, score, max_score=5.0, weight=1.0):
    return CriterionResult(key=key, skill=skill, score=score, max_score=max_score,
                           weight=weight, confidence=0.9, rationale="")


def test_call_skill_scores_weighted_mean_and_abstention():
    at = datetime(2024, 6, 3, 15)
    criteria = [
        crit("pain", "discovery", 3, max_score=5, weight=2),  # 60
        crit("impact", "discovery", 1, max_score=1, weight=1),  # 100
        crit("budget", "discovery", None, max_score=5, weight=5),  # abstained: ignored
        crit("next_step", "closing", None),  # the only closing criterion abstained
        crit("agenda", "call_control", 0, max_score=4, weight=0.5),  # 0
    ]
    result = call_skill_scores(criteria, rep_id=7, meeting_id=42, at=at)
    assert [o.skill for o in result] == ["call_control", "discovery"]
    by_skill = {o.skill: o for o in result}
    assert by_skill["discovery"].score == 73.333  # (2·60 + 1·100) / 3, rounded
    assert by_skill["call_control"].score == 0.0
    assert all((o.rep_id, o.meeting_id, o.at) == (7, 42, at) for o in result)


def test_call_skill_scores_edge_cases():
    at = datetime(2024, 6, 3, 15)
    assert call_skill_scores([], 1, 1, at) == []
    assert call_skill_scores([crit("a", "s", 5, weight=0)], 1, 1, at) == []
    full = call_skill_scores([crit("a", "s", 3, 3, 0.1), crit("b", "s", 7, 7, 0.2)], 1, 1, at)
    assert full[0].score == 100.0
    with pytest.raises(ValueError, match="outside"):
        call_skill_scores([crit("a", "s", 6, max_score=5)], 1, 1, at)
    with pytest.raises(ValueError, match="max_score"):
        call_skill_scores([crit("a", "s", None, max_score=0)], 1, 1, at)
    with pytest.raises(ValueError, match="weight"):
        call_skill_scores([crit("a", "s", 1, weight=-1)], 1, 1, at)


def test_call_scores_feed_the_estimator():
    obs = []
    for day, score in enumerate([2, 3, 4]):
        obs += call_skill_scores([crit("pain", "discovery", score, max_score=4)], rep_id=1,
                                 meeting_id=day, at=datetime(2024, 6, 1 + 7 * day, 12))
    (e,) = compute_skill_estimates(obs, AS_OF, windows=(30,))
    assert (e.n_calls, e.raw_mean, e.state) == (3, 75.0, "ok")
    assert e.slope_per_30d == pytest.approx(25 / 7 * 30, abs=1e-3)
