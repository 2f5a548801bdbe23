"""Scoring one call against one rubric: criterion scores with evidence, and field values.

`Scorer` is the contract; `BuiltinScorer` is the embedded default: offline, deterministic and
explainable. It reads the rubric's phrase signals sentence by sentence: what the rep asked
(only speech attributed to the rep), what the buyer answered (only speech attributed to the
buyer), whether the rep followed up and played the answer back. Speech of unknown origin is
never used, and when too little of the call is attributed the scorer abstains rather than
guess.
"""

from __future__ import annotations

import dataclasses
import json
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from core.domain import (
    CallScoreResult,
    CriterionResult,
    Evidence,
    FieldResult,
    Role,
    TranscriptSegment,
    TranscriptView,
)
from core.deal_facts import extract_facts
from core.rubrics import Criterion, Rubric
from core.text import AFFIRMATIVE, plain, sentences


@runtime_checkable
class Scorer(Protocol):
    """Scores a call's attributed transcript against a rubric."""

    name: str
    version: str

    def score(self, transcript: TranscriptView, rubric: Rubric) -> CallScoreResult:
        """Score every criterion of `rubric` and extract its fields from `transcript`."""
        ...


# ----------------------------------------------------------------- sentences ----

_FILLER = re.compile(
    r"^(?:(?:so|and|but|okay|ok|right|great|cool|nice|perfect|got it|gotcha|sure|yeah|yes|"
    r"um+|uh+|hmm+|well|now|also|then|just|actually|out of curiosity|quick question|"
    r"one more thing|and then)\b[,.!]?\s*)+",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(?:who|whom|whose|what|whats|when|where|why|how|which|is|are|was|were|do|does|did|"
    r"can|could|would|will|should|have|has|had)\b",
    re.IGNORECASE,
)
# Probing requests ("I'd love to understand what prompted this") ask as much as a question does.
_PROBE = re.compile(
    r"(?<!\w)(?:tell me|walk me through|talk me through|take me through|help me understand|"
    r"i'm curious|i am curious|curious (?:about|how|what|why|who|whether)|i wonder|"
    r"i was wondering|(?:i'd|i would) (?:love|like) to (?:hear|know|understand|learn))(?!\w)",
    re.IGNORECASE,
)
# Checks that put something to the buyer to verify ("Does that number hold up for you?").
_CHECK = (
    r"correct me if i'm wrong|did i get that right|is that (?:right|correct|fair)|"
    r"am i getting that right|sounds? about right|"
    r"(?:does|do) (?:that|this|those|these|the) (?:\w+ )?(?:match|hold up|add up|line up|"
    r"ring true|sound right|look right|check out)"
)
# Generic recap lead-ins and checks: a rep sentence with a criterion phrase, in a turn that has
# one of these, confirms that criterion.
_RECAP = re.compile(
    r"(?<!\w)(?:just to (?:confirm|make sure|recap|summari[sz]e|check|clarify)|"
    r"so if i (?:heard|understood|understand|got) (?:you|that|this|it)|"
    r"let me (?:make sure|play (?:that|this|it) back|recap|summari[sz]e|repeat)|"
    r"to (?:recap|summari[sz]e|sum up)|so what i'm hearing|what i'm hearing is|"
    r"if i'm hearing you|it sounds like|sounds like|so to confirm|i want to make sure i|"
    r"so the plan is|so:|(?:let me |to )?play (?:it|that|this|all of that|it all|that all) "
    r"back|quick recap|to make sure i (?:have|got) (?:this|it|that|everything) right|"
    rf"{_CHECK})(?!\w)",
    re.IGNORECASE,
)
_SO_RECAP = re.compile(
    r"^(?:(?:okay|ok|right|great|got it|perfect|understood)[,.!]?\s+)?so\b[,:]?\s*"
    r"(?!(?:what|how|who|when|where|why|which|is|are|do|does|did|can|could|would|will|"
    r"should|let|i'll|we'll|i will|we will|i'm going)\b)", re.IGNORECASE)
_CHECK_RE = re.compile(rf"(?<!\w)(?:{_CHECK})(?!\w)", re.IGNORECASE)
# Booking the next meeting ("Can we meet Tuesday at ten?") plays nothing back, even in a recap.
_SCHEDULING = re.compile(
    r"(?<!\w)(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|o'clock|"
    r"(?:book|schedule|set up|grab|put) (?:a |an |some |the )?(?:\w+ )?"
    r"(?:call|meeting|demo|session|slot|time on))(?!\w)",
    re.IGNORECASE,
)
# A buyer's short "yes" to a closed question answers what the question asked about.
_CLOSED_QUESTION = re.compile(
    r"^(?:is|are|was|were|do|does|did|can|could|would|will|should|have|has|had)\b",
    re.IGNORECASE,
)
# Numbers, amounts, percentages and dates make any answer concrete.
SUBSTANTIVE_WORDS = 6
_DODGE = re.compile(
    r"^\W*(?:(?:um|uh|well|honestly|so|hmm|yeah|oh)\W+)*(?:i (?:don'?t|do not) (?:know|"
    r"remember|have)|not sure|no idea|i'?d have to (?:check|ask|find out|look)|"
    r"let me (?:check|find out|get back|think)|i'?ll (?:ask|find out|check)|good question|"
    r"(?:i )?(?:can'?t|cannot) (?:really )?(?:say|share|tell|comment|disclose)|"
    r"not off the top of my head|"
    r"(?:i )?(?:have|had) no (?:idea|clue)|(?:i'?d )?rather not|that'?s (?:confidential|not "
    r"something|above my|not my)|hard to say|depends|no comment|pass)", re.IGNORECASE)
_QUANTITY = re.compile(
    r"\d|\$|%|(?<!\w)(?:percent|hundred|thousand|million|billion|half|double|twice|"
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|sixty|ninety)[- ]?\w* (?:hours?|days?|weeks?|months?|years?|"
    r"people|percent|minutes?)|"
    r"january|february|march|april|june|july|august|september|october|november|december|"
    r"q[1-4]|quarter|next (?:week|month|year))(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Sentence:
    """One sentence of an attributed segment: a verbatim quote plus a copy for matching."""

    position: int  # index of its segment in the call, for "within N segments" checks
    offset: int  # where the quote starts in the segment text
    segment: TranscriptSegment
    quote: str
    text: str
    is_question: bool
    in_recap: bool  # its speaker's turn plays something back ("So what I'm hearing is ...")
    in_check: bool  # ... and asks the buyer to verify it ("Does that match what you see?")

    @property
    def order(self) -> tuple[int, int]:
        return (self.position, self.offset)


def _turn_positions(segments: list[TranscriptSegment], usable,
                    cue: re.Pattern[str]) -> set[int]:
    """Positions of the segments in a speaker's turn where one segment has `cue`.

    A recap cue is often its own sentence, and speech recognition often cuts a turn into one
    segment per sentence, so the cue marks every segment of the turn.
    """
    out: set[int] = set()
    turn: list[int] = []
    cued = False
    for position, segment in enumerate(segments + [None]):
        same = (segment is not None and turn and usable(segment)
                and segment.role == segments[turn[-1]].role)
        if not same:
            if cued:
                out.update(turn)
            turn, cued = [], False
            if segment is None or not usable(segment):
                continue
        turn.append(position)
        cued = cued or bool(cue.search(plain(segment.text)))
    return out


def _sentences(position: int, segment: TranscriptSegment, in_recap: bool,
               in_check: bool) -> list[_Sentence]:
    out = []
    for offset, stripped in sentences(segment.text):
        text = plain(stripped)
        question = ("?" in text or bool(_QUESTION_START.match(_FILLER.sub("", text)))
                    or bool(_PROBE.search(text)))
        # "So both signatures, Dr. Patel and Mark." plays the buyer's words back too.
        recap = ((in_recap or (not question and bool(_SO_RECAP.match(text))))
                 and not _SCHEDULING.search(text))
        out.append(_Sentence(position, offset, segment, stripped, text, question, recap,
                             recap and in_check))
    return out


def _words(text: str) -> int:
    return len(text.split())


# ------------------------------------------------------------------ scoring ----


@dataclass(frozen=True)
class _Hit:
    """A sentence that signals a criterion, how strongly, and in what way."""

    sentence: _Sentence
    kind: str  # "answer" | "confirm" | "ask" for criteria; "value" for fields
    strength: float


@dataclass(frozen=True)
class BuiltinScorer:
    """The embedded default scorer: phrase signals from the rubric, no model, no network.

    Levels (mapped onto the rubric's scale): 0 nothing found; 1 touched on (the buyer
    volunteered it, or the rep asked without an answer); 2 asked and answered; 3 plus
    follow-up questions or a concrete answer; 4 plus the rep played it back to the buyer.
    """

    name: ClassVar[str] = "builtin"
    version: ClassVar[str] = "1.2.0"

    MIN_REP_WORDS: ClassVar[int] = 15
    MIN_COVERAGE: ClassVar[float] = 0.5  # share of the call's words attributed to rep or buyer
    MIN_ATTRIBUTION: ClassVar[float] = 0.3  # below this a segment's role is treated as unknown
    LINK_WINDOW: ClassVar[int] = 3  # an answer within this many segments of a question
    MAX_EVIDENCE: ClassVar[int] = 3
    TOP_LEVEL: ClassVar[int] = 4

    def score(self, transcript: TranscriptView, rubric: Rubric) -> CallScoreResult:
        """Score every criterion and extract every field; abstain when attribution is poor."""
        segments = sorted(transcript.segments, key=lambda s: (s.start, s.end, s.id))
        rep: list[_Sentence] = []
        buyer: list[_Sentence] = []
        recaps = _turn_positions(segments, self._usable, _RECAP)
        checks = _turn_positions(segments, self._usable, _CHECK_RE)
        for position, segment in enumerate(segments):
            if not self._usable(segment):
                continue
            sentences = _sentences(position, segment, position in recaps, position in checks)
            (rep if segment.role == Role.REP else buyer).extend(sentences)

        reason = self._abstain_reason(segments)
        if reason is None:
            baseline = _mean_attribution(s.segment for s in rep)
            replies = _Replies([s for s in rep if s.is_question], buyer, self.LINK_WINDOW)
            criteria = tuple(self._score_criterion(c, rubric, rep, buyer, baseline, replies)
                             for c in rubric.criteria)
        else:
            criteria = tuple(_abstained(c, rubric, reason) for c in rubric.criteria)
        # Deal facts are whatever the call established, whoever said it: never gated by how
        # much the rep spoke.
        fields = extract_facts(transcript, rubric)
        return CallScoreResult(
            rubric_key=rubric.key,
            rubric_version=rubric.version,
            scorer=self.name,
            scorer_version=self.version,
            overall=_overall(criteria, rubric),
            criteria=criteria,
            fields=fields,
            abstain_reason=reason,
        )

    def _usable(self, segment: TranscriptSegment) -> bool:
        return (segment.role in (Role.REP, Role.BUYER)
                and segment.attribution_confidence >= self.MIN_ATTRIBUTION)

    def _abstain_reason(self, segments: list[TranscriptSegment]) -> str | None:
        total = sum(_words(s.text) for s in segments)
        usable = [s for s in segments if self._usable(s)]
        rep_words = sum(_words(s.text) for s in usable if s.role == Role.REP)
        if total == 0:
            return "the transcript is empty"
        if rep_words == 0:
            return "no speech in this call is attributed to the rep"
        if rep_words < self.MIN_REP_WORDS:
            return (f"too little speech is attributed to the rep ({rep_words} words; "
                    f"at least {self.MIN_REP_WORDS} needed)")
        coverage = sum(_words(s.text) for s in usable) / total
        if coverage < self.MIN_COVERAGE:
            return (f"only {coverage:.0%} of the call's speech is attributed to the rep or the "
                    f"buyer (at least {self.MIN_COVERAGE:.0%} needed)")
        return None

    def _score_criterion(self, criterion: Criterion, rubric: Rubric, rep: list[_Sentence],
                         buyer: list[_Sentence], baseline: float,
                         replies: _Replies) -> CriterionResult:
        # Every lookup below is a set or a bisection, so scoring stays linear in the call's
        # length (a 10,000-cue transcript must not take minutes).
        answers = [s for s in buyer
                   if not s.is_question and criterion.matches("answer", s.text)]
        first_answer = answers[0].order if answers else None
        rep_questions = replies.questions
        asks: list[_Sentence] = []
        asked_keys: set[tuple[int, int]] = set()
        first_ask = [float("inf")]  # the earliest ask's position
        confirms: list[_Sentence] = []

        def ask(q: _Sentence) -> None:
            asks.append(q)
            asked_keys.add(q.order)
            first_ask[0] = min(first_ask[0], q.position)

        for s in rep:
            asked = bool(criterion.matches("ask", s.text))
            confirmed = bool(criterion.matches("confirm", s.text))
            recap = confirmed or (
                s.in_recap and (asked or bool(criterion.matches("answer", s.text))))
            # A recap only confirms something the buyer has already said.
            if recap and first_answer is not None and s.order > first_answer:
                confirms.append(s)
                # ... and a check in the criterion's words that the buyer says yes to ("Does
                # that number hold up for you?" - "It does.") was asked as well.
                if (asked or confirmed) and s.is_question and any(
                        _affirms(s, r) for r in replies.of(s)[:1]):
                    ask(s)
            elif asked or (recap and s.in_check):
                # A fact put to the buyer to check before they said it ("Sam told us it's forty
                # hours a month. Does that match what you see?") asks them about it.
                ask(s)

        # An answer given as the direct reply to a rep question was drawn by it, however the
        # question was worded ("What actually happens downstream?" - "We miss the window").
        for a in answers:
            if first_ask[0] < a.position or _DODGE.search(a.text):
                continue
            for q in replies.asked_just_before(a):
                if (q.order not in asked_keys and a in replies.of(q)[:2] and _is_open(q)
                        and not any(other.matches("ask", q.text) for other in rubric.criteria
                                    if other.key != criterion.key)):
                    ask(q)
                    break
        asks.sort(key=lambda q: q.position)
        ask_positions = [q.position for q in asks]

        def asked_before(a: _Sentence, within: int | None = None) -> bool:
            """Whether some ask comes before `a` (within `within` segments, when given)."""
            i = bisect_left(ask_positions, a.position)  # asks strictly before `a`
            return i > 0 and (within is None or a.position - ask_positions[i - 1] <= within)

        # The direct reply to a question may be too short to say the criterion's name: a bare
        # amount after "Do you have a budget in mind?", a "Yes" after "Is March still the date?".
        answer_keys = {a.order for a in answers}
        for q in asks:
            if not q.is_question:
                continue
            for i, r in enumerate(replies.of(q)):
                if r.order not in answer_keys and not r.is_question and (
                        criterion.matches("reply", r.text) or (i == 0 and _affirms(q, r))
                        or (i == 0 and _substantive(r))):
                    answers.append(r)
                    answer_keys.add(r.order)
        answers.sort(key=lambda a: a.order)

        # "I'd rather not get into budget yet" names the criterion but does not answer it.
        answered = [a for a in answers if asked_before(a) and not _DODGE.search(a.text)]
        answered_keys = {a.order for a in answered}
        # A clear, specific answer drawn by a question about a neighbouring criterion ("What
        # happens after Susan says yes?" - "Budgets lock on November 15th") answers this one.
        drawers: dict[tuple[int, int], tuple[_Sentence, Criterion]] = {}
        for q in rep_questions:
            for key in criterion.related:
                other = rubric.criterion(key)
                if other.matches("ask", q.text):
                    for r in replies.of(q):  # the last neighbour to draw it names it
                        drawers[r.order] = (q, other)
        drawn: list[tuple[_Sentence, _Sentence, Criterion]] = [
            (a, *drawers[a.order]) for a in answers
            if a.order not in answered_keys and a.order in drawers and _specific(criterion, a)]
        linked = [a for a in answered if asked_before(a, within=self.LINK_WINDOW)]
        questions = _distinct(q.text.lower() for q in asks if q.is_question)
        concrete = [a for a in answered
                    if criterion.matches("concrete", a.text) or _QUANTITY.search(a.text)]
        answered += [a for a, _, _ in drawn]
        linked += [a for a, _, _ in drawn]
        answered_keys |= {a.order for a, _, _ in drawn}
        concrete_keys = {a.order for a in concrete}

        if answered:
            level = 2 + int(len(questions) >= 2 or bool(concrete)) + int(bool(confirms))
        else:
            level = 1 if asks or answers else 0
        level = min(level, self.TOP_LEVEL)

        hits = [_hit(a, "answer", _answer_strength(criterion, a, ask_positions, answered_keys,
                                                   concrete_keys, self.LINK_WINDOW))
                for a in answers]
        hits += [_hit(c, "confirm", 0.85) for c in confirms]
        hits += [_hit(q, "ask", 0.75 if q.is_question else 0.4) for q in asks]
        hits += [_hit(q, "ask", 0.5) for q in _distinct(q for _, q, _ in drawn)
                 if q.order not in asked_keys]
        evidence_hits = _strongest(hits, self.MAX_EVIDENCE)

        confidence = {0: 0.6, 1: 0.5, 2: 0.65, 3: 0.75, 4: 0.85}[level]
        if level >= 2 and linked:
            confidence += 0.1
        if asks and not questions:
            confidence -= 0.1
        attribution = (_mean_attribution(h.sentence.segment for h in evidence_hits)
                       if evidence_hits else baseline)
        scale = rubric.scale
        return CriterionResult(
            key=criterion.key,
            skill=criterion.skill,
            score=round(scale.min + (scale.max - scale.min) * level / self.TOP_LEVEL, 3),
            max_score=round(scale.max, 3),
            weight=round(criterion.weight, 3),
            confidence=round(max(0.0, min(1.0, confidence * attribution)), 3),
            rationale=_rationale(criterion.name, level, asks, questions, answered, concrete,
                                 confirms, _distinct(other.name for _, _, other in drawn)),
            evidence=tuple(_evidence(h.sentence) for h in evidence_hits),
        )


def _answer_strength(criterion: Criterion, answer: _Sentence, ask_positions: list[int],
                     answered: set[tuple[int, int]], concrete: set[tuple[int, int]],
                     window: int) -> float:
    i = bisect_left(ask_positions, answer.position)  # the nearest ask before the answer
    gap = answer.position - ask_positions[i - 1] if i else None
    if gap is not None and gap <= window:
        strength = 0.9 - 0.03 * (gap - 1)  # the reply right after the question is best
    elif answer.order in answered:  # including one drawn by a neighbouring criterion's question
        strength = 0.8
    else:
        strength = 0.6  # volunteered: relevant, but not the rep's doing
    strength += 0.1 if answer.order in concrete else 0.0
    # Among equally placed answers, the one that says more about the criterion leads.
    return strength + 0.02 * min(len(criterion.matches("answer", answer.text)) - 1, 3)


class _Replies:
    """Which buyer sentences reply to which rep question: those within `window` segments
    after it and before the rep asks anything else. Found by bisection and remembered."""

    def __init__(self, questions: list[_Sentence], buyer: list[_Sentence], window: int):
        self.questions = questions
        self._question_positions = [q.position for q in questions]
        self._buyer = buyer
        self._buyer_positions = [s.position for s in buyer]
        self._window = window
        self._known: dict[tuple[int, int], list[_Sentence]] = {}

    def of(self, question: _Sentence) -> list[_Sentence]:
        key = question.order
        if key not in self._known:
            later = bisect_right(self._question_positions, question.position)
            until = question.position + self._window
            if later < len(self._question_positions):
                until = min(until, self._question_positions[later] - 1)
            lo = bisect_right(self._buyer_positions, question.position)
            hi = bisect_right(self._buyer_positions, until)
            self._known[key] = self._buyer[lo:hi]
        return self._known[key]

    def asked_just_before(self, answer: _Sentence) -> list[_Sentence]:
        """The rep questions whose replies may hold `answer`: those of the last segment with
        a rep question before it (an earlier one's replies end where that one begins)."""
        end = bisect_left(self._question_positions, answer.position)
        if end == 0:
            return []
        position = self._question_positions[end - 1]
        start = bisect_left(self._question_positions, position)
        return self.questions[start:end]


def _substantive(reply: _Sentence) -> bool:
    """Whether the buyer's first words after a question on the criterion answer it in
    substance: a real sentence, not a dodge ("I'd have to check", "not sure")."""
    return _words(reply.text) >= SUBSTANTIVE_WORDS and not _DODGE.search(reply.text)


_EMBEDDED_WH = re.compile(r"(?<!\w)(?:why|how|what|who|which|where)(?!\w)", re.IGNORECASE)


def _is_open(question: _Sentence) -> bool:
    """Whether a question invites more than yes or no ("Do you know why?" does)."""
    text = _FILLER.sub("", question.text)
    return not _CLOSED_QUESTION.match(text) or bool(_EMBEDDED_WH.search(text))


def _affirms(question: _Sentence, reply: _Sentence) -> bool:
    """Whether `reply` is a plain yes to `question`, a closed (yes/no) question."""
    return (bool(_CLOSED_QUESTION.match(_FILLER.sub("", question.text)))
            and bool(AFFIRMATIVE.match(reply.text)))


def _specific(criterion: Criterion, answer: _Sentence) -> bool:
    """Whether an answer states the criterion's fact itself (a date, a named vendor, ...)."""
    if criterion.concrete:
        return bool(criterion.matches("concrete", answer.text))
    return bool(_QUANTITY.search(answer.text))


def _hit(sentence: _Sentence, kind: str, signal: float) -> _Hit:
    """A hit whose strength also reflects how sure we are who said the sentence."""
    return _Hit(sentence, kind, signal * sentence.segment.attribution_confidence)


def _hit_rank(hit: _Hit) -> tuple[float, float, int, int]:
    # Strongest first; ties go to the earlier sentence so the order never depends on input order.
    return (-round(hit.strength, 6), hit.sentence.segment.start, hit.sentence.segment.id,
            hit.sentence.offset)


def _strongest(hits: list[_Hit], limit: int) -> list[_Hit]:
    """The strongest hits, best of each kind first so the evidence shows ask and answer."""
    ranked = sorted(hits, key=_hit_rank)
    leaders: list[_Hit] = []
    for kind in ("answer", "confirm", "ask"):
        leaders += [h for h in ranked if h.kind == kind][:1]
    ordered = sorted(leaders, key=_hit_rank) + [h for h in ranked if h not in leaders]
    picked: list[_Hit] = []
    seen: set[tuple[int, int]] = set()
    for hit in ordered:
        key = (hit.sentence.segment.id, hit.sentence.offset)
        if key not in seen:
            seen.add(key)
            picked.append(hit)
            if len(picked) == limit:
                break
    return picked


def _evidence(sentence: _Sentence) -> Evidence:
    segment = sentence.segment
    return Evidence(quote=sentence.quote, start=segment.start, end=segment.end,
                    segment_id=segment.id)


def _distinct(texts) -> list[str]:
    out: list[str] = []
    for text in texts:
        if text not in out:
            out.append(text)
    return out


def _mean_attribution(segments) -> float:
    by_id = {s.id: s.attribution_confidence for s in segments}
    return sum(by_id.values()) / len(by_id) if by_id else 0.0


def _rationale(name: str, level: int, asks: list[_Sentence], questions: list[str],
               answered: list[_Sentence], concrete: list[_Sentence],
               confirms: list[_Sentence], neighbours: list[str]) -> str:
    """One plain sentence saying what was found, in the words a manager would use."""
    played_back = ", and the rep played it back to confirm" if confirms else ""
    if level == 0:
        return f"Found no rep question about {name} and no buyer statement about it."
    if not answered and not asks:
        if confirms:
            return (f"The buyer brought up {name} unprompted and the rep played it back, but the "
                    f"rep never asked about it.")
        return f"The buyer brought up {name} unprompted, but the rep never asked about it."
    if not answered:
        if not questions:
            return f"The rep only mentioned {name} in passing and the buyer did not speak to it."
        n = len(questions)
        return (f"The rep asked about {name} ({n} question{'s' if n > 1 else ''}) but the buyer "
                f"did not answer it afterwards.")
    if not asks:
        return (f"The buyer spoke to {name} specifically when the rep asked about "
                f"{' and '.join(neighbours)}{played_back}.")
    text = f"The rep asked about {name}"
    if len(questions) >= 2:
        text += f" with {len(questions)} distinct questions"
    text += " and the buyer answered" + (" concretely" if concrete else "")
    return text + played_back + "."


def _abstained(criterion: Criterion, rubric: Rubric, reason: str) -> CriterionResult:
    return CriterionResult(
        key=criterion.key,
        skill=criterion.skill,
        score=None,
        max_score=round(rubric.scale.max, 3),
        weight=round(criterion.weight, 3),
        confidence=0.0,
        rationale=f"Not scored: {reason}.",
    )


def _overall(criteria: tuple[CriterionResult, ...], rubric: Rubric) -> float | None:
    scored = [c for c in criteria if c.score is not None]
    if not scored:
        return None
    span = rubric.scale.max - rubric.scale.min
    total = sum(c.weight * (c.score - rubric.scale.min) / span for c in scored)
    return round(100 * total / sum(c.weight for c in scored), 3)


# ------------------------------------------------------------- serialisation ----


def for_stage(result: CallScoreResult, rubric: Rubric, stage: str | None) -> CallScoreResult:
    """The result with criteria that do not belong to the call's stage set aside (not scored,
    and not counted in the overall), whichever scorer produced it."""
    from dataclasses import replace

    specs = {c.key: c for c in rubric.criteria}
    criteria = tuple(
        c if c.key not in specs or specs[c.key].applies_to(stage)
        else replace(c, score=None, confidence=1.0, evidence=(), state="not_applicable",
                     rationale=f"Not expected in a {stage} call.")
        for c in result.criteria)
    if criteria == result.criteria:
        return result
    return replace(result, criteria=criteria, overall=_overall(criteria, rubric))


def result_to_json(result: CallScoreResult) -> str:
    """Canonical JSON of a score (sorted keys, no spaces): equal results give equal bytes."""
    return json.dumps(dataclasses.asdict(result), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def result_from_json(text: str) -> CallScoreResult:
    """Rebuild a `CallScoreResult` from `result_to_json` output."""
    data = json.loads(text)

    def evidence(items: list[dict]) -> tuple[Evidence, ...]:
        return tuple(Evidence(**e) for e in items)

    return CallScoreResult(**{
        **data,
        "criteria": tuple(CriterionResult(**{**c, "evidence": evidence(c["evidence"])})
                          for c in data["criteria"]),
        "fields": tuple(FieldResult(**{**f, "evidence": evidence(f["evidence"])})
                        for f in data["fields"]),
    })
