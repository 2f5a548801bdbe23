"""Rubric files: the built-in methodologies load, phrases fit real speech, errors point at lines."""

from __future__ import annotations

import re
import shutil

import pytest

from core.errors import InputError
from core.rubrics import (
    BUILTIN_DIR,
    Rubric,
    RubricError,
    builtin_rubric,
    compile_phrase,
    list_builtin_rubrics,
    load_rubric,
)
from core.skill_taxonomy import SKILLS

MEDDIC_CRITERIA = ["metrics", "economic_buyer", "decision_criteria", "decision_process",
                   "identify_pain", "champion", "competition"]
MEDDIC_FIELDS = ["metrics", "economic_buyer", "decision_criteria", "decision_process",
                 "identified_pain", "champion", "competition"]
BANT_KEYS = ["budget", "authority", "need", "timeline"]


# ---------------------------------------------------------------- built-ins ----


def test_builtin_rubrics_are_listed():
    assert {"meddic", "bant"} <= set(list_builtin_rubrics())
    assert list(list_builtin_rubrics()) == sorted(list_builtin_rubrics())


@pytest.mark.parametrize("key, criteria, fields", [
    ("meddic", MEDDIC_CRITERIA, MEDDIC_FIELDS),
    ("bant", BANT_KEYS, BANT_KEYS),
])
def test_builtin_rubric_loads_with_expected_criteria_and_fields(key, criteria, fields):
    rubric = load_rubric(BUILTIN_DIR / f"{key}.yaml")
    assert isinstance(rubric, Rubric)
    assert rubric.key == key
    assert [c.key for c in rubric.criteria] == criteria
    assert [f.key for f in rubric.fields] == fields
    assert (rubric.scale.min, rubric.scale.max) == (0, 4)
    for c in rubric.criteria:
        assert c.skill in SKILLS
        assert c.weight > 0 and c.good.strip()
        assert len(c.ask) >= 5 and len(c.answer) >= 5, c.key  # real calls phrase things many ways
    for f in rubric.fields:
        assert f.side in ("buyer", "rep") and f.patterns


def test_builtin_rubric_is_cached_and_unknown_keys_are_refused():
    assert builtin_rubric("meddic") is builtin_rubric("meddic")
    with pytest.raises(RubricError, match="no built-in rubric 'spin-selling'.*bant.*meddic"):
        builtin_rubric("spin-selling")


def test_every_phrase_compiles_case_insensitive_with_word_boundaries():
    pattern = compile_phrase("sign[- ]?off")
    assert pattern.search("Who has SIGN-OFF on this?")
    assert not pattern.search("the signoffs are done")  # no match inside a longer word
    assert compile_phrase(r"\$ ?\d[\d,.]*\w*").search("about $60k a year")
    for key in list_builtin_rubrics():
        rubric = builtin_rubric(key)
        for c in rubric.criteria:
            for phrase in c.ask + c.answer + c.reply + c.confirm + c.concrete:
                assert compile_phrase(phrase).flags & re.IGNORECASE


# -------------------------------------------------- phrases fit real speech ----

ECONOMIC_BUYER_ASKS = [
    "Who signs off on a purchase like this?",
    "Who has the final say here?",
    "And who would actually sign the contract?",
    "Is there a budget holder we should bring in?",
    "Who owns the budget for this project?",
    "Would this need approval from anyone above you?",
    "Who ultimately makes the call?",
    "Who else would need to approve it?",
    "Whose budget would this come out of?",
    "Who's going to green-light something like this?",
]
ECONOMIC_BUYER_ANSWERS = [
    "Our CFO would have to sign off.",
    "That'd be the VP of Sales, she owns the budget.",
    "Anything over fifty grand needs approval from the board.",
    "Honestly, the final say sits with our COO.",
    "It goes up to my boss for the signature.",
    "Marcus, our head of operations, controls the budget.",
    "I can sign it myself if it's under $20k.",
]
BANT_BUDGET_ASKS = [
    "Do you have a budget set aside for this?",
    "How much were you planning to spend?",
    "Is there money allocated for this, or would it have to be found?",
    "What kind of ballpark did you have in mind?",
    "Where would the funding come from?",
    "What are you paying today for the current tool?",
]
BANT_TIMELINE_ANSWERS = [
    "We need it live by the end of Q3.",
    "Our contract expires in January.",
    "Ideally within the next couple of months.",
    "Honestly there's no rush, maybe next year.",
    "We want it before the new reps start in March.",
    "ASAP, frankly.",
]
PAIN_ANSWERS = [
    "Our forecast is basically a guess every quarter.",
    "Reps are updating the CRM by hand and things fall through the cracks.",
    "The biggest headache is onboarding, it takes forever to ramp new hires.",
    "We have no visibility into what's happening on calls.",
    "We lost two big renewals last quarter and nobody saw it coming.",
]


