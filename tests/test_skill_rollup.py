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
from core.pipeline import refresh_skills, skill_observations
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


def test_same_observations_on_a_randomised_org(database):
    rng = random.Random(7)
    with session_scope() as session:
        org = Org(name="Random", domains=["r.example"])
        session.add(org)
        session.flush()
        reps = []
        for n in range(6):
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
        start = datetime(2026, 8, 1, tzinfo=timezone.utc)
        skills = ("discovery_depth", "business_impact", "multi_threading", "decision_process")
        for m in range(120):
            meeting = Meeting(org_id=org.id, source="files", external_id=f"m{m}", title="x",
                              started_at=start + timedelta(hours=rng.randrange(24 * 110)),
                              stage="scored",
                              conversation={"talk_listen_score": rng.uniform(0, 100)}
                              if rng.random() < 0.8 else {})
            session.add(meeting)
            session.flush()
            rep = rng.choice(reps)
            for rubric_id in rubrics:
                call = CallScore(org_id=org.id, meeting_id=meeting.id, rubric_id=rubric_id,
                                 rep_id=rep if rng.random() < 0.95 else None, scorer="builtin",
                                 scorer_version="1")
                session.add(call)
                session.flush()
                for c in range(rng.randint(0, 6)):
                    top = rng.choice([4.0, 5.0, 10.0])
                    session.add(CriterionScore(
                        org_id=org.id, call_score_id=call.id, criterion=f"c{c}",
                        skill=rng.choice(skills), max_score=top,
                        score=None if rng.random() < 0.2 else round(rng.uniform(0, top), 2),
                        weight=rng.choice([0.0, 0.5, 1.0, 1.0, 2.0]), confidence=0.5,
                        rationale="r", state="scored", evidence=[{"quote": "q" * 200}]))
        org_id = org.id
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
