"""Skill roll-up in SQL against the previous Python roll-up (kept here as the oracle): the
same observations and the same snapshots, on the demo calls and on a randomised org with
abstentions, zero weights and two rubrics per call, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

from sqlmodel import select

from core.db import session_scope
from core.models import CallScore, CriterionScore, Meeting, Org, Rubric, User
from core.skill_refresh import refresh_skills, skill_observations
from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder, run_pending


def python_rollup(session, org_id: int) -> list:
    """The roll-up as it was: every criterion row loaded, rolled up per call in Python."""
    from core.domain import CriterionResult, SkillObservation
    from core.skills import call_skill_scores

    rows = session.exec(select(CallScore, Meeting.started_at, CriterionScore)
                        .join(Meeting, CallScore.meeting_id == Meeting.id)
                        .join(CriterionScore, CriterionScore.call_score_id == CallScore.id)
                        .where(CallScore.org_id == org_id, CallScore.rep_id.is_not(None))
                        .order_by(CallScore.meeting_id, CriterionScore.id)).all()
    per_call = defaultdict(list)
    for call, started_at, criterion in rows:
        per_call[(call.meeting_id, call.rep_id, started_at)].append(CriterionResult(
            criterion.criterion, criterion.skill, criterion.score, criterion.max_score,
            criterion.weight, criterion.confidence, criterion.rationale))
    observations = [obs for (meeting_id, rep_id, at), criteria in sorted(per_call.items())
                    for obs in call_skill_scores(criteria, rep_id, meeting_id, at)]
    shapes = dict(session.exec(select(Meeting.id, Meeting.conversation).where(
        Meeting.id.in_({m for m, _, _ in per_call}))).all()) if per_call else {}
    for meeting_id, rep_id, at in sorted(per_call):
        score = (shapes.get(meeting_id) or {}).get("talk_listen_score")
        if score is not None:
            observations.append(SkillObservation(rep_id, "talk_listen_balance", meeting_id,
                                                 at, float(score)))
    return observations


def key(o):
    return (o.rep_id, o.skill, o.meeting_id)


def same_observations(org_id: int) -> int:
    with session_scope() as session:
        new = sorted(skill_observations(session, org_id), key=key)
        old = sorted(python_rollup(session, org_id), key=key)
    assert [key(o) for o in new] == [key(o) for o in old]
    for a, b in zip(new, old, strict=True):
        assert abs(a.score - b.score) <= 0.0011, (key(a), a.score, b.score)
        assert a.at == b.at
    return len(new)


def test_same_observations_and_snapshots_on_the_demo_calls(database, tmp_path):
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    run_pending()
    with session_scope() as session:
        org_id = session.exec(select(Org.id)).first()
    assert same_observations(org_id) > 40
    assert refresh_skills(org_id, date(2026, 11, 20)) > 0


SKILLS = ("discovery_depth", "business_impact", "multi_threading", "decision_process")


def add_call(session, rng, org_id, rep, rubric_ids, started_at, external_id):
    """One meeting scored against each rubric, with random criteria (abstentions, zero
    weights and all)."""
    meeting = Meeting(org_id=org_id, source="files", external_id=external_id, title="x",
                      started_at=started_at, stage="scored",
                      conversation={"talk_listen_score": rng.uniform(0, 100)}
                      if rng.random() < 0.8 else {})
    session.add(meeting)
    session.flush()
    for rubric_id in rubric_ids:
        add_score(session, rng, org_id, meeting.id, rubric_id, rep)
    return meeting.id


def add_score(session, rng, org_id, meeting_id, rubric_id, rep, low=0):
    call = CallScore(org_id=org_id, meeting_id=meeting_id, rubric_id=rubric_id, rep_id=rep,
                     scorer="builtin", scorer_version="1")
    session.add(call)
    session.flush()
    for c in range(rng.randint(low, 6)):
        top = rng.choice([4.0, 5.0, 10.0])
        session.add(CriterionScore(
            org_id=org_id, call_score_id=call.id, criterion=f"c{c}",
            skill=rng.choice(SKILLS), max_score=top,
            score=None if rng.random() < 0.2 else round(rng.uniform(0, top), 2),
            weight=rng.choice([0.0, 0.5, 1.0, 1.0, 2.0]), confidence=0.5,
            rationale="r", state="scored", evidence=[{"quote": "q" * 200}]))


def random_org(rng, n_reps=6, n_meetings=120, start=datetime(2026, 8, 1, tzinfo=timezone.utc)):
    with session_scope() as session:
        org = Org(name="Random", domains=["r.example"])
        session.add(org)
        session.flush()
        reps = []
        for n in range(n_reps):
            user = User(org_id=org.id, name=f"rep {n}", email=f"rep{n}@r.example")
            session.add(user)
            session.flush()
            reps.append(user.id)
        rubrics = []
        for key_ in ("meddic", "bant"):
            rubric = Rubric(org_id=org.id, key=key_, name=key_, version="1")
            session.add(rubric)
            session.flush()
            rubrics.append(rubric.id)
        for m in range(n_meetings):
            add_call(session, rng, org.id, rng.choice(reps) if rng.random() < 0.95 else None,
                     rubrics, start + timedelta(hours=rng.randrange(24 * 110)), f"m{m}")
        return org.id, reps, rubrics


def test_same_observations_on_a_randomised_org(database):
    org_id, _, _ = random_org(random.Random(7))
    assert same_observations(org_id) > 200


def test_a_refresh_reads_only_what_its_windows_hold_and_gives_the_same_snapshots(database,
                                                                                tmp_path):
    """Calls older than the longest window change no snapshot: leaving them out of the
    roll-up gives the same snapshots as reading the whole history."""
    from core.domain import SkillObservation
    from core.models import SkillSnapshot
    from core.settings import get_settings
    from core.skills import compute_skill_estimates

    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    run_pending()
    as_of = date(2026, 11, 20)
    with session_scope() as session:
        org_id = session.exec(select(Org.id)).first()
        # An old call, far outside every window: it must not matter.
        meeting = session.exec(select(Meeting)).first()
        meeting.started_at = datetime(2025, 1, 5, tzinfo=timezone.utc)
        session.add(meeting)
    refresh_skills(org_id, as_of)
    with session_scope() as session:
        stored = sorted((s.rep_id, s.skill, s.window_days, s.n_calls, s.shrunk)
                        for s in session.exec(select(SkillSnapshot)))
        everything = skill_observations(session, org_id)
        reps = session.exec(select(User.id).where(User.org_id == org_id,
                                                  User.role == "rep")).all()
    settings = get_settings()
    expected = sorted((e.rep_id, e.skill, e.window_days, e.n_calls, e.shrunk)
                      for e in compute_skill_estimates(
                          everything, as_of, windows=settings.skills.windows,
                          min_calls=settings.skills.min_calls, rep_ids=reps))
    assert stored == expected and stored
    assert any(isinstance(o, SkillObservation) and o.meeting_id == meeting.id
               for o in everything)


SNAPSHOT_FIELDS = ("rep_id", "skill", "window_days", "n_calls", "raw_mean", "shrunk",
                   "interval_low", "interval_high", "percentile", "slope_per_30d", "state")


def snapshots(org_id, as_of) -> dict:
    from core.models import SkillSnapshot

    with session_scope() as session:
        rows = session.exec(select(SkillSnapshot).where(SkillSnapshot.org_id == org_id,
                                                        SkillSnapshot.as_of == as_of)).all()
        return {(r.rep_id, r.skill, r.window_days):
                (r.id, tuple(getattr(r, f) for f in SNAPSHOT_FIELDS), sorted(r.meeting_ids))
                for r in rows}


def assert_close(incremental: dict, full: dict) -> None:
    assert incremental.keys() == full.keys()
    for key_, (_, values, meetings) in incremental.items():
        _, expected, expected_meetings = full[key_]
        assert meetings == expected_meetings, key_
        for name, a, b in zip(SNAPSHOT_FIELDS, values, expected, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert abs(a - b) <= 0.0011, (key_, name, a, b)  # rounding to 3 decimals
            else:
                assert a == b, (key_, name, a, b)


def delete_scores(session, where) -> None:
    from sqlmodel import delete

    ids = session.exec(select(CallScore.id).where(where)).all()
    session.exec(delete(CriterionScore).where(CriterionScore.call_score_id.in_(ids)))
    session.exec(delete(CallScore).where(CallScore.id.in_(ids)))


def test_an_incremental_refresh_reads_only_changed_reps_and_matches_a_full_one(database):
    """After each change (a new call, a call moved to another rep, a deleted score, a new rep,
    nothing at all), refreshing the same day again equals a full recompute, and the rows of
    reps whose calls did not change are updated in place, not rewritten."""
    rng = random.Random(11)
    org_id, reps, rubrics = random_org(rng, n_reps=8, n_meetings=160)
    as_of = date(2026, 11, 10)
    refresh_skills(org_id, as_of)
    now = datetime(2026, 11, 9, 15, tzinfo=timezone.utc)

    def new_call(session):
        add_call(session, rng, org_id, reps[0], rubrics, now, "new")
        return {reps[0]}

    def moved_call(session):
        meeting = session.exec(select(CallScore.meeting_id).where(
            CallScore.org_id == org_id, CallScore.rep_id == reps[1])).first()
        delete_scores(session, CallScore.meeting_id == meeting)
        for rubric_id in rubrics:
            add_score(session, rng, org_id, meeting, rubric_id, reps[2], low=2)
        return {reps[1], reps[2]}

    def deleted_score(session):
        last = session.exec(select(CallScore.id).where(CallScore.rep_id == reps[3])
                            .order_by(CallScore.id.desc())).first()
        delete_scores(session, CallScore.id == last)
        return {reps[3]}

    def new_rep(session):
        user = User(org_id=org_id, name="new rep", email="new@r.example")
        session.add(user)
        session.flush()
        return {user.id}

    for change, moves_others in ((new_call, True), (moved_call, True), (deleted_score, True),
                                 (new_rep, False), (lambda session: set(), False)):
        before = snapshots(org_id, as_of)
        with session_scope() as session:
            changed = change(session)
        refresh_skills(org_id, as_of)
        incremental = snapshots(org_id, as_of)
        kept = [key_ for key_ in incremental if key_[0] not in changed and key_ in before]
        assert kept and all(incremental[k][0] == before[k][0] for k in kept), change
        if not changed:
            assert incremental == before  # nothing changed: nothing rewritten
        refresh_skills(org_id, as_of, full=True)
        assert_close(incremental, snapshots(org_id, as_of))
        # A rep's calls move the team prior, so everyone else's estimates move with them.
        assert any(incremental[k][1] != before[k][1] for k in kept) == moves_others, change