@pytest.mark.parametrize("sentence", ECONOMIC_BUYER_ASKS)
def test_economic_buyer_questions_are_recognised(sentence):
    assert builtin_rubric("meddic").criterion("economic_buyer").matches("ask", sentence)


@pytest.mark.parametrize("sentence", ECONOMIC_BUYER_ANSWERS)
def test_economic_buyer_answers_are_recognised(sentence):
    assert builtin_rubric("meddic").criterion("economic_buyer").matches("answer", sentence)


@pytest.mark.parametrize("sentence", BANT_BUDGET_ASKS)
def test_budget_questions_are_recognised(sentence):
    assert builtin_rubric("bant").criterion("budget").matches("ask", sentence)


@pytest.mark.parametrize("sentence", BANT_TIMELINE_ANSWERS)
def test_timeline_answers_are_recognised(sentence):
    assert builtin_rubric("bant").criterion("timeline").matches("answer", sentence)


@pytest.mark.parametrize("sentence", PAIN_ANSWERS)
def test_pain_answers_are_recognised(sentence):
    assert builtin_rubric("meddic").criterion("identify_pain").matches("answer", sentence)


@pytest.mark.parametrize("key, sentence", [
    ("identify_pain", "Tell me what a normal week looks like for your team."),
    ("identify_pain", "What happens when the close runs late?"),
    ("identify_pain", "How do you report on churn today?"),
    ("metrics", "If you got to fourteen days, how would that show up in the numbers?"),
    ("metrics", "How many clinics is that, and what does a missed appointment cost you?"),
    ("decision_criteria", "And what does she need to see before she says yes?"),
    ("decision_criteria", "What has to be true for you to approve a new tool?"),
    ("decision_process", "What's the approval path after Susan says yes?"),
    ("decision_process", "Once Linda agrees, what are the steps to get a contract signed?"),
    ("champion", "What would it mean for you personally?"),
    ("champion", "Would you be open to bringing Linda into the call after that?"),
    ("competition", "And are you looking at anyone else?"),
    ("competition", "You already have Power BI, right? Why not build it there?"),
])
def test_meddic_questions_in_varied_words_are_recognised(key, sentence):
    assert builtin_rubric("meddic").criterion(key).matches("ask", sentence)


@pytest.mark.parametrize("key, sentence", [
    ("economic_buyer", "We really liked the dashboard in the demo."),
    ("economic_buyer", "The weather has been great this week."),
    ("metrics", "Thanks, that makes sense."),
    ("competition", "Let me share my screen."),
])
def test_unrelated_buyer_sentences_do_not_match(key, sentence):
    assert not builtin_rubric("meddic").criterion(key).matches("answer", sentence)


