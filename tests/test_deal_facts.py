"""Deal facts: status, distilled value and evidence per methodology field, per call and per
deal (core.deal_facts), on transcripts written for these tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.deal_facts import CallFact, extract_facts, merge_deal
from core.domain import FieldResult, Role, TranscriptSegment, TranscriptView
from core.rubrics import builtin_rubric

REP = ("Jo Park", "jo@ourco.example")


def view(*turns: tuple[str, str]) -> TranscriptView:
    """Turns as (speaker, text); "rep" is ours, any other name a buyer at acme.example."""
    segments, start = [], 0.0
    for number, (speaker, text) in enumerate(turns, start=1):
        end = start + max(1.0, len(text.split()) / 2.5)
        if speaker == "rep":
            role, name, email = Role.REP, REP[0], REP[1]
        else:
            role, name = Role.BUYER, speaker
            email = f"{speaker.split()[0].lower()}@acme.example"
        segments.append(TranscriptSegment(number, start, end, text, role, email, 1.0, name))
        start = end + 0.3
    return TranscriptView(1, tuple(segments), "platform")


def facts(transcript: TranscriptView, rubric: str = "meddic") -> dict[str, FieldResult]:
    return {f.key: f for f in extract_facts(transcript, builtin_rubric(rubric))}


def test_a_buyer_naming_the_approver_is_found_though_the_rep_only_says_hello():
    found = facts(view(("rep", "Hi both."),
                       ("Lena Fox", "Before we start, Dana Ruiz, our COO, signs anything over "
                                    "fifty thousand, so she needs to see this."),
                       ("Sam Ortiz", "And we're comparing you with Gong and Chorus.")))
    buyer = found["economic_buyer"]
    assert buyer.status == "found" and buyer.value.startswith("Dana Ruiz")
    assert buyer.evidence[0].quote.startswith("Before we start, Dana Ruiz")
    assert found["competition"].status == "found"
    assert {"Gong", "Chorus"} <= set(found["competition"].value.split("; "))
    # An approval limit is not a metric.
    assert found["metrics"].status == "absent"


def test_a_hedge_is_ambiguous_and_never_writable():
    found = facts(view(("rep", "Who signs off on this?"),
                       ("Lena Fox", "I think finance has a say somewhere, probably the CFO."),
                       ("rep", "And budget?"),
                       ("Lena Fox", "Budget is sort of there, maybe forty grand.")), "bant")
    assert found["authority"].status == "ambiguous" and not found["authority"].writable
    assert found["budget"].status == "ambiguous"


def test_a_clear_negative_is_found_with_a_negative_value():
    found = facts(view(("rep", "Are you talking to anyone else?"),
                       ("Lena Fox", "No, you're the only vendor we're looking at."),
                       ("Lena Fox", "And to be clear there's no budget this year.")))
    competition = found["competition"]
    assert competition.status == "found" and competition.negative
    assert competition.value == "none named (sole evaluation)"
    assert facts(view(("Lena Fox", "Honestly there's no budget this year for new tools."),
                      ("rep", "Understood.")), "bant")["budget"].negative


def test_a_statement_opening_with_a_wh_word_is_not_a_question():
    found = facts(view(("rep", "Thanks for the time."),
                       ("Lena Fox", "What we keep running into is invoices keyed in twice by "
                                    "hand, which takes our two clerks most of Monday.")))
    pain = found["identified_pain"]
    assert pain.status == "found" and "invoices keyed in twice" in pain.value.lower()
    assert not pain.value.lower().startswith("what we")


def test_a_quote_only_supports_the_field_it_is_about():
    found = facts(view(("rep", "How will you choose?"),
                       ("Lena Fox", "Time to launch, total cost over three years and SSO are "
                                    "what we'll compare on."),
                       ("Lena Fox", "I'd need to check with Maria, she approves anything over "
                                    "fifty thousand.")))
    assert found["decision_criteria"].status == "found"
    assert "SSO" in found["decision_criteria"].value
    assert found["metrics"].status == "absent"  # an approval limit, not a metric
    assert facts(view(("rep", "How will you choose?"),
                      ("Lena Fox", "Time to launch, total cost over three years and SSO are "
                                   "what we'll compare on.")), "bant")["timeline"].status \
        == "absent"


def test_people_are_named_not_the_speakers_self_introduction():
    found = facts(view(("Lena Fox", "Hi, I'm Lena, VP of Operations here."),
                       ("rep", "Great to meet you."),
                       ("Lena Fox", "Priya has been selling this to her VP for us for "
                                    "months.")))
    assert found["economic_buyer"].status == "absent"
    assert found["champion"].status == "found" and found["champion"].value.startswith("Priya")


def test_a_speaker_who_says_they_decide_is_the_economic_buyer():
    found = facts(view(("rep", "Who makes the final call on this?"),
                       ("Lena Fox", "That's me, it's my call.")))
    assert found["economic_buyer"].value.startswith("Lena Fox")


def test_distilled_values_carry_numbers_as_digits():
    found = facts(view(("rep", "How long does the paperwork take?"),
                       ("Lena Fox", "Each supervisor spends forty-five minutes a day on it.")))
    assert found["metrics"].status == "found" and "45 minutes" in found["metrics"].value


def _fact(key: str, status: str, value: str | None, quote: str = "q") -> FieldResult:
    from core.domain import Evidence

    return FieldResult(key, key, value, 0.8 if status == "found" else 0.3,
                       (Evidence(quote, 1.0, 2.0, 1),), status)


DAY = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("later_status", ["absent", "ambiguous"])
def test_a_deal_keeps_an_earlier_found_value(later_status):
    merged, meeting = merge_deal([
        CallFact(1, DAY, "first", _fact("economic_buyer", "found", "Rick, COO")),
        CallFact(2, DAY + timedelta(days=7), "second",
                 _fact("economic_buyer", later_status, None))], single_valued=True)
    assert merged.status == "found" and merged.value == "Rick, COO" and meeting == 1


def test_a_conflict_between_calls_is_ambiguous_with_both_quotes():
    merged, _ = merge_deal([
        CallFact(1, DAY, "first", _fact("economic_buyer", "found", "Rick, COO", "Rick signs")),
        CallFact(2, DAY + timedelta(days=7), "second",
                 _fact("economic_buyer", "found", "Maria Lopez, CFO", "Maria signs"))],
        single_valued=True)
    assert merged.status == "ambiguous" and not merged.writable
    assert [e.quote for e in merged.evidence] == ["Rick signs", "Maria signs"]


def test_the_newest_specific_value_wins_when_it_refines_the_older_one():
    merged, meeting = merge_deal([
        CallFact(1, DAY, "first", _fact("economic_buyer", "found", "Rick")),
        CallFact(2, DAY + timedelta(days=7), "second",
                 _fact("economic_buyer", "found", "Rick Alvarez, COO"))], single_valued=True)
    assert merged.value == "Rick Alvarez, COO" and meeting == 2
    lists, _ = merge_deal([
        CallFact(1, DAY, "first", _fact("competition", "found", "Gong")),
        CallFact(2, DAY + timedelta(days=3), "second", _fact("competition", "found", "Chorus"))],
        single_valued=False)
    assert lists.status == "found"


def test_an_answer_about_the_approval_steps_is_not_the_pain_a_probe_asked_for():
    """A broad probe ("What happens after you approve?") answered with the legal and purchasing
    steps is decision process; it is not also written as the buyer's pain."""
    found = facts(view(("rep", "What happens after you approve?"),
                       ("Lena Fox", "Our lawyers look over the contract, usually two weeks, and "
                                    "then procurement issues the purchase order."),
                       ("rep", "Does that match what you see?"),
                       ("Lena Fox", "If anything it's low, and the pricing mistake last quarter "
                                    "was about $120,000.")))
    assert found["identified_pain"].status == "absent"
    assert found["decision_process"].status == "found"
    assert "procurement" in found["decision_process"].value
    # A costly pricing mistake is a metric, not a quote of our price.
    assert found["metrics"].status == "found" and "120,000" in found["metrics"].value
