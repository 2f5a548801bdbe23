"""Did coaching on a skill move it: checked on synthetic weekly agendas whose coaching effect
is known, and from agendas recorded in the database."""

from __future__ import annotations

from datetime import date, timedelta

from core.cohorts import cohort
from sandbox.synthetic_outcomes import SKILLS, synthetic_coaching


def cohorts(effect: float, seed: int, **kw):
    made = synthetic_coaching(effect=effect, seed=seed, **kw)
    return [cohort(s, made.scores[s], made.focus, []) for s in SKILLS]


def test_coaching_that_works_moves_the_focused_skills():
    found = []
    for seed in range(2):
        for c in cohorts(0.5, seed):
            assert c.state == "ok", c.reason
            month, two = c.movements
            assert month.horizon_days == 30 and two.horizon_days == 60
            found.append(month.interval[0] > 0)
            assert two.difference > 0
    assert sum(found) >= 0.9 * len(found), found


def test_coaching_that_does_nothing_is_rarely_reported():
    reported = [c.movements[0].interval[0] > 0 or c.movements[0].interval[1] < 0
                for seed in range(10, 16) for c in cohorts(0.0, seed)]
    assert sum(reported) <= 0.12 * len(reported), sum(reported)


def test_a_few_focused_weeks_are_insufficient_data():
    for c in cohorts(0.5, 3, reps=3, weeks=3):
        assert c.state == "insufficient_data" and "at least 10" in c.reason
        assert all(m.difference is None for m in c.movements)


def test_win_rates_before_and_after_the_first_focus_week():
    made = synthetic_coaching(effect=0.5, seed=5)
    skill = "discovery_depth"
    first = min(week for (rep, week), skills in made.focus.items()
                if rep == 1 and skill in skills)
    deals = [(1, first - timedelta(days=10), False), (1, first - timedelta(days=100), True),
             (1, first + timedelta(days=5), True), (1, first + timedelta(days=20), True),
             (2, first, True)]  # rep 2's own first week decides for rep 2
    result = cohort(skill, made.scores[skill], made.focus, deals)
    assert (result.wins_before.deals, result.wins_before.wins) == (1, 0)
    assert result.wins_after.deals >= 2 and result.wins_after.rate > 0.5
    assert result.wins_after.interval[0] <= result.wins_after.rate <= \
        result.wins_after.interval[1]


def test_agendas_record_their_focus_and_the_report_reads_it(sqlite_database, tmp_path):
    from sqlmodel import select

    from core.agenda import weekly_agendas, week_of
    from core.cohorts import cohort_report
    from core.db import session_scope
    from core.models import AgendaFocus
    from tests.conftest import scored_demo_org

    org_id = scored_demo_org(tmp_path / "calls", date(2026, 11, 20))
    agendas = weekly_agendas(org_id, date(2026, 11, 20), min_calls=1)
    assert any(a.focus for a in agendas)
    again = weekly_agendas(org_id, date(2026, 11, 19), min_calls=1)  # same week: replaced
    with session_scope() as session:
        rows = session.exec(select(AgendaFocus)).all()
        assert len(rows) == sum(1 for a in again) and {r.week for r in rows} == {
            week_of(date(2026, 11, 20))}
        focused = {s for r in rows for s in r.skills}
        assert focused == {f.skill for a in again for f in a.focus}
        report = cohort_report(session, org_id)
    assert {c.skill for c in report} == focused
    assert all(c.state == "insufficient_data" for c in report)  # one week, three reps