# Natural phrasings from speech (and speech recognition) that the rubrics must read, each with
# a near miss that must not match: (rubric, criterion, signal, sentence, expected).
NATURAL_PHRASING = [
    # Budget: an amount held for a purpose, not any number.
    ("bant", "budget", "answer", "We've got roughly 75,000 for tooling this year.", True),
    ("bant", "budget", "answer", "There's about $30k set aside for it.", True),
    ("bant", "budget", "answer", "Forty thousand has been earmarked for this.", True),
    ("bant", "budget", "answer", "We have about 40 people on the team.", False),
    ("bant", "budget", "answer", "We have 12,000 customers across the region.", False),
    ("bant", "budget", "concrete", "Budgets for next year lock in mid-October.", True),
    # ... and as the direct reply to a budget question, a bare amount; never an approval limit.
    ("bant", "budget", "reply", "Honestly, 20 to 25,000.", True),
    ("bant", "budget", "reply", "Anything over $100k goes to the board.", False),
    ("bant", "budget", "reply", "We onboarded 3,000 users last year.", False),
    # Timeline: dates as said aloud, and durations of the steps before the date.
    ("bant", "timeline", "answer", "Somewhere around the middle of October.", True),
    ("bant", "timeline", "answer", "By the second quarter, realistically.", True),
    ("bant", "timeline", "answer", "We'd want it before our busy season kicks off.", True),
    ("bant", "timeline", "answer", "Contracts have to be signed by June 30th.", True),
    ("bant", "timeline", "answer", "The renewal is on September twenty first.", True),
    ("bant", "timeline", "answer", "Legal usually takes two weeks.", True),
    ("bant", "timeline", "answer", "About three days at the start of every month.", False),
    ("bant", "timeline", "answer", "Last quarter we lost two deals.", False),
    ("bant", "timeline", "ask", "Is the end of March still the target?", True),
    ("bant", "timeline", "ask", "Do you need it live for the spring intake?", True),
    ("bant", "need", "ask", "Is mid-November still the goal?", False),
    ("bant", "need", "ask", "No problem, happy to send it over.", False),
    ("meddic", "identify_pain", "ask", "No problem, happy to send it over.", False),
    # Authority / decision process: what happens once the signer agrees.
    ("bant", "authority", "ask", "What happens after your COO approves it?", True),
    ("bant", "authority", "answer", "Procurement signs the contract.", True),
    ("meddic", "decision_process", "ask", "What are the steps after Dana agrees?", True),
    # Competition: where the rep stands, prices compared to the rep's, build versus buy.
    ("meddic", "competition", "ask", "Where do we stand against them?", True),
    ("meddic", "competition", "ask", "When your CFO compares the two, what will she focus on?",
     True),
    ("meddic", "competition", "ask", "I hear you're also talking to Gong.", True),
    ("meddic", "competition", "answer", "Their quote came in about ten percent lower.", True),
    ("meddic", "competition", "answer", "Honestly they came in a bit under you.", True),
    ("meddic", "competition", "answer", "They're cheaper on licensing, but slower to set up.",
     True),
    ("meddic", "competition", "answer",
     "We don't have the engineers to maintain something home-grown.", True),
    ("meddic", "competition", "answer", "We decided to go with Clari.", True),
    ("meddic", "competition", "answer", "Sales came in lower than forecast this quarter.", False),
    ("meddic", "competition", "concrete", "Salesloft is cheaper, to be fair.", True),
    ("meddic", "competition", "concrete", "It is cheaper, to be fair.", False),
    # Champion: equipping them for the meeting with the signer, and their commitments.
    ("meddic", "champion", "ask", "Before you take it to Priya, what would help?", True),
    ("meddic", "champion", "ask", "What pushback do you expect from finance?", True),
    ("meddic", "champion", "answer", "I'll set it up for next week.", True),
    ("meddic", "champion", "answer", "He'll probably ask about security.", True),
    ("meddic", "champion", "answer", "We set it up last year.", False),
    # Decision criteria: bars to pass; a vague "we need to think" is not one.
    ("meddic", "decision_criteria", "answer", "It has to pass our vendor security checks.", True),
    ("meddic", "decision_criteria", "answer", "Payback within a year is the bar.", True),
    ("meddic", "decision_criteria", "answer", "We need to think about it internally.", False),
    ("meddic", "decision_criteria", "reply", "She wants the adjusters to actually use it.", True),
    ("meddic", "decision_criteria", "ask", "What will your CFO weigh most?", True),
    # Metrics: checking a number with the buyer asks about it.
    ("meddic", "metrics", "ask", "Does that number hold up on your side?", True),
]


