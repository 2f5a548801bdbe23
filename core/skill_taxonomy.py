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
    "discovery_depth": Skill(
        "Discovery depth",
        "Uncovers the buyer's situation, problems and needs, and follows up past the first answer.",
    ),
    "business_impact": Skill(
        "Business impact",
        "Gets the buyer to quantify the cost of the problem and the value of solving it.",
    ),
    "multi_threading": Skill(
        "Multi-threading",
        "Reaches beyond one contact: who else is involved, who pays, who will champion it.",
    ),
    "decision_process": Skill(
        "Decision process",
        "Learns how the buyer decides: criteria, steps, approvals and paperwork to a signature.",
    ),
    "budget_qualification": Skill(
        "Budget and pricing",
        "Establishes money available and where it comes from, and talks price with confidence.",
    ),
    "urgency_timeline": Skill(
        "Urgency and timeline",
        "Establishes when the buyer needs a solution and what event makes that date real.",
    ),
    "competitive_positioning": Skill(
        "Competitive positioning",
        "Learns which alternatives the buyer weighs, including doing nothing or building.",
    ),
    "objection_handling": Skill(
        "Objection handling",
        "Hears a concern out, asks what is behind it, and answers the real worry.",
    ),
    "insight_teaching": Skill(
        "Insight and teaching",
        "Brings the buyer a new way to see their problem, tailored to their business.",
    ),
    "next_step_clarity": Skill(
        "Next-step clarity",
        "Ends the call with a concrete, dated next step both sides agreed to.",
    ),
    "talk_listen_balance": Skill(
        "Talk/listen balance",
        "Lets the buyer talk: a fair share of the airtime, short monologues, many exchanges.",
    ),
}

# Which skills matter at which call stage (1 = central, 0.5 = useful, absent = not expected).
# Coaching agendas weigh a weak skill by how much it matters in the rep's kind of calls.
STAGE_RELEVANCE: dict[str, dict[str, float]] = {
    "discovery": {"discovery_depth": 1, "business_impact": 1, "multi_threading": 1,
                  "decision_process": 0.5, "budget_qualification": 0.5,
                  "urgency_timeline": 1, "competitive_positioning": 0.5,
                  "objection_handling": 0.5, "insight_teaching": 0.5,
                  "next_step_clarity": 1, "talk_listen_balance": 1},
    "demo": {"discovery_depth": 0.5, "business_impact": 1, "multi_threading": 0.5,
             "decision_process": 0.5, "competitive_positioning": 1, "objection_handling": 1,
             "insight_teaching": 1, "next_step_clarity": 1, "talk_listen_balance": 1},
    "pricing": {"business_impact": 1, "multi_threading": 1, "decision_process": 1,
                "budget_qualification": 1, "urgency_timeline": 1,
                "competitive_positioning": 1, "objection_handling": 1,
                "next_step_clarity": 1, "talk_listen_balance": 0.5},
    "renewal": {"discovery_depth": 0.5, "business_impact": 1, "multi_threading": 1,
                "decision_process": 1, "budget_qualification": 1, "urgency_timeline": 0.5,
                "competitive_positioning": 0.5, "objection_handling": 1,
                "next_step_clarity": 1, "talk_listen_balance": 0.5},
    "other": {key: 0.5 for key in ("discovery_depth", "business_impact", "multi_threading",
                                   "decision_process", "next_step_clarity",
                                   "talk_listen_balance")},
}
STAGES = tuple(STAGE_RELEVANCE)


def skill_keys() -> tuple[str, ...]:
    """All skill keys, sorted, for validation messages and stable iteration."""
    return tuple(sorted(SKILLS))
