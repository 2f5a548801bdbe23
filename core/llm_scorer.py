"""The LLM scorer: a rubric scored by any OpenAI-compatible endpoint, every quote checked.

The model sees the call only after PII redaction (`core.redact`), as numbered lines
`[segment id] ROLE: text`, and answers in a JSON schema built from the rubric. Its quotes are
then checked to occur verbatim in the segment they name; evidence carries our segment's times
and the original (unredacted) words. A criterion whose quotes cannot be found is marked
`unsupported` rather than trusted. Long calls are scored in parts and merged. When the endpoint
keeps failing, the call falls back to the built-in scorer. Answers are cached by transcript,
rubric version, model and prompt version, so re-scoring an unchanged call sends nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from core.domain import (
    CallScoreResult,
    CriterionResult,
    Evidence,
    FieldResult,
    LlmUsage,
    Role,
    TranscriptSegment,
    TranscriptView,
)
from core.errors import (
    CoachloopError,
    ConfigError,
    TransientError,
)
from core.deal_facts import (
    ABSENT,
    AMBIGUOUS,
    FIELD_STATUSES,
    FOUND,
    distillation_problem,
    merge_in_order,
)
from core.redact import RedactedText, Redactor
from core.rubrics import MethodologyField, Rubric
from core.score import BuiltinScorer, _overall
from core.settings import LlmSettings, Settings
from core.text import TYPOGRAPHY

log = logging.getLogger(__name__)

PROMPT_VERSION = "llm-rubric-2026.1"
MAX_EVIDENCE = 3

SYSTEM_PROMPT = """\
You are an experienced sales coach. You score one sales call against a rubric and extract \
methodology fields, using only what is said in the transcript.

Rules:
- Score what the REP did (asked, explored, confirmed); BUYER lines show what was learned.
- Lines marked UNKNOWN come from a speaker we could not identify: never credit them to the \
rep or the buyer.
- Every score above the lowest level needs quotes. A quote is copied character for character \
from ONE transcript line (a sentence or part of it, without the "[id] ROLE:" prefix), with \
the segment_id of that line. Copy placeholders such as [EMAIL_1] exactly as written.
- If a criterion is not covered, give the lowest score and no quotes. Use null only when the \
transcript gives too little to judge at all.
- Fields are facts about the deal, whoever said them (the rep's own claims count only when \
a buyer confirms them). For each field give a status:
  found: stated plainly and specifically; ambiguous: hedged, conditional or vague ("I think \
finance has a say somewhere", "we may get a second quote"), or two candidates that conflict; \
absent: never comes up, or only as an unanswered question or a refusal.
  A clear "none" is found with negative true and a value such as "none named (sole \
evaluation)" or "none this year".
- A field value is distilled, never the buyer's sentence, under 12 words: people as "Name, \
Title" (the person the sentence is about, not the speaker unless they say they decide); \
metrics as number + unit + what it measures; competition as vendor or alternative names \
("in-house build", "spreadsheets"); decision process as steps and dates; criteria as a list \
joined with "; "; pain and need as a short phrase. If nothing can be distilled, the field is \
ambiguous with a null value. Numbers that are not business measures (phone numbers, approval \
limits, prices we quote) are not metrics.
- confidence is 0 to 1. rationale is one plain sentence for the rep's manager.
"""

RETRY_PROMPT = ("Your previous answer was {problem}. Answer again: only a JSON object that "
                "matches the schema, with short rationales.")


class _BadAnswer(Exception):
    """The model's reply is not usable JSON (malformed, cut off, or not the schema's shape)."""


@dataclass(frozen=True)
class _Line:
    """A segment as the model sees it: redacted text, and how to get back to the original."""

    segment: TranscriptSegment
    redacted: RedactedText

    @property
    def prompt(self) -> str:
        role = {Role.REP: "REP", Role.BUYER: "BUYER"}.get(self.segment.role, "UNKNOWN")
        return f"[{self.segment.id}] {role}: {' '.join(self.redacted.text.split())}"


@dataclass(frozen=True)
class _Exchange:
    """One chunk's validated answer and what asking for it took."""

    answer: dict
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0