@pytest.mark.parametrize("rubric_key, key, kind, sentence, expected", NATURAL_PHRASING)
def test_natural_phrasing_matches_and_near_misses_do_not(rubric_key, key, kind, sentence,
                                                         expected):
    assert bool(builtin_rubric(rubric_key).criterion(key).matches(kind, sentence)) is expected


@pytest.mark.parametrize("rubric_key", ["meddic", "bant"])
def test_builtin_related_criteria_exist(rubric_key):
    rubric = builtin_rubric(rubric_key)
    for c in rubric.criteria:
        for key in c.related:
            assert key != c.key
            rubric.criterion(key)


# ------------------------------------------------------------------ version ----


def test_version_is_a_stable_content_hash(tmp_path):
    first = load_rubric(BUILTIN_DIR / "meddic.yaml")
    again = load_rubric(BUILTIN_DIR / "meddic.yaml")
    assert re.fullmatch(r"[0-9a-f]{16}", first.version)
    assert first.version == again.version == builtin_rubric("meddic").version
    assert first.version != builtin_rubric("bant").version

    # Comments and layout are not content.
    text = (BUILTIN_DIR / "meddic.yaml").read_text()
    reformatted = tmp_path / "meddic.yaml"
    reformatted.write_text("# a local copy\n\n" + text.replace("\ncriteria:\n", "\n\n\ncriteria:\n"))
    assert load_rubric(reformatted).version == first.version

    # Content is.
    changed = tmp_path / "meddic-changed.yaml"
    changed.write_text(text.replace("weight: 0.5", "weight: 0.75", 1))
    assert load_rubric(changed).version != first.version


# ------------------------------------------------------------------- errors ----

VALID = """\
key: demo
name: Demo
description: A two-criterion rubric for tests.
scale:
  min: 0
  max: 4
criteria:
  - key: budget
    name: Budget
    skill: budget_qualification
    good: The rep learns whether money is set aside.
    weight: 1
    ask:
      - 'budget'
      - 'how much (do|did) you (spend|pay)'
    answer:
      - 'set aside'
  - key: timeline
    name: Timeline
    skill: urgency_timeline
    good: The rep learns the date that matters.
    ask:
      - 'by when'
    answer:
      - 'next quarter'
fields:
  - key: budget
    label: Budget
    patterns:
      - 'set aside'
"""


def write(tmp_path, text: str):
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def variant(old: str, new: str) -> str:
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def assert_points_at(tmp_path, text: str, line: int, *fragments: str) -> RubricError:
    path = write(tmp_path, text)
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == line
    assert f"{path}:{line}" in str(error)
    for fragment in fragments:
        assert fragment in str(error)
    return error


def test_the_valid_fixture_loads(tmp_path):
    rubric = load_rubric(write(tmp_path, VALID))
    assert [c.key for c in rubric.criteria] == ["budget", "timeline"]


def test_malformed_yaml_names_file_and_line(tmp_path):
    text = variant("    name: Timeline\n", "    name: Timeline: soon\n")
    assert_points_at(tmp_path, text, line_of(text, "Timeline: soon"), "malformed YAML")


def test_unclosed_quote_names_file_and_line(tmp_path):
    text = variant("      - 'by when'\n", "      - 'by when\n")
    error = assert_points_at(tmp_path, text, line_of(text, "next quarter"), "malformed YAML")
    assert error.line > line_of(text, "'by when")  # the parser notices at the next quote


def test_unknown_skill_names_file_and_line(tmp_path):
    text = variant("skill: urgency_timeline", "skill: time_management")
    error = assert_points_at(tmp_path, text, line_of(text, "skill: time_management"),
                             "unknown skill 'time_management'", "urgency_timeline")
    assert error.field == "criteria[1].skill"


def test_bad_regex_names_file_and_line(tmp_path):
    text = variant("      - 'how much (do|did) you (spend|pay)'\n",
                   "      - 'how much (do|did you (spend|pay)'\n")
    error = assert_points_at(tmp_path, text, line_of(text, "how much (do|did you"),
                             "invalid regex", "missing ), unterminated subpattern at position 9")
    assert error.field == "criteria[0].ask[1]"


