"""Call stage and conversation metrics, computed from the attributed transcript alone."""

from __future__ import annotations

from core.conversation import (classify_stage, conversation_metrics, talk_listen_score)
from core.domain import Role, TranscriptSegment, TranscriptView


def view(*turns):
    """turns: (role, start, end, text[, speaker])."""
    segments = []
    for number, turn in enumerate(turns, start=1):
        role, start, end, text, *speaker = turn
        segments.append(TranscriptSegment(number, start, end, text, Role(role),
                                          speaker[0] if speaker else role, 0.9))
    return TranscriptView(1, tuple(segments), "platform")


def test_metrics_from_turns():
    call = view(("rep", 0, 10, "Hi there. How are things?"),
                ("rep", 10.5, 30, "Let me tell you about us. It is great."),  # same monologue
                ("buyer", 31, 61, "We lose deals every week to slow quotes. " * 4, "ana@b.example"),
                ("rep", 62, 70, "How many a month? And who owns that?"),
                ("buyer", 71, 90, "About twelve. The CRO does. " * 5, "ana@b.example"),
                ("buyer", 90, 95, "Me too.", "bo@b.example"))
    m = conversation_metrics(call)
    assert m.rep_talk_s == 37.5 and m.buyer_talk_s == 54
    assert m.talk_ratio == round(37.5 / 91.5, 3)
    assert m.longest_monologue_s == 30  # 0–30: a 0.5 s pause does not end it
    assert m.questions_per_min == round(3 / (95 / 60), 2)
    assert m.switches_per_min == round(3 / (95 / 60), 2)
    assert m.buyer_speakers == 1  # "Me too." is not engagement
    assert m.talk_listen_score == talk_listen_score(m.talk_ratio, 30, m.switches_per_min)


def test_unattributed_calls_get_no_ratio():
    m = conversation_metrics(view(("unknown", 0, 60, "a long mixed recording"),
                                  ("rep", 60, 62, "Thanks.")))
    assert m.talk_ratio is None and m.talk_listen_score is None and m.unknown_share > 0.9


def test_talk_listen_score_prefers_listening_reps():
    assert talk_listen_score(0.45, 30, 6) == 100
    assert talk_listen_score(0.85, 30, 6) == 0
    assert talk_listen_score(0.45, 240, 1) == 75  # long monologue and few exchanges cost 25
    assert talk_listen_score(0.55, 30, 6) > talk_listen_score(0.75, 30, 6)


def test_stage_from_title_and_cues():
    talk = view(("rep", 0, 5, "Let me share my screen and walk you through the dashboard. "
                             "You can see here the open orders."),
                ("buyer", 5, 9, "Sure."))
    assert classify_stage("Product demo - Acme", talk).stage == "demo"
    assert classify_stage("Weekly sync", talk).stage == "demo"  # the cues alone
    pricing = view(("rep", 0, 5, "The quote is per seat, and with a two year contract we "
                                 "can discount the price."), ("buyer", 5, 9, "Send the proposal."))
    guess = classify_stage("Catch-up", pricing)
    assert guess.stage == "pricing" and "pricing cue" in guess.reason
    assert classify_stage("Renewal - Acme", talk).stage == "renewal"  # title outweighs
    assert classify_stage("Hello", view(("rep", 0, 2, "Hi!"))).stage == "other"