class LlmFailure(CoachloopError):
    """The endpoint could not give a usable answer (after retries)."""


# ------------------------------------------------------------ normalising ----


def _normalised(text: str) -> tuple[str, list[int]]:
    """`text` lower-cased, with straight quotes and single spaces, and for every character of
    the result the index of the character it came from."""
    out: list[str] = []
    index: list[int] = []
    pending_space = False
    for position, char in enumerate(text.translate(TYPOGRAPHY)):
        if char.isspace():
            pending_space = bool(out)
            continue
        if pending_space:
            out.append(" ")
            index.append(position - 1)
            pending_space = False
        for lowered in char.lower():
            out.append(lowered)
            index.append(position)
    return "".join(out), index


def _clean_quote(quote: str) -> str:
    quote = quote.strip().translate(TYPOGRAPHY)
    if len(quote) > 2 and quote[0] == quote[-1] == '"':
        quote = quote[1:-1]  # the model wrapped the quote in quotation marks
    return quote.strip()


def _find(quote: str, line: _Line) -> str | None:
    """The original words of `line` that `quote` quotes, or None if it does not occur there."""
    needle, _ = _normalised(_clean_quote(quote))
    if not needle:
        return None
    haystack, index = _normalised(line.redacted.text)
    at = haystack.find(needle)
    if at < 0:
        return None
    start, end = index[at], index[at + len(needle) - 1] + 1
    return line.redacted.original_span(start, end).strip()


# ---------------------------------------------------------------- scorer ----


