"""The behavioural sales skills that rubric criteria feed.

Every rubric criterion names one of these skills, so scores from different methodologies
(MEDDIC, BANT, SPIN, ...) roll up into the same per-rep skill snapshots. Keys are stable
identifiers stored with scores; labels and descriptions are for people.
"""

from __future__ import annotations

from typing import NamedTuple


class Skill(NamedTuple):
    """A skill's display label and a one-line description of the behaviour."""

    label: str
    description: str


SKILLS: dict[str, Skill] = {
    "pain_discovery": Skill(
        "Pain discovery",
        "Uncovers the buyer's problems, why they matter now and what causes them.",
    ),
    "business_impact": Skill(
        "Business impact",
        "Gets the buyer to quantify the cost of the problem and the value of solving it.",
    ),
    "requirements_discovery": Skill(
        "Requirements discovery",
        "Learns what the buyer needs and the criteria they will judge options by.",
    ),
    "stakeholder_mapping": Skill(
        "Stakeholder mapping",
        "Finds out who is involved, who holds the budget and who has the final say.",
    ),
    "decision_process": Skill(
        "Decision process",
        "Learns the steps, approvals and paperwork between today and a signed deal.",
    ),
    "budget_qualification": Skill(
        "Budget qualification",
        "Establishes whether money is available, how much, and where it comes from.",
    ),
    "urgency_timeline": Skill(
        "Urgency and timeline",
        "Establishes when the buyer needs a solution and what makes that date real.",
    ),
    "champion_building": Skill(
        "Champion building",
        "Finds and equips an internal advocate who will sell on the rep's behalf.",
    ),
    "competitive_positioning": Skill(
        "Competitive positioning",
        "Learns which alternatives the buyer weighs, including doing nothing or building.",
    ),
    "next_step_clarity": Skill(
        "Next-step clarity",
        "Ends the call with a concrete, dated next step both sides agreed to.",
    ),
}


def skill_keys() -> tuple[str, ...]:
    """All skill keys, sorted, for validation messages and stable iteration."""
    return tuple(sorted(SKILLS))
