"""The LLM scorer against the OpenAI-compatible sandbox over HTTPS, with the real `openai`
client: verified evidence, unsupported criteria, retries, fallback, redaction, cache, chunks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.domain import Role, TranscriptSegment, TranscriptView
from core.errors import ConfigError
from core.llm_scorer import PROMPT_VERSION, LlmScorer
from core.rubrics import builtin_rubric
from core.score import BuiltinScorer, result_to_json
from core.settings import LlmSettings, ScoringSettings, Settings
from sandbox.openai_compat import (
    OpenAICompatSandbox,
    good,
    invented_quotes,
    keyword_answer,
    malformed_json,
    rate_limited,
    server_error,
    transcript_lines,
    truncated,
)
from sandbox.server import serve

REP, BUYER = Role.REP, Role.BUYER
MODEL = "coach-small"

CALL = [
    (REP, "Thanks for making the time, Priya. What prompted you to take this call?"),
    (BUYER, "Honestly, our invoice process is a mess. We key everything into NetSuite by hand."),
    (REP, "What's the biggest challenge that creates for the team?"),
    (BUYER, "The biggest problem is late payments and missed discounts every month-end."),
    (REP, "How much is that costing you, roughly?"),
    (BUYER, "Around $180,000 a year in lost discounts, plus 60 hours a week of manual entry."),
    (REP, "Who ultimately signs off on a purchase like this?"),
    (BUYER, ("Our CFO, Dana Whitfield, has the final say. Write to her at "
             "dana.whitfield@acme.io or call her on (415) 555-0142.")),
    (REP, "What criteria will you use to compare vendors?"),
    (BUYER, "It has to integrate with NetSuite, and SOC 2 is a must-have."),
    (REP, "Walk me through the approval process once you've picked a vendor."),
    (BUYER, ("A 30-day pilot, then security review and legal. Our card on file is "
             "4111 1111 1111 1111 if you need it for the pilot.")),
    (REP, "Who else are you looking at besides us?"),
    (BUYER, "We're also looking at Tipalti, and some folks want to build in-house."),
]
PII = ("dana.whitfield@acme.io", "555-0142", "4111 1111 1111 1111", "4111111111111111")


def build_view(lines, *, first_id: int = 500) -> TranscriptView:
    segments, clock = [], 3.0
    for index, (role, text) in enumerate(lines):
        duration = round(0.38 * len(text.split()) + 0.8, 2)
        segments.append(TranscriptSegment(
            id=first_id + index, start=round(clock, 2), end=round(clock + duration, 2),
            text=text, role=role, speaker=f"{role.value}@example.com",
            attribution_confidence=0.93))
        clock += duration + 0.6
    return TranscriptView(meeting_id=7, segments=tuple(segments), source="platform")


@pytest.fixture(scope="module")
def sandbox(tls):
    box = OpenAICompatSandbox(models=(MODEL,))
    server = serve(box.create_app(), tls)
    box.url = server.url
    yield box
    server.stop()


@pytest.fixture
def llm(sandbox, tls):
    """A scorer factory on a fresh script; `sleeps` records every wait."""
    sandbox.reset()
    sleeps: list[float] = []

    def make(**overrides) -> LlmScorer:
        options = {"base_url": f"{sandbox.url}/v1", "api_key": sandbox.api_key, "model": MODEL,
                   "cache": False, "max_retries": 3, **overrides}
        settings = Settings(llm=LlmSettings(**options), ca_bundle=str(tls.ca_path),
                            scoring=ScoringSettings(scorer="llm"))
        return LlmScorer(settings, sleep=sleeps.append)

    make.sleeps = sleeps
    return make


RUBRIC = builtin_rubric("meddic")
VIEW = build_view(CALL)
SEGMENTS = {s.id: s for s in VIEW.segments}


def test_good_answer_scores_with_verified_evidence_and_our_times(llm, sandbox):
    result = llm().score(VIEW, RUBRIC)
    assert sandbox.completions == 1
    assert (result.scorer, result.model, result.prompt_version) == ("llm", MODEL, PROMPT_VERSION)
    assert all(c.state == "scored" for c in result.criteria)
    metrics = next(c for c in result.criteria if c.key == "metrics")
    assert metrics.score == 3.0
    [evidence] = metrics.evidence
    segment = SEGMENTS[evidence.segment_id]
    assert (evidence.start, evidence.end, evidence.quote) == (segment.start, segment.end,
                                                             segment.text)
    assert result.overall is not None and 0 < result.overall <= 100
    assert result.usage.requests == 1 and result.usage.prompt_tokens > 0
    assert result.usage.cost_usd is None and not result.usage.cached
    body = sandbox.received[0]
    assert body["temperature"] == 0 and body["seed"] == 7 and body["model"] == MODEL
    assert body["response_format"]["json_schema"]["strict"] is True


def test_invented_quotes_make_that_criterion_unsupported(llm, sandbox):
    sandbox.push(invented_quotes(("champion",)))
    result = llm().score(VIEW, RUBRIC)
    champion = next(c for c in result.criteria if c.key == "champion")
    assert champion.state == "unsupported" and champion.score is None
    assert champion.evidence == () and "occur in the transcript" in champion.rationale
    others = [c for c in result.criteria if c.key != "champion"]
    assert all(c.state == "scored" and c.score is not None for c in others)


def test_quote_with_wrong_segment_id_is_accepted_from_the_one_segment_that_has_it(llm, sandbox):
    def answer(messages, schema):
        result = keyword_answer(messages, schema)
        item = next(i for i in result["criteria"] if i["key"] == "competition")
        item["quotes"] = [{"segment_id": 500, "quote": "we\u2019re ALSO looking at   Tipalti"}]
        return result

    sandbox.push(good(answer))
    result = llm().score(VIEW, RUBRIC)
    competition = next(c for c in result.criteria if c.key == "competition")
    [evidence] = competition.evidence
    assert evidence.segment_id == 513 and evidence.quote == "We're also looking at Tipalti"
    assert (evidence.start, evidence.end) == (SEGMENTS[513].start, SEGMENTS[513].end)


def test_score_above_minimum_without_quotes_is_unsupported(llm, sandbox):
    def answer(messages, schema):
        result = keyword_answer(messages, schema)
        result["criteria"][0]["quotes"] = []
        return result

    sandbox.push(good(answer))
    first = llm().score(VIEW, RUBRIC).criteria[0]
    assert first.state == "unsupported" and first.score is None


def test_malformed_json_is_asked_again(llm, sandbox):
    sandbox.push(malformed_json())
    result = llm().score(VIEW, RUBRIC)
    assert sandbox.completions == 2 and result.scorer == "llm" and result.usage.requests == 2
    assert "not valid JSON" in sandbox.received[1]["messages"][-1]["content"]


def test_truncated_twice_falls_back_to_builtin(llm, sandbox):
    sandbox.push(truncated(), truncated())
    result = llm().score(VIEW, RUBRIC)
    assert sandbox.completions == 2
    assert result == BuiltinScorer().score(VIEW, RUBRIC)


def test_rate_limit_waits_retry_after_then_succeeds(llm, sandbox):
    sandbox.push(rate_limited(retry_after=7))
    scorer = llm()
    result = scorer.score(VIEW, RUBRIC)
    assert llm.sleeps == [7.0] and sandbox.completions == 2 and result.scorer == "llm"


def test_retry_after_is_capped(llm, sandbox):
    sandbox.push(rate_limited(retry_after=3600))
    llm(retry_after_cap_s=30).score(VIEW, RUBRIC)
    assert llm.sleeps == [30.0]


def test_server_errors_back_off_then_fall_back(llm, sandbox):
    sandbox.push(*[server_error(500), server_error(503)] * 3)
    result = llm(max_retries=3, backoff_s=0.5).score(VIEW, RUBRIC)
    # Doubling from 0.5 s, each with up to 0.5 s of jitter so clients spread out.
    assert sandbox.completions == 4 and len(llm.sleeps) == 3
    assert all(w <= s <= w + 0.5 for s, w in zip(llm.sleeps, (0.5, 1.0, 2.0), strict=True))
    assert result.scorer == "builtin" and result.abstain_reason is None and result.usage is None


def test_wrong_api_key_falls_back_without_retrying(llm, sandbox):
    result = llm(api_key="sk-wrong-key-0000").score(VIEW, RUBRIC)
    assert sandbox.completions == 1 and llm.sleeps == [] and result.scorer == "builtin"


def test_the_model_never_sees_pii_but_evidence_shows_the_original(llm, sandbox):
    def answer(messages, schema):
        result = keyword_answer(messages, schema)
        line = next(text for sid, _, text in transcript_lines(messages) if sid == 507)
        item = next(i for i in result["fields"] if i["key"] == "economic_buyer")
        item.update(value="Dana Whitfield, [EMAIL_1]", quotes=[{"segment_id": 507,
                                                              "quote": line}])
        return result

    sandbox.push(good(answer))
    result = llm().score(VIEW, RUBRIC)
    sent = json.dumps(sandbox.received)
    for value in PII:
        assert value not in sent
    assert "[EMAIL_1]" in sent and "[PHONE_1]" in sent and "[CARD_1]" in sent
    field = next(f for f in result.fields if f.key == "economic_buyer")
    assert field.value == "Dana Whitfield, dana.whitfield@acme.io"
    assert field.evidence[0].quote == SEGMENTS[507].text


def test_cache_hit_sends_nothing_and_gives_the_same_result(llm, sandbox, sqlite_database):
    scorer = llm(cache=True)
    first = scorer.score(VIEW, RUBRIC)
    second = llm(cache=True).score(VIEW, RUBRIC)
    assert sandbox.completions == 1
    assert second.usage.cached and second.usage.requests == 0
    assert dataclasses.replace(second, usage=None) == dataclasses.replace(first, usage=None)


def test_long_call_is_chunked_and_merged(llm, sandbox):
    result = llm(chunk_chars=300).score(VIEW, RUBRIC)
    assert sandbox.completions >= 3 and result.usage.requests == sandbox.completions
    seen = [[sid for sid, _, _ in transcript_lines(body["messages"])]
            for body in sandbox.received]
    assert sorted(sid for ids in seen for sid in ids) == sorted(SEGMENTS)  # every line sent exactly once
    assert all(c.state == "scored" for c in result.criteria)
    pain = next(c for c in result.criteria if c.key == "identify_pain")
    parts = {n for n, ids in enumerate(seen) for e in pain.evidence if e.segment_id in ids}
    assert len(pain.evidence) >= 2 and len(parts) >= 2  # evidence from several parts, merged
    assert pain.score == 3.0 and pain.confidence == 0.8
    metrics = next(c for c in result.criteria if c.key == "metrics")
    assert [e.segment_id for e in metrics.evidence] == [505]  # one part found it: max wins


def test_same_input_twice_gives_identical_results(llm, sandbox):
    scorer = llm()
    one, two = scorer.score(VIEW, RUBRIC), scorer.score(VIEW, RUBRIC)
    assert result_to_json(one) == result_to_json(two) and sandbox.completions == 2
    assert sandbox.received[0] == sandbox.received[1]


def test_cost_comes_from_configured_prices(llm, sandbox):
    result = llm(price_prompt_per_1k=0.5, price_completion_per_1k=1.5).score(VIEW, RUBRIC)
    usage = result.usage
    expected = usage.prompt_tokens / 1000 * 0.5 + usage.completion_tokens / 1000 * 1.5
    assert usage.cost_usd == pytest.approx(expected, abs=1e-6) and usage.cost_usd > 0


def test_unattributed_lines_are_sent_marked_unknown(llm, sandbox):
    view = build_view(CALL[:4])
    lines = [dataclasses.replace(s, role=Role.UNKNOWN) if s.id == 501 else s
             for s in view.segments]
    llm().score(dataclasses.replace(view, segments=tuple(lines)), RUBRIC)
    prompt = sandbox.received[0]["messages"][1]["content"]
    assert "\n[501] UNKNOWN: Honestly" in prompt and "\n[500] REP: Thanks" in prompt


def test_connection_errors_are_retried_then_fall_back(llm, sandbox):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = llm(base_url=f"https://127.0.0.1:{port}/v1", max_retries=2).score(VIEW, RUBRIC)
    assert len(llm.sleeps) == 2 and result.scorer == "builtin"
    assert all(w <= s <= w + 1.0 for s, w in zip(llm.sleeps, (1.0, 2.0), strict=True))


def test_misconfiguration_is_a_config_error():
    from core.pipeline import get_scorer

    with pytest.raises(ConfigError, match="COACHLOOP_LLM__BASE_URL"):
        get_scorer(Settings(scoring=ScoringSettings(scorer="llm")))
    scorer = get_scorer(Settings(scoring=ScoringSettings(scorer="llm"),
                                 llm=LlmSettings(base_url="https://x/v1", model="m")))
    assert isinstance(scorer, LlmScorer)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("COACHLOOP_LLM__BASE_URL", "https://llm.internal/v1")
    monkeypatch.setenv("COACHLOOP_LLM__API_KEY", "sk-live")
    monkeypatch.setenv("COACHLOOP_LLM__REDACT_PATTERNS", '{"EMPLOYEE_ID": "EMP-\\\\d{6}"}')
    settings = Settings()
    assert settings.llm.base_url == "https://llm.internal/v1"
    assert settings.llm.api_key.get_secret_value() == "sk-live"
    assert settings.llm.redact_patterns == {"EMPLOYEE_ID": "EMP-\\d{6}"}


# Deal facts through the JSON schema ------------------------------------------------------


def with_fields(**items):
    """An answerer that overrides some fields' items by key: (status, value, segment, negative)."""
    def answer(messages, schema):
        result = keyword_answer(messages, schema)
        lines = {sid: text for sid, _, text in transcript_lines(messages)}
        for item in result["fields"]:
            if item["key"] in items:
                status, value, segment, negative = items[item["key"]]
                quotes = ([{"segment_id": segment, "quote": lines[segment]}]
                          if segment in lines else [])
                item.update(status=status, value=value, negative=negative, confidence=0.9,
                            quotes=quotes)
        return result
    return answer


