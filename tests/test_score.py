"""The built-in scorer on hand-written calls: ranking, evidence, abstention, fields, determinism."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from core.domain import CallScoreResult, Role, TranscriptSegment, TranscriptView
from core.rubrics import builtin_rubric, parse_rubric
from core.score import BuiltinScorer, Scorer, result_from_json, result_to_json

REP, BUYER, UNKNOWN = Role.REP, Role.BUYER, Role.UNKNOWN

# ------------------------------------------------------------------- calls ----
# Each line is (role, text) or (role, text, attribution_confidence).

# Discovery for accounts-payable automation: pain, numbers, signer, criteria, process,
# competition and a champion, with follow-ups and play-backs.
AP_DISCOVERY = [
    (REP, "Thanks for making the time, Priya. Before I show you anything, I'd love to "
          "understand what prompted you to take this call."),
    (BUYER, "Sure. Honestly, our invoice process is a mess. We're still keying everything into "
            "NetSuite by hand and things fall through the cracks every month-end."),
    (REP, "That sounds painful. What's the biggest challenge that creates for the team?"),
    (BUYER, "The biggest problem is late payments. We missed early-payment discounts on about "
            "300 invoices last quarter, and two suppliers put us on credit hold."),
    (REP, "How much is that costing you, roughly?"),
    (BUYER, "Our controller worked it out at around $180,000 a year in lost discounts and late "
            "fees, plus maybe 60 hours a week of manual entry across four people."),
    (REP, "So if I heard you right, that's roughly $180,000 a year in discounts and late fees, "
          "plus about 60 hours a week of keying. Is that fair?"),
    (BUYER, "Yes, that's about right."),
    (REP, "And how would you measure success six months after going live?"),
    (BUYER, "If we could cut processing time by half and capture at least 90 percent of "
            "discounts, I'd call it a win."),
    (REP, "Who ultimately signs off on a purchase like this?"),
    (BUYER, "Our CFO, Dana Whitfield, has the final say on anything over $50,000. It comes out "
            "of her budget."),
    (REP, "Just to confirm, so Dana signs off and it's her budget?"),
    (BUYER, "Correct."),
    (REP, "What criteria will you use to compare vendors?"),
    (BUYER, "It has to integrate with NetSuite, and SOC 2 is a must-have for our security team. "
            "After that it's mostly ease of use for the AP clerks."),
    (REP, "Walk me through the approval process once you've picked a vendor."),
    (BUYER, "We'd run a 30-day pilot, then it goes through security review and legal, which "
            "usually takes about three weeks. Dana presents it to the exec team at the end of "
            "the quarter."),
    (REP, "Who else are you looking at besides us?"),
    (BUYER, "We're also looking at Tipalti, and some folks want to build something in-house "
            "with our ERP team."),
    (REP, "Who on your side would push for this internally if it makes sense?"),
    (BUYER, "That would be me. I'm happy to present it to Dana, and I'll need a one-pager with "
            "the ROI numbers to make the case."),
    (REP, "Great, I'll put that one-pager together. What would you need from me to help you "
          "make the case to Dana?"),
    (BUYER, "Honestly, a customer reference in manufacturing would help a lot."),
    (REP, "Done. Let's book thirty minutes next Tuesday to walk through the draft."),
]

# The same product, pitched: the rep talks features and never asks about the buyer's world.
AP_PITCH = [
    (REP, "Hi Mark, thanks for jumping on. Let me tell you a bit about us. We're the leading "
          "platform for invoice automation, trusted by over 2,000 companies."),
    (BUYER, "Okay."),
    (REP, "Our AI reads every invoice in seconds and we integrate with pretty much every ERP "
          "out there. Customers love the dashboard."),
    (BUYER, "Sounds interesting."),
    (REP, "We also just launched approvals on mobile, so your team can approve from anywhere. "
          "Our pricing is really competitive too."),
    (BUYER, "Right. Can you send me some information?"),
    (REP, "Absolutely, I'll send over our deck and a case study. Would Thursday work for a "
          "demo?"),
    (BUYER, "Maybe, I'll check my calendar."),
]

# Fleet telematics qualified with BANT.
FLEET_QUALIFICATION = [
    (REP, "Thanks for joining, Luis. What made you start looking at telematics now?"),
    (BUYER, "We run 140 delivery vans and fuel costs are killing us. We have no visibility into "
            "idling or routes, so we need a better handle on it."),
    (REP, "What happens if nothing changes this year?"),
    (BUYER, "We'll blow the fuel budget again. We went over by about 12 percent last year."),
    (REP, "Have you set aside budget for a solution like this?"),
    (BUYER, "Yes, we've earmarked around $60k for this fiscal year, out of the operations "
            "budget."),
    (REP, "Is that budget for hardware and software together, or just the subscription?"),
    (BUYER, "Both. Ideally under $45 per vehicle per month all in."),
    (REP, "Besides you, who else is involved in making the decision?"),
    (BUYER, "I make the recommendation, but our COO, Karen, signs off on anything over "
            "$25,000."),
    (REP, "So Karen signs off, and you'd bring her the recommendation?"),
    (BUYER, "Exactly."),
    (REP, "When do you need this up and running?"),
    (BUYER, "Our fuel card contract renews on March 1st, so we'd want the vans fitted before "
            "then."),
    (REP, "So working backwards from March 1st, we'd need a signed order by mid-January to get "
          "installs done?"),
    (BUYER, "That sounds right."),
]

# Fleet telematics as a screen-share: the buyer volunteers one date, nobody asks anything.
FLEET_DEMO_DUMP = [
    (REP, "Hey Sarah, great to meet you. So I'll jump right in and share my screen."),
    (REP, "This is our routing dashboard. It shows every vehicle in real time, and the alerts "
          "are fully customizable."),
    (BUYER, "Okay. We do have a contract that renews in March, just so you know."),
    (REP, "Perfect. We also have a driver app, with scorecards and fuel reports built right in. "
          "Customers tell us it's the best on the market."),
    (BUYER, "Sure."),
    (REP, "Let me send you our pricing sheet after the call, and you can pass it around."),
    (BUYER, "Fine, thanks."),
]

# Security-awareness training: different words for the same discovery moves.
SECURITY_DISCOVERY = [
    (REP, "Appreciate you carving out the time, Tom. What's going on in your world that made "
          "security training a priority this year?"),
    (BUYER, "We had two phishing incidents in the spring, and one of them ended with a wire "
            "transfer to a fake vendor. The board is asking questions."),
    (REP, "Ouch. How did that land internally?"),
    (BUYER, "Not well. Our click rate on the last simulated test was 27 percent, and the "
            "auditors flagged it."),
    (REP, "If you brought that click rate down, what number would make the board comfortable?"),
    (BUYER, "Our CISO wants us under 5 percent by the next audit."),
    (REP, "And when is the next audit?"),
    (BUYER, "Early September, so realistically we need people trained by the end of July."),
    (REP, "Got it. Is there money allocated for this, or would it have to be found?"),
    (BUYER, "There's about $40,000 in the security budget for awareness tools this year."),
    (REP, "Who would need to approve the spend?"),
    (BUYER, "Anything under fifty thousand, our CISO Rachel can sign herself. Above that it "
            "goes to the CFO."),
    (REP, "So Rachel can approve this on her own as long as we stay under fifty thousand. Did "
          "I get that right?"),
    (BUYER, "Yes, that's right."),
    (REP, "What else are you evaluating?"),
    (BUYER, "We've had demos from KnowBe4 and Proofpoint, and we're comparing on price and how "
            "easy the admin side is."),
    (REP, "What matters most when you compare them?"),
    (BUYER, "Honestly, the reporting. I need to hand the auditors something clean, and it has "
            "to work with our Okta SSO."),
    (REP, "Understood. What would the process look like from here to a signed agreement?"),
    (BUYER, "I'd run a two-week trial with the IT team, then legal reviews the contract, which "
            "takes a week or two."),
    (REP, "Great. I'll send a trial link today and let's put thirty minutes on the calendar for "
          "Thursday to review results."),
]


def build_view(lines, *, meeting_id: int = 7, first_id: int = 500) -> TranscriptView:
    """A transcript from (role, text[, attribution]) lines, timed roughly by word count."""
    segments, clock = [], 3.0
    for index, line in enumerate(lines):
        role, text = line[0], line[1]
        attribution = line[2] if len(line) > 2 else (0.0 if role is UNKNOWN else 0.93)
        duration = round(0.38 * len(text.split()) + 0.8, 2)
        segments.append(TranscriptSegment(
            id=first_id + index, start=round(clock, 2), end=round(clock + duration, 2),
            text=text, role=role, speaker=None if role is UNKNOWN else f"{role.value}@example.com",
            attribution_confidence=attribution))
        clock += duration + 0.6
    return TranscriptView(meeting_id=meeting_id, segments=tuple(segments), source="platform")


def score(lines, rubric_key: str) -> tuple[TranscriptView, CallScoreResult]:
    view = build_view(lines)
    return view, BuiltinScorer().score(view, builtin_rubric(rubric_key))


def score_named(lines, buyer: str, rep: str, rubric_key: str = "meddic") -> CallScoreResult:
    """Score `lines` with display names on the speakers, as the pipeline passes them."""
    view = build_view(lines)
    named = dataclasses.replace(view, segments=tuple(
        dataclasses.replace(s, speaker_name=buyer if s.role is BUYER else rep)
        for s in view.segments))
    return BuiltinScorer().score(named, builtin_rubric(rubric_key))


def criterion(result: CallScoreResult, key: str):
    return next(c for c in result.criteria if c.key == key)


def field(result: CallScoreResult, key: str):
    return next(f for f in result.fields if f.key == key)


def all_evidence(result: CallScoreResult):
    for item in result.criteria + result.fields:
        yield from item.evidence


# ----------------------------------------------------------------- ranking ----


def test_builtin_scorer_satisfies_the_scorer_contract():
    scorer = BuiltinScorer()
    assert isinstance(scorer, Scorer)
    assert scorer.name == "builtin" and scorer.version


@pytest.mark.parametrize("rubric_key", ["meddic", "bant"])
@pytest.mark.parametrize("strong, weak", [
    (AP_DISCOVERY, AP_PITCH),
    (SECURITY_DISCOVERY, AP_PITCH),
    (FLEET_QUALIFICATION, FLEET_DEMO_DUMP),
])
def test_discovery_call_scores_clearly_higher_than_a_pitch(rubric_key, strong, weak):
    _, good = score(strong, rubric_key)
    _, bad = score(weak, rubric_key)
    assert good.overall is not None and bad.overall is not None
    assert good.overall >= bad.overall + 30, (good.overall, bad.overall)
    assert bad.overall <= 15


def test_meddic_levels_on_a_thorough_discovery_call():
    _, result = score(AP_DISCOVERY, "meddic")
    # Asked, followed up, quantified and played back.
    assert criterion(result, "metrics").score == 4
    assert criterion(result, "economic_buyer").score == 4
    for key in ("decision_criteria", "decision_process", "identify_pain", "champion",
                "competition"):
        assert criterion(result, key).score >= 3, key
    assert result.overall > 75
    assert result.abstain_reason is None


def test_bant_levels_on_a_qualification_call():
    _, result = score(FLEET_QUALIFICATION, "bant")
    assert criterion(result, "authority").score == 4  # "So Karen signs off ...?"
    assert criterion(result, "timeline").score == 4  # "working backwards from March 1st"
    assert criterion(result, "budget").score == 3
    assert criterion(result, "need").score == 3


def test_pitch_leaves_criteria_at_zero_with_a_rationale_saying_what_was_missing():
    _, result = score(AP_PITCH, "meddic")
    metrics = criterion(result, "metrics")
    assert metrics.score == 0
    assert metrics.evidence == ()
    assert "no rep question about Metrics" in metrics.rationale
    assert 0.4 <= metrics.confidence <= 0.7  # "nothing found" is a finding, not a certainty


def test_volunteered_information_only_counts_as_touched_on():
    _, result = score(FLEET_DEMO_DUMP, "bant")
    timeline = criterion(result, "timeline")
    assert timeline.score == 1
    assert "unprompted" in timeline.rationale
    assert [e.quote for e in timeline.evidence] == [
        "We do have a contract that renews in March, just so you know."]


def test_a_question_without_an_answer_is_touched_on():
    lines = [
        (REP, "Thanks for the time today, I know things are busy on your side with the launch."),
        (REP, "Who else would need to sign off on something like this?"),
        (BUYER, "Good question. Let me think about that and get back to you."),
        (REP, "No problem at all, I'll follow up by email with a short recap."),
    ]
    _, result = score(lines, "bant")
    authority = criterion(result, "authority")
    assert authority.score == 1
    assert "did not answer" in authority.rationale


def test_scores_use_the_rubric_scale():
    text = builtin_rubric("bant").model_dump_json()
    data = json.loads(text)
    data["scale"] = {"min": 1, "max": 5}
    rubric = parse_rubric(json.dumps(data), source="bant-1-to-5")
    result = BuiltinScorer().score(build_view(FLEET_QUALIFICATION), rubric)
    levels = {"budget": 3, "authority": 4, "need": 3, "timeline": 4}  # as on the 0-4 scale
    assert {c.key: c.score for c in result.criteria} == {k: 1 + v for k, v in levels.items()}
    assert all(c.max_score == 5 for c in result.criteria)
    assert result.overall == pytest.approx(100 * sum(levels.values()) / 16, abs=0.001)


def test_overall_is_the_weighted_mean_of_scored_criteria():
    _, result = score(AP_DISCOVERY, "meddic")
    expected = 100 * sum(c.weight * c.score / c.max_score for c in result.criteria) / sum(
        c.weight for c in result.criteria)
    assert result.overall == pytest.approx(expected, abs=0.001)
    assert criterion(result, "competition").weight == 0.5


# ---------------------------------------------------------------- evidence ----


@pytest.mark.parametrize("lines", [AP_DISCOVERY, FLEET_QUALIFICATION, SECURITY_DISCOVERY])
@pytest.mark.parametrize("rubric_key", ["meddic", "bant"])
def test_evidence_quotes_are_verbatim_with_their_segment_times(lines, rubric_key):
    view, result = score(lines, rubric_key)
    by_id = {s.id: s for s in view.segments}
    quotes = 0
    for item in result.criteria + result.fields:
        assert len(item.evidence) <= 3
        for evidence in item.evidence:
            segment = by_id[evidence.segment_id]
            assert evidence.quote and evidence.quote in segment.text
            assert (evidence.start, evidence.end) == (segment.start, segment.end)
            quotes += 1
    assert quotes >= 10


def test_evidence_shows_the_answer_and_the_question_that_drew_it():
    view, result = score(AP_DISCOVERY, "meddic")
    evidence = criterion(result, "economic_buyer").evidence
    assert evidence[0].quote == ("Our CFO, Dana Whitfield, has the final say on anything over "
                                 "$50,000.")
    assert evidence[0].segment_id == view.segments[11].id
    assert evidence[0].start == view.segments[11].start
    quotes = [e.quote for e in evidence]
    assert "Who ultimately signs off on a purchase like this?" in quotes
    assert "Just to confirm, so Dana signs off and it's her budget?" in quotes


def test_curly_apostrophes_in_platform_transcripts_still_match_and_quote_verbatim():
    lines = [(role, text.replace("'", "’")) for role, text in FLEET_QUALIFICATION]
    view, result = score(lines, "bant")
    assert criterion(result, "authority").score == 4
    for evidence in all_evidence(result):
        assert evidence.quote in next(s.text for s in view.segments if s.id == evidence.segment_id)


# ------------------------------------------------------- attribution rules ----


def test_unknown_speech_never_scores_or_becomes_evidence():
    # Small talk is attributed; the discovery questions and answers are of unknown origin.
    lines = [
        (REP, "Morning Dana, thanks for hopping on. How was the conference last week, did you "
              "get any time off after?"),
        (BUYER, "It was good, thanks. Busy, but good. The keynote on supply chains was great and "
                "I caught up with a lot of old colleagues I hadn't seen in years."),
        (REP, "That sounds fun. I was in Austin for a wedding myself, so the week flew by and I "
              "am still catching up on email."),
        (BUYER, "Ha, I know the feeling. My inbox is a disaster this morning, so thanks for "
                "being flexible on the time."),
        (REP, "Of course, happy to. I've blocked the full half hour, so we are not in a rush."),
    ] + [(UNKNOWN, text, 0.9) for _, text in AP_DISCOVERY[4:6] + AP_DISCOVERY[10:12]]
    view, result = score(lines, "meddic")
    unknown_ids = {s.id for s in view.segments if s.role is UNKNOWN}
    assert result.abstain_reason is None  # enough attributed speech to judge the rep
    assert all(c.score == 0 for c in result.criteria), [(c.key, c.score) for c in result.criteria]
    assert all(f.value is None for f in result.fields)
    assert not unknown_ids & {e.segment_id for e in all_evidence(result)}


def test_unknown_segments_in_a_good_call_are_ignored():
    view = build_view(AP_DISCOVERY)
    # The economic-buyer exchange lost its speaker labels.
    hidden = {10, 11, 12}
    # Confident about "unknown" (say, a dial-in nobody could match): the role alone must exclude it.
    segments = tuple(dataclasses.replace(s, role=UNKNOWN, attribution_confidence=0.9)
                     if i in hidden else s for i, s in enumerate(view.segments))
    blurred = dataclasses.replace(view, segments=segments)
    rubric = builtin_rubric("meddic")
    result = BuiltinScorer().score(blurred, rubric)
    hidden_ids = {view.segments[i].id for i in hidden}
    assert not hidden_ids & {e.segment_id for e in all_evidence(result)}
    full = BuiltinScorer().score(view, rubric)
    assert criterion(result, "economic_buyer").score < criterion(full, "economic_buyer").score
    assert "CFO" not in (field(result, "economic_buyer").value or "")


def test_low_confidence_attribution_is_treated_as_unknown():
    lines = list(FLEET_QUALIFICATION)
    lines[8] = (REP, lines[8][1], 0.2)  # "who else is involved in making the decision?"
    lines[10] = (REP, lines[10][1], 0.2)  # "So Karen signs off ...?"
    view, result = score(lines, "bant")
    ids = {view.segments[8].id, view.segments[10].id}
    assert not ids & {e.segment_id for e in all_evidence(result)}
    assert criterion(result, "authority").score <= 2


def test_all_unknown_transcript_abstains_on_every_criterion():
    lines = [(UNKNOWN, text, 0.9) for _, text in AP_DISCOVERY]
    _, result = score(lines, "meddic")
    assert result.overall is None
    assert result.abstain_reason == "no speech in this call is attributed to the rep"
    for c in result.criteria:
        assert c.score is None and c.evidence == () and c.confidence == 0
        assert c.rationale.startswith("Not scored: no speech")
    assert all(f.value is None and f.evidence == () for f in result.fields)


def test_too_little_rep_speech_abstains():
    lines = [(REP, "Hi, thanks for joining.")] + [
        (BUYER, text) for _, text in AP_DISCOVERY if _ is BUYER]
    _, result = score(lines, "bant")
    assert result.overall is None
    assert "too little speech is attributed to the rep (4 words" in result.abstain_reason
    assert all(c.score is None for c in result.criteria)


def test_poorly_attributed_call_abstains():
    lines = [(role if i < 6 else UNKNOWN, text) for i, (role, text) in enumerate(AP_DISCOVERY)]
    _, result = score(lines, "meddic")
    assert result.overall is None
    assert result.abstain_reason.startswith("only ")
    assert "attributed to the rep or the buyer" in result.abstain_reason


def test_a_buyer_question_is_not_an_answer():
    lines = [
        (REP, "Before we go further I want to understand where you are, so please stop me "
              "anytime."),
        (REP, "Do you have a budget set aside for this yet?"),
        (BUYER, "Is there budget for this? Honestly, I'm not sure."),
        (REP, "It depends on the number of seats, which is why I asked."),
    ]
    _, result = score(lines, "bant")
    assert criterion(result, "budget").score == 1
    assert field(result, "budget").value is None


# ------------------------------------------------------------------ fields ----


def test_meddic_fields_are_distilled_from_stated_facts():
    view, result = score(AP_DISCOVERY, "meddic")
    economic_buyer = field(result, "economic_buyer")
    assert economic_buyer.status == "found" and economic_buyer.value == "Dana Whitfield, CFO"
    assert economic_buyer.confidence >= 0.7
    assert economic_buyer.evidence[0].segment_id == view.segments[11].id
    assert economic_buyer.evidence[0].quote.startswith("Our CFO, Dana Whitfield")  # verbatim
    assert "pilot" in field(result, "decision_process").value
    assert "Tipalti" in field(result, "competition").value.split("; ")
    assert "300" in field(result, "metrics").value


def test_bant_fields_are_distilled_from_stated_facts():
    _, result = score(FLEET_QUALIFICATION, "bant")
    assert field(result, "budget").value.startswith("$60k")
    assert field(result, "authority").value.endswith("COO")
    assert "March 1st" in field(result, "timeline").value
    assert field(result, "need").status == "found"


def test_fields_are_none_when_the_call_never_states_them():
    _, result = score(AP_PITCH, "meddic")
    for f in result.fields:
        assert f.value is None and f.confidence == 0 and f.evidence == (), f.key
    _, result = score(FLEET_QUALIFICATION, "meddic")
    assert field(result, "champion").value is None
    assert field(result, "competition").value is None


def test_a_vague_mention_is_not_reported_as_a_value():
    lines = [
        (REP, "Thanks for walking me through the rollout plan, that was really helpful to see "
              "end to end."),
        (BUYER, "I guess the budget thing is what it is.", 0.85),
        (REP, "Understood, we can come back to that another time."),
    ]
    _, result = score(lines, "bant")
    assert field(result, "budget").value is None


# ------------------------------------------------------------- determinism ----


@pytest.mark.parametrize("rubric_key", ["meddic", "bant"])
def test_scoring_is_deterministic_and_round_trips(rubric_key):
    view = build_view(SECURITY_DISCOVERY)
    rubric = builtin_rubric(rubric_key)
    first = BuiltinScorer().score(view, rubric)
    second = BuiltinScorer().score(view, rubric)
    assert result_to_json(first) == result_to_json(second)
    assert (json.dumps(dataclasses.asdict(first), sort_keys=True)
            == json.dumps(dataclasses.asdict(second), sort_keys=True))
    assert result_from_json(result_to_json(first)) == first
    # Segment order in the input does not matter: the scorer orders by time itself.
    shuffled = list(view.segments)
    random.Random(3).shuffle(shuffled)
    third = BuiltinScorer().score(dataclasses.replace(view, segments=tuple(shuffled)), rubric)
    assert result_to_json(third) == result_to_json(first)


def test_result_records_rubric_and_scorer_versions():
    _, result = score(AP_DISCOVERY, "bant")
    assert result.rubric_key == "bant"
    assert result.rubric_version == builtin_rubric("bant").version
    assert (result.scorer, result.scorer_version) == (BuiltinScorer.name, BuiltinScorer.version)
    assert [c.key for c in result.criteria] == ["budget", "authority", "need", "timeline"]
    assert [c.skill for c in result.criteria] == [
        "budget_qualification", "multi_threading", "discovery_depth", "urgency_timeline"]


# ---------------------------------------------------- natural conversation ----
# Real calls (and speech recognition) answer in fewer words than the phrase lists expect: a
# compound question, a bare amount, a "yes", a date that a neighbouring question drew out.


def test_one_answer_to_a_compound_question_counts_for_both_criteria():
    lines = [
        (REP, "Thanks for the walkthrough of the warehouse setup, Omar, that was really useful."),
        (REP, "Is there money earmarked for this, and when would you want to go live?"),
        (BUYER, "We've got roughly 75,000 for tooling this year, and we'd like it running before "
                "the spring intake."),
        (REP, "Helpful, thank you. I'll pull together a proposal for the team."),
    ]
    _, result = score(lines, "bant")
    assert criterion(result, "budget").score == 3  # asked, and answered with an amount
    assert criterion(result, "timeline").score >= 2
    assert "roughly 75,000" in criterion(result, "budget").evidence[0].quote


def test_a_bare_amount_answers_the_budget_question_it_follows():
    lines = [
        (REP, "Appreciate you being so open about the migration, it helps me a lot."),
        (REP, "What sort of range did you have in mind for this?"),
        (BUYER, "Honestly, 20 to 25,000.", 0.9),
        (BUYER, "But I'd want to check with finance first."),
        (REP, "That's useful, thanks. Let me see what we can put together."),
    ]
    _, result = score(lines, "bant")
    budget = criterion(result, "budget")
    assert budget.score == 3
    assert budget.evidence[0].quote == "Honestly, 20 to 25,000."


def test_an_approval_limit_is_not_a_budget_answer():
    lines = [
        (REP, "Thanks for making the time today, I know quarter end is a busy stretch for you."),
        (REP, "Whose budget would this come out of?"),
        (BUYER, "Our COO, Femi Adeyemi. Anything over $100k also goes to the board."),
        (REP, "Got it, that's helpful context for how we shape the proposal."),
    ]
    _, result = score(lines, "bant")
    assert criterion(result, "budget").score == 1
    assert criterion(result, "authority").score >= 2


def test_a_plain_yes_answers_a_closed_question_but_not_a_meeting_invite():
    lines = [
        (REP, "Last time you mentioned the audit, and I wanted to pick that back up today."),
        (REP, "Is the end of March still the date you're working to?"),
        (BUYER, "It is."),
        (REP, "No problem if it moves, just let me know. Can we book thirty minutes on "
              "Thursday the 12th at ten?"),
        (BUYER, "Yes, that works."),
    ]
    _, result = score(lines, "bant")
    timeline = criterion(result, "timeline")
    assert timeline.score == 2
    assert [e.quote for e in timeline.evidence][:2] == [
        "It is.", "Is the end of March still the date you're working to?"]
    assert criterion(result, "need").score == 0  # "No problem" asks about nothing


def test_an_answer_drawn_by_a_neighbouring_question_counts_when_it_is_specific():
    lines = [
        (REP, "That's a clear picture of the reporting problem, thank you for walking me "
              "through it."),
        (REP, "What happens after your COO approves it?"),
        (BUYER, "Then legal has a look, and budgets lock on October 31st."),
        (REP, "So we'd want a signature before October 31st. I'll send a draft order form."),
    ]
    _, result = score(lines, "bant")
    timeline = criterion(result, "timeline")
    assert timeline.score == 3  # drawn by the authority question, then played back
    assert "when the rep asked about Authority" in timeline.rationale
    quotes = [e.quote for e in timeline.evidence]
    assert "Then legal has a look, and budgets lock on October 31st." in quotes
    assert "What happens after your COO approves it?" in quotes


def test_a_vague_answer_to_a_neighbouring_question_is_only_touched_on():
    lines = [
        (REP, "That's a clear picture of the reporting problem, thank you for walking me "
              "through it."),
        (REP, "What happens after your COO approves it?"),
        (BUYER, "Hard to say, probably sometime next year."),
        (REP, "Understood, I'll send over some material in the meantime."),
    ]
    _, result = score(lines, "bant")
    timeline = criterion(result, "timeline")
    assert timeline.score == 1
    assert "unprompted" in timeline.rationale


def test_a_number_put_to_the_buyer_to_check_is_asked():
    lines = [
        (REP, "Thanks for joining, Grace. Your ops lead gave me some background last week."),
        (REP, "She said the team loses about 30 hours a week to re-keying orders."),
        (REP, "Does that match what you see?"),
        (BUYER, "If anything it's more, closer to 40 hours."),
        (REP, "Okay, that's a lot of time. Let's look at how we'd cut that down."),
    ]
    _, result = score(lines, "meddic")
    metrics = criterion(result, "metrics")
    assert metrics.score == 3
    assert "asked about Metrics" in metrics.rationale


def test_a_play_back_of_volunteered_information_says_so():
    lines = [
        (REP, "Thanks for the time, let me share a couple of screens with you."),
        (BUYER, "Sure. Just so you know, this year's budget for tooling is already spent."),
        (REP, "Understood, so it sounds like the budget is spent for now. Here is the "
              "dashboard view I wanted to show you."),
    ]
    _, result = score(lines, "bant")
    budget = criterion(result, "budget")
    assert budget.score == 1
    assert budget.rationale == ("The buyer brought up Budget unprompted and the rep played it "
                                "back, but the rep never asked about it.")


def _one_segment_per_sentence(lines):
    """Lines cut the way speech recognition cuts them: one segment per sentence."""
    out = []
    for role, text in lines:
        parts = [p for p in text.replace("? ", "?\n").replace(". ", ".\n").split("\n") if p]
        out += [(role, part) for part in parts]
    return out


def test_a_recap_split_across_segments_still_confirms():
    lines = _one_segment_per_sentence(FLEET_QUALIFICATION)
    assert len(lines) > len(FLEET_QUALIFICATION)
    _, split = score(lines, "bant")
    _, whole = score(FLEET_QUALIFICATION, "bant")
    assert {c.key: c.score for c in split.criteria} == {c.key: c.score for c in whole.criteria}


def test_volunteered_pain_stays_touched_on_when_the_rep_moves_on():
    lines = [
        (REP, "Thanks for joining today, I know it's a busy week for the whole team."),
        (BUYER, "Sure. Waste is killing our margins this year, that's the headline."),
        (REP, "And who signs off on a purchase like this one at your company?"),
        (BUYER, "That would be our CFO, Marta Ruiz, she owns every software budget."),
        (REP, "Great, thanks, that helps me plan the proposal for next week."),
    ]
    _, result = score(lines, "meddic")
    assert criterion(result, "identify_pain").score == 1
    assert criterion(result, "economic_buyer").score >= 2


def test_an_indirect_why_question_draws_the_answer():
    lines = [
        (REP, "Seven points apart on the same menu. Do you know why that happens?"),
        (BUYER, "Partly waste, partly portioning, and partly people ordering by gut feel."),
        (REP, "Got it. Let's look at how ordering works today then."),
    ]
    _, result = score(lines, "meddic")
    assert criterion(result, "identify_pain").score >= 2


def test_a_dodge_that_names_the_criterion_does_not_answer_it():
    lines = [
        (REP, "Thanks for the overview of the team, that was really useful context for me."),
        (REP, "Do you have a budget set aside for a project like this one?"),
        (BUYER, "I'd rather not get into budget yet, it's early days for us."),
        (REP, "Understood, we can come back to that another time."),
    ]
    _, result = score(lines, "bant")
    assert criterion(result, "budget").score == 1


def test_a_buyer_who_names_themselves_as_champion_is_named_in_the_value():
    result = score_named(AP_DISCOVERY, buyer="Priya Raman", rep="Dana Ortiz")
    champion = field(result, "champion")
    assert champion.value == "Priya Raman"
    assert champion.evidence[0].quote.startswith("I'm happy to present it")  # the quote stays
    # The person the sentence is about, not the speaker.
    assert field(result, "economic_buyer").value == "Dana Whitfield, CFO"


def test_a_buyer_mentioned_as_an_object_is_not_named_as_the_person():
    lines = [
        (REP, "Thanks for walking me through the clinic workflow, that was really helpful."),
        (REP, "Who ultimately signs off on a purchase like this one?"),
        (BUYER, "Our CEO has asked me about it twice, and she signs anything over fifty thousand."),
        (REP, "Great, that helps me plan the proposal for next week."),
    ]
    result = score_named(lines, buyer="Rachel Adams", rep="Dana Ortiz")
    assert field(result, "economic_buyer").value == "the CEO"