class LlmScorer:
    """Scores calls with an LLM behind an OpenAI-compatible API; see the module docstring.

    `sleep` is what waits between retries (tests pass a recorder).
    """

    name: ClassVar[str] = "llm"
    version: ClassVar[str] = "1.0.0"

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.llm: LlmSettings = settings.llm
        missing = [n for n in ("base_url", "model") if not getattr(self.llm, n)]
        if missing:
            names = ", ".join(f"COACHLOOP_LLM__{n.upper()}" for n in missing)
            raise ConfigError(f"the LLM scorer is selected (COACHLOOP_SCORING__SCORER=llm) but "
                              f"{names} is not set (looked in the environment and .env)")
        self._sleep = sleep
        self._client = None

    # The contract ------------------------------------------------------------

    def score(self, transcript: TranscriptView, rubric: Rubric) -> CallScoreResult:
        """Score `transcript` with the model; fall back to the built-in scorer on failure."""
        redactor = Redactor(self.llm.redact_patterns)
        segments = sorted(transcript.segments, key=lambda s: (s.start, s.end, s.id))
        lines = [_Line(s, redactor.redact(s.text)) for s in segments]
        chunks = self._chunks(lines)
        key = self._cache_key(chunks, rubric)
        cached = self._cache_get(key) if self.llm.cache else None
        if cached is not None:
            exchanges = [_Exchange(answer) for answer in cached]
        else:
            try:
                exchanges = [self._ask(chunk, rubric, part, len(chunks))
                             for part, chunk in enumerate(chunks, 1)]
            except CoachloopError as exc:
                log.warning("LLM scoring of meeting %s failed, using the built-in scorer: %s",
                            transcript.meeting_id, exc.message,
                            extra={"detail": exc.detail})
                return BuiltinScorer().score(transcript, rubric)
            if self.llm.cache:
                self._cache_put(key, exchanges)
        criteria = tuple(
            self._merge_criterion(criterion.key, rubric,
                                  [self._criterion(e.answer, criterion.key, rubric, chunk)
                                   for e, chunk in zip(exchanges, chunks, strict=True)])
            for criterion in rubric.criteria)
        fields = tuple(self._field(field, exchanges, chunks, redactor)
                       for field in rubric.fields)
        return CallScoreResult(
            rubric_key=rubric.key,
            rubric_version=rubric.version,
            scorer=self.name,
            scorer_version=self.version,
            overall=_overall(criteria, rubric),
            criteria=criteria,
            fields=fields,
            model=self.llm.model,
            prompt_version=PROMPT_VERSION,
            usage=self._usage(exchanges, cached=cached is not None),
        )

    # Prompt ----------------------------------------------------------------------

    def _chunks(self, lines: list[_Line]) -> list[list[_Line]]:
        chunks: list[list[_Line]] = [[]]
        size = 0
        for line in lines:
            length = len(line.prompt) + 1
            if chunks[-1] and size + length > self.llm.chunk_chars:
                chunks.append([])
                size = 0
            chunks[-1].append(line)
            size += length
        return chunks

    def messages(self, chunk: list[_Line], rubric: Rubric, part: int, parts: int) -> list[dict]:
        """The chat messages for one part of a call."""
        scale = rubric.scale
        levels = "\n".join(f"  {level}: {text}" for level, text in sorted(scale.levels.items()))
        criteria = "\n".join(
            f"- {c.key} ({c.name}): {' '.join(c.good.split())}" for c in rubric.criteria)
        fields = "\n".join(f"- {f.key}: {f.label}" for f in rubric.fields) or "(none)"
        where = (f" (part {part} of {parts}; score only what this part shows)"
                 if parts > 1 else "")
        user = (
            f"Rubric: {rubric.name}. {' '.join(rubric.description.split())}\n\n"
            f"Scale: integers from {int(scale.min)} to {int(scale.max)}.\n{levels}\n\n"
            f"Criteria (key, name: what good looks like):\n{criteria}\n\n"
            f"Fields to extract:\n{fields}\n\n"
            f"Transcript{where}:\n" + "\n".join(line.prompt for line in chunk))
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user}]

    @staticmethod
    def schema(rubric: Rubric) -> dict:
        """The strict JSON schema of an answer for `rubric`."""
        def obj(properties: dict) -> dict:
            return {"type": "object", "additionalProperties": False,
                    "required": list(properties), "properties": properties}

        quotes = {"type": "array", "items": obj({"segment_id": {"type": "integer"},
                                                 "quote": {"type": "string"}})}
        confidence = {"type": "number", "minimum": 0, "maximum": 1}
        criterion = obj({
            "key": {"type": "string", "enum": [c.key for c in rubric.criteria]},
            "score": {"type": ["integer", "null"], "minimum": int(rubric.scale.min),
                      "maximum": int(rubric.scale.max)},
            "confidence": confidence, "rationale": {"type": "string"}, "quotes": quotes})
        field_keys = [f.key for f in rubric.fields]
        field = obj({  # an empty enum is invalid JSON Schema: a rubric may have no fields
            "key": {"type": "string", **({"enum": field_keys} if field_keys else {})},
            "status": {"type": "string", "enum": list(FIELD_STATUSES)},
            "value": {"type": ["string", "null"]}, "negative": {"type": "boolean"},
            "confidence": confidence, "quotes": quotes})
        return obj({"criteria": {"type": "array", "items": criterion},
                    "fields": {"type": "array", "items": field}})

    # Asking ------------------------------------------------------------------------

    def _get_client(self):
        if self._client is None:
            import httpx
            import openai

            bundle = self.settings.ca_bundle
            verify: Any = ssl.create_default_context(cafile=bundle) if bundle else True
            api_key = self.llm.api_key.get_secret_value() if self.llm.api_key else "unused"
            self._client = openai.OpenAI(
                base_url=self.llm.base_url, api_key=api_key, timeout=self.llm.timeout_s,
                max_retries=0,  # retries are ours: Retry-After caps, backoff, fallback
                http_client=httpx.Client(verify=verify, trust_env=False,
                                         timeout=self.llm.timeout_s))
        return self._client

    def _ask(self, chunk: list[_Line], rubric: Rubric, part: int, parts: int) -> _Exchange:
        """One chunk's validated answer: transient failures retried with backoff, a malformed
        or cut-off answer asked for once more."""
        from core.retry import call_with_retries

        messages = self.messages(chunk, rubric, part, parts)
        schema = self.schema(rubric)
        usage = [0, 0, 0]  # prompt tokens, completion tokens, requests
        for reask in range(2):
            try:  # transient failures waited out; a malformed answer is not one
                answer = call_with_retries(
                    lambda: self._request(messages, schema, usage), retries=self.llm.max_retries,
                    base=self.llm.backoff_s, cap=self.llm.retry_after_cap_s,
                    asked_cap=self.llm.retry_after_cap_s, sleep=self._sleep)
                self._validate(answer, rubric)
                return _Exchange(answer, *usage)
            except _BadAnswer as exc:
                if reask:
                    raise LlmFailure("the LLM's answer was unusable twice",
                                     detail=str(exc)) from None
                messages = messages[:2] + [{"role": "user",
                                            "content": RETRY_PROMPT.format(problem=exc)}]
        raise AssertionError("unreachable")

    def _request(self, messages: list[dict], schema: dict, usage: list[int]) -> dict:
        import openai

        client = self._get_client()
        usage[2] += 1
        kwargs: dict[str, Any] = {}
        if self.llm.seed is not None:
            kwargs["seed"] = self.llm.seed
        try:
            response = client.chat.completions.create(
                model=self.llm.model, messages=messages, temperature=self.llm.temperature,
                max_tokens=self.llm.max_tokens,
                response_format={"type": "json_schema", "json_schema": {
                    "name": "call_score", "strict": True, "schema": schema}},
                **kwargs)
        except openai.APIError as exc:
            raise _classified(exc) from None
        if response.usage is not None:
            usage[0] += response.usage.prompt_tokens
            usage[1] += response.usage.completion_tokens
        if not response.choices:
            raise _BadAnswer("empty (no choices)")
        choice = response.choices[0]
        if choice.finish_reason == "length":
            raise _BadAnswer("cut off at the token limit")
        try:
            return json.loads(choice.message.content or "")
        except ValueError:
            raise _BadAnswer("not valid JSON") from None

    @staticmethod
    def _validate(answer: Any, rubric: Rubric) -> None:
        """Check the answer's shape (as strict structured output promises, but not every
        OpenAI-compatible server keeps the promise)."""
        def check(ok: bool, problem: str) -> None:
            if not ok:
                raise _BadAnswer(f"not in the schema's shape ({problem})")

        check(isinstance(answer, dict), "not an object")
        low, high = rubric.scale.min, rubric.scale.max
        for section in ("criteria", "fields"):
            check(isinstance(answer.get(section), list), f"{section} is not a list")
            for item in answer[section]:
                check(isinstance(item, dict) and isinstance(item.get("key"), str),
                      f"an item of {section} has no key")
                conf = item.get("confidence")
                check(isinstance(conf, (int, float)) and 0 <= conf <= 1,
                      f"{item['key']}: confidence")
                check(isinstance(item.get("quotes"), list) and all(
                    isinstance(q, dict) and isinstance(q.get("segment_id"), int)
                    and isinstance(q.get("quote"), str) for q in item["quotes"]),
                    f"{item['key']}: quotes")
                if section == "criteria":
                    score = item.get("score")
                    check(score is None or (isinstance(score, (int, float))
                                            and low <= score <= high),
                          f"{item['key']}: score")
                else:
                    check(item.get("value") is None or isinstance(item["value"], str),
                          f"{item['key']}: value")
                    check(item.get("status") in FIELD_STATUSES, f"{item['key']}: status")
                    check(isinstance(item.get("negative", False), bool),
                          f"{item['key']}: negative")

    # Verification and merging --------------------------------------------------

    @staticmethod
    def _verify(quotes: list[dict], chunk: list[_Line]) -> tuple[list[Evidence], int]:
        """Evidence for the quotes that occur in the transcript, and how many were given."""
        by_id = {line.segment.id: line for line in chunk}
        evidence: list[Evidence] = []
        for item in quotes:
            named = by_id.get(item["segment_id"])
            found = _find(item["quote"], named) if named else None
            line = named
            if found is None:  # a wrong segment id: accept the one segment that has it
                elsewhere = [(other, text) for other in chunk if other is not named
                             and (text := _find(item["quote"], other)) is not None]
                if len(elsewhere) == 1:
                    line, found = elsewhere[0]
            if found:
                seg = line.segment
                ev = Evidence(quote=found, start=seg.start, end=seg.end, segment_id=seg.id)
                if ev not in evidence:
                    evidence.append(ev)
        return evidence, len(quotes)

    def _criterion(self, answer: dict, key: str, rubric: Rubric,
                   chunk: list[_Line]) -> CriterionResult:
        criterion = rubric.criterion(key)
        base = CriterionResult(key=key, skill=criterion.skill, score=None,
                               max_score=round(rubric.scale.max, 3),
                               weight=round(criterion.weight, 3), confidence=0.0,
                               rationale="", state="abstained")
        item = next((i for i in answer["criteria"] if i["key"] == key), None)
        if item is None:
            return replace(base, rationale="Not scored: the model did not assess it.")
        if item["score"] is None:
            why = item.get("rationale") or "the model could not judge it"
            return replace(base, rationale=f"Not scored: {why}")
        evidence, given = self._verify(item["quotes"], chunk)
        score = float(item["score"])
        if given and not evidence:
            return replace(base, state="unsupported",
                           rationale="Not scored: none of the quotes the model gave for it "
                                     "occur in the transcript.")
        if score > rubric.scale.min and not given:
            return replace(base, state="unsupported",
                           rationale=f"Not scored: the model gave a score of {score:g} without "
                                     f"quoting the transcript.")
        return replace(base, score=round(score, 3), confidence=round(float(item["confidence"]),
                                                                     3),
                       rationale=str(item.get("rationale") or ""), state="scored",
                       evidence=tuple(evidence[:MAX_EVIDENCE]))

    @staticmethod
    def _merge_criterion(key: str, rubric: Rubric,
                         parts: list[CriterionResult]) -> CriterionResult:
        scored = [p for p in parts if p.state == "scored"]
        if not scored:  # unsupported wins over abstained: it says something went wrong
            return next((p for p in parts if p.state == "unsupported"), parts[0])
        best = max(scored, key=lambda p: p.score)  # first of the equals: the earliest part
        evidence = list(best.evidence)
        for part in scored:
            evidence += [e for e in part.evidence if e not in evidence]
        return replace(best, evidence=tuple(evidence[:MAX_EVIDENCE]),
                       confidence=max(p.confidence for p in scored))

    def _field(self, field: MethodologyField, exchanges: list[_Exchange],
               chunks: list[list[_Line]], redactor: Redactor) -> FieldResult:
        """The field over the call's parts, merged in time order like a deal's calls."""
        parts = [self._field_part(field, exchange.answer, chunk, redactor)
                 for exchange, chunk in zip(exchanges, chunks, strict=True)]
        merged, _ = merge_in_order(parts, single_valued=field.single_valued)
        return merged

    def _field_part(self, field: MethodologyField, answer: dict, chunk: list[_Line],
                    redactor: Redactor) -> FieldResult:
        """One part's answer for `field` as a deal fact. A status without a verified quote is
        absent; a found value that is not distilled (a sentence, a person the call never
        names, a metric without a number) is ambiguous: it is shown, never written."""
        absent = FieldResult(key=field.key, label=field.label, value=None, confidence=0.0,
                             status=ABSENT)
        item = next((i for i in answer["fields"] if i["key"] == field.key), None)
        if item is None or item["status"] == ABSENT:
            return absent
        evidence, _ = self._verify(item["quotes"], chunk)
        if not evidence:
            return absent
        value = redactor.restore(item["value"]).strip() if item.get("value") else None
        negative = bool(item.get("negative"))
        if negative and not value:
            value = field.negative_value
        status = item["status"]
        if status == FOUND:
            source = " ".join(line.segment.text for line in chunk)
            problem = (distillation_problem(field, value, source, negative) if value
                       else "no value")
            if problem:
                log.info("LLM value for %s not written: %s", field.key, problem)
                status = AMBIGUOUS
        confidence = float(item["confidence"]) if status == FOUND else min(
            0.35, float(item["confidence"]))
        return FieldResult(key=field.key, label=field.label, value=value,
                           confidence=round(confidence, 3),
                           evidence=tuple(evidence[:MAX_EVIDENCE]), status=status,
                           negative=negative and status == FOUND)

    def _usage(self, exchanges: list[_Exchange], *, cached: bool) -> LlmUsage:
        prompt = sum(e.prompt_tokens for e in exchanges)
        completion = sum(e.completion_tokens for e in exchanges)
        prices = (self.llm.price_prompt_per_1k, self.llm.price_completion_per_1k)
        cost = None
        if any(p is not None for p in prices):
            cost = round(prompt / 1000 * (prices[0] or 0.0)
                         + completion / 1000 * (prices[1] or 0.0), 6)
        return LlmUsage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost,
                        requests=sum(e.requests for e in exchanges), cached=cached)

    # Cache -----------------------------------------------------------------------

    def _cache_key(self, chunks: list[list[_Line]], rubric: Rubric) -> str:
        # What is sent decides the answer: the redacted lines, split as they are sent.
        transcript = hashlib.sha256("\n\f\n".join(
            "\n".join(line.prompt for line in chunk) for chunk in chunks).encode()).hexdigest()
        parts = [transcript, rubric.key, rubric.version, self.llm.model or "", PROMPT_VERSION]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def _cache_get(self, key: str) -> list[dict] | None:
        from sqlalchemy.exc import SQLAlchemyError
        from sqlmodel import select

        from core.db import session_scope
        from core.models import LlmCache

        try:
            with session_scope() as session:
                row = session.exec(select(LlmCache).where(LlmCache.key == key)).first()
                return list(row.response["chunks"]) if row is not None else None
        except (SQLAlchemyError, KeyError, TypeError) as exc:
            log.warning("LLM cache unavailable (%s); asking the model", type(exc).__name__)
            return None

    def _cache_put(self, key: str, exchanges: list[_Exchange]) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from core.db import session_scope
        from core.models import LlmCache

        try:
            with session_scope() as session:
                session.add(LlmCache(
                    key=key, model=self.llm.model, prompt_version=PROMPT_VERSION,
                    response={"chunks": [e.answer for e in exchanges]},
                    prompt_tokens=sum(e.prompt_tokens for e in exchanges),
                    completion_tokens=sum(e.completion_tokens for e in exchanges)))
        except SQLAlchemyError as exc:  # a concurrent worker stored it first, or no table
            log.warning("could not cache the LLM answer (%s)", type(exc).__name__)


def _classified(exc: Exception) -> CoachloopError:
    """An `openai` exception as one of our errors (transient ones carry Retry-After)."""
    import openai

    status = getattr(exc, "status_code", None)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return TransientError("the LLM endpoint did not answer (timeout or connection error)",
                              detail=detail)
    if status == 429 or (status is not None and status >= 500) or status in (408, 409):
        return TransientError(f"the LLM endpoint is busy or failing (HTTP {status})",
                              retry_after=_retry_after(exc), detail=detail)
    if status in (401, 403):
        return ConfigError(f"the LLM endpoint refused the API key (HTTP {status}); check "
                           "COACHLOOP_LLM__API_KEY", detail=detail)
    return LlmFailure(f"the LLM endpoint rejected the request (HTTP {status})", detail=detail)


def _retry_after(exc: Exception) -> float | None:
    from core.retry import retry_after

    return retry_after(getattr(getattr(exc, "response", None), "headers", None) or {})
