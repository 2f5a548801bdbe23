"""Synthetic orgs whose truth is known, to check that the outcome analysis finds it.

Each of `reps` reps has a latent level on every skill and a drift over the year; a deal's
owner is measured on each skill as of its close date (the latent value plus measurement
noise, on the 0–100 scale). Whether the deal is won is drawn from a logistic model in which
chosen skills have chosen effects (log-odds per standard deviation) and deal size lowers the
odds, while more skilled reps also get bigger deals: a confounder the analysis must hold
equal; and each rep has an unmeasured edge of their own that all their deals share, so deals
are not independent. Every draw comes from one seeded generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from core.outcomes import DealProfile

# log-odds of winning per standard deviation of the latent skill
DEFAULT_EFFECTS = {"discovery_depth": 1.0, "business_impact": 0.75, "decision_process": 0.5}
SKILLS = ("discovery_depth", "business_impact", "multi_threading", "decision_process",
          "budget_qualification", "urgency_timeline", "competitive_positioning",
          "next_step_clarity", "talk_listen_balance")


@dataclass(frozen=True)
class SyntheticOrg:
    profiles: list[DealProfile]
    effects: dict[str, float]  # the truth: every skill, 0.0 for those with no effect
    latent: dict[tuple[int, str], tuple[float, float]]  # (rep, skill) → (level, yearly drift)


def synthetic_org(deals: int, *, reps: int = 40, effects: dict[str, float] | None = None,
                  seed: int = 0, size_effect: float = -0.6, size_link: float = 0.5,
                  drift: float = 0.8, noise: float = 4.0, rep_effect: float = 0.5,
                  start: date = date(2025, 12, 1), days: int = 360) -> SyntheticOrg:
    rng = random.Random(seed)
    effects = dict(DEFAULT_EFFECTS if effects is None else effects)
    truth = {s: effects.get(s, 0.0) for s in SKILLS}
    latent = {(rep, s): (rng.gauss(0, 1), rng.gauss(0, drift))
              for rep in range(1, reps + 1) for s in SKILLS}
    # What else about a rep wins deals (territory, tenure): unmeasured, shared by their deals.
    other = {rep: rng.gauss(0, rep_effect) for rep in range(1, reps + 1)}
    lead = max(truth, key=lambda s: truth[s])  # the skill that also brings bigger deals
    profiles = []
    for deal_id in range(1, deals + 1):
        owner = rng.randint(1, reps)
        day = rng.randrange(days)
        z = {s: latent[(owner, s)][0] + latent[(owner, s)][1] * day / days for s in SKILLS}
        log_size = size_link * z[lead] + rng.gauss(0, 0.6)
        logit = -0.2 + other[owner] + sum(truth[s] * z[s] for s in SKILLS) \
            + size_effect * log_size
        won = rng.random() < 1 / (1 + math.exp(-logit))
        measured = {s: min(100.0, max(0.0, 50 + 15 * z[s] + rng.gauss(0, noise)))
                    for s in SKILLS}
        profiles.append(DealProfile(deal_id, f"Deal {deal_id}", owner,
                                    start + timedelta(days=day), won,
                                    round(40_000 * math.exp(log_size), 2), None, measured))
    return SyntheticOrg(profiles, truth, latent)


HISTORY_SOURCE = "history"  # meetings and deals of a seeded synthetic year


def seed_history(org_id: int, *, reps: int = 24, deals: int = 480, seed: int = 7,
                 domain: str = "acme-analytics.example", start: date = date(2025, 9, 1),
                 days: int = 360, effects: dict[str, float] | None = None) -> int:
    """A synthetic year for an org, into its database: a team of `reps` under their own
    manager (all marked "(synthetic)"), a scored call a week per rep (criterion scores per
    skill drawn from the rep's drifting latent skills; no transcripts), and `deals` closed
    deals whose outcomes follow the generator's truth. Its calls are never written to a CRM
    (`crm_excluded`) and its deals belong to none. Returns the deals added (0 when the org
    has its history already)."""
    from datetime import datetime, time, timezone

    from sqlmodel import select

    from core.db import session_scope
    from core.models import CallScore, CriterionScore, Deal, Meeting, Rubric, User

    org = synthetic_org(deals, reps=reps, effects=effects, seed=seed, start=start, days=days)
    rng = random.Random(seed + 1)
    with session_scope() as session:
        if session.exec(select(Meeting.id).where(Meeting.org_id == org_id,
                                                 Meeting.source == HISTORY_SOURCE)).first():
            return 0
        manager = User(org_id=org_id, email=f"history.manager@{domain}", role="manager",
                       name="Hale Morgan (synthetic)")
        session.add(manager)
        session.flush()
        people = {}
        for rep in range(1, reps + 1):
            people[rep] = User(org_id=org_id, email=f"history.rep{rep:02d}@{domain}",
                               role="rep", name=f"History Rep {rep:02d} (synthetic)",
                               manager_id=manager.id)
            session.add(people[rep])
        rubric = Rubric(org_id=org_id, key="synthetic", name="Synthetic history",
                        version="1", content={"synthetic": True})
        session.add(rubric)
        session.flush()
        for rep, user in people.items():
            for week, day in enumerate(range(rng.randrange(7), days, 7)):
                at = datetime.combine(start + timedelta(days=day), time(15),
                                      tzinfo=timezone.utc)
                meeting = Meeting(org_id=org_id, source=HISTORY_SOURCE,
                                  external_id=f"rep{rep:02d}-week{week:02d}",
                                  title=f"Synthetic call {week + 1}", started_at=at,
                                  host_id=user.id, stage="scored", crm_excluded=True)
                session.add(meeting)
                session.flush()
                call = CallScore(org_id=org_id, meeting_id=meeting.id, rubric_id=rubric.id,
                                 rep_id=user.id, scorer="synthetic", scorer_version="1")
                session.add(call)
                session.flush()
                for skill in SKILLS:
                    level, drift = org.latent[(rep, skill)]
                    z = level + drift * day / days
                    score = min(100.0, max(0.0, 50 + 15 * z + rng.gauss(0, 8)))
                    session.add(CriterionScore(org_id=org_id, call_score_id=call.id,
                                               criterion=skill, skill=skill, score=score,
                                               max_score=100.0, confidence=1.0))
        for p in org.profiles:
            session.add(Deal(org_id=org_id, crm=HISTORY_SOURCE, external_id=f"H{p.deal_id:04d}",
                             name=f"Synthetic deal {p.deal_id}", owner_id=people[p.owner_id].id,
                             amount=p.amount, close_date=p.close_date, is_closed=True,
                             is_won=p.won, stage="Closed Won" if p.won else "Closed Lost"))
    return deals


@dataclass(frozen=True)
class SyntheticCoaching:
    scores: dict[str, dict[int, list[tuple]]]  # skill → rep → (time, score), sorted
    focus: dict[tuple[int, date], set[str]]  # (rep, Monday) → the agenda's focus skills
    effect: float  # the truth: latent gain (SD) per focused week, reached in 4 weeks


def synthetic_coaching(*, reps: int = 40, weeks: int = 40, effect: float = 0.5,
                       agenda_share: float = 0.7, seed: int = 0,
                       start: date = date(2026, 1, 5)) -> SyntheticCoaching:
    """Weekly agendas over `weeks`: in a share of rep-weeks an agenda focuses on the rep's
    two weakest skills (by their latent level, so no noise picks them), and each focused
    week adds `effect` / 4 standard deviations to that skill from the next week on. Two
    calls a week per rep, every skill scored with noise."""
    from datetime import datetime, time, timezone

    rng = random.Random(seed)
    level = {(rep, s): rng.gauss(0, 1) for rep in range(1, reps + 1) for s in SKILLS}
    gain = {key: 0.0 for key in level}
    scores: dict[str, dict[int, list[tuple]]] = {s: {r: [] for r in range(1, reps + 1)}
                                                 for s in SKILLS}
    focus: dict[tuple[int, date], set[str]] = {}
    for week in range(weeks):
        monday = start + timedelta(weeks=week)
        coached = []
        for rep in range(1, reps + 1):
            if rng.random() < agenda_share:
                weakest = sorted(SKILLS, key=lambda s: level[(rep, s)] + gain[(rep, s)])[:2]
                focus[(rep, monday)] = set(weakest)
                coached += [(rep, s) for s in weakest]
            for day in (1, 3):
                at = datetime.combine(monday + timedelta(days=day), time(15),
                                      tzinfo=timezone.utc).replace(tzinfo=None)
                for s in SKILLS:
                    z = level[(rep, s)] + gain[(rep, s)]
                    scores[s][rep].append((at, min(100.0, max(0.0, 50 + 15 * z
                                                                + rng.gauss(0, 8)))))
        for key in coached:  # what the week's coaching did shows from next week on
            gain[key] += effect / 4
    return SyntheticCoaching(scores, focus, effect)
