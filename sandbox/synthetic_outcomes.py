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