def test_regex_matching_empty_text_is_refused(tmp_path):
    text = variant("      - 'next quarter'\n", "      - '(next quarter)?'\n")
    assert_points_at(tmp_path, text, line_of(text, "(next quarter)?"), "matches empty text")


def test_duplicate_criterion_key_names_the_second_one(tmp_path):
    text = variant("  - key: timeline\n", "  - key: budget\n")
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line == "  - key: budget"]
    assert_points_at(tmp_path, text, lines[1], "duplicate key 'budget'", "criteria[0]")


def test_missing_field_points_at_its_criterion(tmp_path):
    text = variant("    skill: urgency_timeline\n", "")
    error = assert_points_at(tmp_path, text, line_of(text, "key: timeline"), "Field required")
    assert error.field == "criteria[1].skill"


def test_missing_top_level_field_points_at_the_document(tmp_path):
    text = variant("description: A two-criterion rubric for tests.\n", "")
    error = assert_points_at(tmp_path, text, 1, "Field required")
    assert error.field == "description"


@pytest.mark.parametrize("weight", ["0", "-1.5"])
def test_non_positive_weight_names_file_and_line(tmp_path, weight):
    text = variant("    weight: 1\n", f"    weight: {weight}\n")
    assert_points_at(tmp_path, text, line_of(text, f"weight: {weight}"), "greater than 0")


def test_misspelt_key_names_file_and_line(tmp_path):
    text = variant("    answer:\n      - 'next quarter'\n", "    answers:\n      - 'next quarter'\n")
    path = write(tmp_path, text)
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    # Both consequences are reported, in file order: the criterion now lacks `answer`, and
    # `answers` is not a key the schema knows.
    assert caught.value.problems == (
        f"{path}:{line_of(text, 'key: timeline')} [criteria[1].answer]: Field required",
        f"{path}:{line_of(text, 'answers:')} [criteria[1].answers]: unknown key (check the "
        "spelling)",
    )
    assert caught.value.line == line_of(text, "key: timeline")


def test_unknown_related_criterion_names_file_and_line(tmp_path):
    text = variant("      - 'next quarter'\n", "      - 'next quarter'\n    related: [budgte]\n")
    assert_points_at(tmp_path, text, line_of(text, "related:"), "unknown criterion 'budgte'",
                     "budget, timeline")


def test_a_criterion_related_to_itself_is_refused(tmp_path):
    text = variant("      - 'next quarter'\n", "      - 'next quarter'\n    related: [timeline]\n")
    assert_points_at(tmp_path, text, line_of(text, "related:"), "related to itself")


def test_key_repeated_in_a_mapping_names_the_repeat(tmp_path):
    text = variant("    weight: 1\n", "    weight: 1\n    weight: 2\n")
    assert_points_at(tmp_path, text, line_of(text, "weight: 2"), "'weight' appears twice")


def test_unquoted_yaml_boolean_gets_a_hint(tmp_path):
    text = variant("      - 'budget'\n", "      - no\n")
    assert_points_at(tmp_path, text, line_of(text, "      - no"), "quote it")


def test_inverted_scale_names_file_and_line(tmp_path):
    text = variant("  max: 4\n", "  max: 0\n")
    assert_points_at(tmp_path, text, line_of(text, "max: 0"), "must be greater than min")


@pytest.mark.parametrize("text", ["", "- just\n- a list\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    assert_points_at(tmp_path, text, 1, "must be a mapping")


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    assert str(path) in str(caught.value)


def test_rubric_error_is_a_user_facing_input_error(tmp_path):
    shutil.copy(BUILTIN_DIR / "bant.yaml", tmp_path / "bant.yaml")
    path = tmp_path / "bant.yaml"
    path.write_text(path.read_text().replace("skill: urgency_timeline", "skill: urgency"))
    with pytest.raises(InputError) as caught:
        load_rubric(path)
    assert caught.value.line == line_of(path.read_text(), "skill: urgency")
