"""What the shape of a conversation says, before any rubric: the call's stage, and metrics
such as talk ratio, question rate, longest monologue, interactivity and buyer voices.

Both are computed from the attributed transcript alone (no model), so they are cheap,
repeatable and explainable: every number can be recomputed by hand from the segments.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from core.domain import Role, TranscriptView

STAGE_WORDS: dict[str, tuple[str, ...]] = {
    "discovery": (r"tell me (a bit |more )?about", r"how do you (currently|today)",
                  r"walk me through (how|your)", r"what('s| is) (driving|prompting)",
                  r"(biggest|main) (challenge|problem|issue)s?", r"how (are|is) (that|it) "
                  r"(handled|done) today", r"(pain|challenge)s?"),
    "demo": (r"share my screen", r"let me show you", r"(you can|you'll) see (here|on)",
             r"(click|clicking) (on|into)", r"walk you through (the|our|how)",
             r"(this|the) (dashboard|screen|view|report) (shows|here)", r"demo"),
    "pricing": (r"pric(e|es|ing)", r"discount", r"quote", r"proposal", r"per (seat|user|month)",
                r"(contract|order form|MSA|redlines?|terms)", r"purchase order|\bPO\b",
                r"(annual|multi-year) (commitment|deal|contract)", r"negotiat\w+"),
    "renewal": (r"renew(al|ing|s)?", r"another (year|term)", r"(contract|subscription) "
                r"(ends|expires|is up)", r"adoption", r"(usage|seats) (is|are|went|grew|"
                r"dropped)", r"expan(d|sion)", r"QBR|business review"),
}
TITLE_WORDS: dict[str, str] = {
    "discovery": r"discovery|intro|introduct|qualif|first call|exploratory",
    "demo": r"demo|walkthrough|walk-through|presentation|product tour",
    "pricing": r"pricing|proposal|negotiat|contract|commercial|order form|close plan",
    "renewal": r"renewal|qbr|business review|check-in|expansion|account review",
}


@dataclass(frozen=True)
class StageGuess:
    stage: str  # discovery | demo | pricing | renewal | other
    confidence: float
    reason: str


def classify_stage(title: str, view: TranscriptView) -> StageGuess:
    """The call's stage from its title and what is said, with the reason."""
    votes: dict[str, float] = {stage: 0.0 for stage in STAGE_WORDS}
    reasons: dict[str, list[str]] = {stage: [] for stage in STAGE_WORDS}
    for stage, pattern in TITLE_WORDS.items():
        if re.search(pattern, title, re.IGNORECASE):
            votes[stage] += 4.0
            reasons[stage].append(f"title {title!r}")
    text = " ".join(s.text for s in view.segments)
    for stage, patterns in STAGE_WORDS.items():
        hits = sum(len(re.findall(rf"(?<!\w)(?:{p})(?!\w)", text, re.IGNORECASE))
                   for p in patterns)
        if hits:
            votes[stage] += min(hits, 12) * 0.5
            reasons[stage].append(f"{hits} {stage} cue(s) in the transcript")
    best = max(votes, key=lambda s: (votes[s], s == "discovery"))
    total = sum(votes.values())
    if votes[best] < 1.5:
        return StageGuess("other", 0.5, "no clear stage cues")
    return StageGuess(best, round(votes[best] / total, 2), "; ".join(reasons[best]))


@dataclass(frozen=True)
class ConversationMetrics:
    """Talk-time and turn-taking facts about one call (None where speakers are unknown)."""

    duration_s: float
    rep_talk_s: float
    buyer_talk_s: float
    talk_ratio: float | None  # rep share of rep + buyer talk time
    questions_per_min: float | None  # rep questions
    longest_monologue_s: float | None  # the rep's longest uninterrupted stretch
    switches_per_min: float | None  # speaker changes: interactivity
    buyer_speakers: int  # distinct buyer-side people who said at least a few sentences
    unknown_share: float  # talk time we could not attribute
    talk_listen_score: float | None  # 0–100, see `talk_listen_score`

    def as_dict(self) -> dict:
        return asdict(self)


MONOLOGUE_GAP_S = 1.5  # a rep pause shorter than this does not end a monologue
ENGAGED_BUYER_WORDS = 20  # a buyer-side person who said at least this much took part


def conversation_metrics(view: TranscriptView) -> ConversationMetrics:
    segments = sorted(view.segments, key=lambda s: (s.start, s.id))
    if not segments:
        return ConversationMetrics(0.0, 0.0, 0.0, None, None, None, None, 0, 0.0, None)
    duration = max(s.end for s in segments) - min(s.start for s in segments)
    talk = {role: sum(max(0.0, s.end - s.start) for s in segments if s.role is role)
            for role in Role}
    attributed = talk[Role.REP] + talk[Role.BUYER]
    unknown_share = talk[Role.UNKNOWN] / (attributed + talk[Role.UNKNOWN] or 1)
    buyer_words: dict[str, int] = {}
    for s in segments:
        if s.role is Role.BUYER:
            key = s.speaker or "buyer"
            buyer_words[key] = buyer_words.get(key, 0) + len(s.text.split())
    buyer_speakers = sum(1 for n in buyer_words.values() if n >= ENGAGED_BUYER_WORDS)
    if attributed <= 0 or talk[Role.REP] <= 0 or unknown_share > 0.5:
        return ConversationMetrics(round(duration, 1), round(talk[Role.REP], 1),
                                   round(talk[Role.BUYER], 1), None, None, None, None,
                                   buyer_speakers, round(unknown_share, 2), None)
    minutes = max(duration / 60.0, 0.5)
    questions = sum(s.text.count("?") for s in segments if s.role is Role.REP)
    longest, run_start, run_end = 0.0, None, None
    switches, last_role = 0, None
    for s in segments:
        if s.role is Role.UNKNOWN:
            continue
        if last_role is not None and s.role is not last_role:
            switches += 1
        last_role = s.role
        if s.role is Role.REP:
            if run_start is None or s.start - run_end > MONOLOGUE_GAP_S:
                run_start = s.start
            run_end = max(run_end or s.end, s.end)
            longest = max(longest, run_end - run_start)
        else:
            run_start = run_end = None
    ratio = talk[Role.REP] / attributed
    return ConversationMetrics(
        round(duration, 1), round(talk[Role.REP], 1), round(talk[Role.BUYER], 1),
        round(ratio, 3), round(questions / minutes, 2), round(longest, 1),
        round(switches / minutes, 2), buyer_speakers, round(unknown_share, 2),
        talk_listen_score(ratio, longest, switches / minutes))


def talk_listen_score(ratio: float, longest_monologue_s: float, switches_per_min: float
                      ) -> float:
    """0–100: 100 near a 45 % rep share of the talk (studies of won deals cluster at 40–50 %),
    falling 2.5 points per point of share away from it; monologues past 60 s and fewer than
    2 speaker changes a minute cost up to 30 points between them."""
    share = max(0.0, 100.0 - abs(ratio - 0.45) * 250.0)
    monologue = min(1.0, max(0.0, (longest_monologue_s - 60.0) / 180.0))
    sparse = min(1.0, max(0.0, (2.0 - switches_per_min) / 2.0))
    return round(max(0.0, share - 20.0 * monologue - 10.0 * sparse), 1)