def test_schema_asks_for_three_way_status_and_negative():
    field = LlmScorer.schema(RUBRIC)["properties"]["fields"]["items"]
    assert field["properties"]["status"]["enum"] == ["found", "ambiguous", "absent"]
    assert field["properties"]["negative"] == {"type": "boolean"}
    assert set(field["required"]) >= {"status", "value", "negative", "quotes"}


def test_llm_fields_keep_status_distilled_values_and_negatives(llm, sandbox):
    sandbox.push(good(with_fields(
        economic_buyer=("found", "Dana Whitfield, CFO", 507, False),
        competition=("found", "Tipalti; in-house build", 513, False),
        decision_process=("ambiguous", None, 511, False),
        champion=("absent", None, None, False),
        metrics=("found", None, 505, True))))
    fields = {f.key: f for f in llm().score(VIEW, RUBRIC).fields}
    eb = fields["economic_buyer"]
    assert (eb.status, eb.value, eb.writable) == ("found", "Dana Whitfield, CFO", True)
    assert eb.evidence[0].segment_id == 507
    assert fields["competition"].value == "Tipalti; in-house build"
    process = fields["decision_process"]
    assert process.status == "ambiguous" and not process.writable and process.evidence
    assert fields["champion"].status == "absent" and fields["champion"].value is None
    # A negative with no value gets the field's own "none" wording.
    assert fields["metrics"].negative and fields["metrics"].status == "found"


def test_llm_values_that_are_sentences_or_unknown_people_are_never_writable(llm, sandbox):
    sandbox.push(good(with_fields(
        champion=("found", "Yes, let's do that.", 507, False),
        economic_buyer=("found", "Robert Hughes, CIO", 507, False),
        identified_pain=("found", "The biggest problem is late payments and missed discounts "
                                  "every month-end and it hurts a lot", 503, False),
        metrics=("found", "the pain is real", 505, False))))
    fields = {f.key: f for f in llm().score(VIEW, RUBRIC).fields}
    for key in ("champion", "economic_buyer", "identified_pain", "metrics"):
        assert fields[key].status == "ambiguous" and not fields[key].writable, key


def test_llm_field_without_a_verified_quote_is_absent(llm, sandbox):
    def answer(messages, schema):
        result = with_fields(economic_buyer=("found", "Dana Whitfield, CFO", 507, False))(
            messages, schema)
        item = next(i for i in result["fields"] if i["key"] == "economic_buyer")
        item["quotes"] = [{"segment_id": 507, "quote": "Dana signs every contract herself"}]
        return result

    sandbox.push(good(answer))
    eb = next(f for f in llm().score(VIEW, RUBRIC).fields if f.key == "economic_buyer")
    assert eb.status == "absent" and eb.value is None


def test_llm_parts_of_a_long_call_merge_like_a_deals_calls(llm, sandbox):
    """Part one names Dana, the last part names Marco: a conflict, so ambiguous with both
    quotes; a part that says nothing never erases an earlier found value."""
    view = build_view(CALL + [(BUYER, "Marco Diaz, our COO, has to approve it as well.")])

    def answer(messages, schema):
        ids = {sid for sid, _, _ in transcript_lines(messages)}
        eb = (("found", "Dana Whitfield, CFO", 507, False) if 507 in ids else
              ("found", "Marco Diaz, COO", 514, False) if 514 in ids else
              ("absent", None, None, False))
        comp = (("found", "Tipalti", 513, False) if 513 in ids else
                ("absent", None, None, False))
        return with_fields(economic_buyer=eb, competition=comp)(messages, schema)

    sandbox.push(*[good(answer)] * 10)
    fields = {f.key: f for f in llm(chunk_chars=300).score(view, RUBRIC).fields}
    assert sandbox.completions >= 3
    assert fields["competition"].status == "found" and fields["competition"].value == "Tipalti"
    eb = fields["economic_buyer"]
    assert eb.status == "ambiguous" and not eb.writable
    assert [e.segment_id for e in eb.evidence] == [507, 514]
