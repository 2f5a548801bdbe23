"""How far a scorer agrees with careful human labels, and with itself.

A labelled set is a folder of YAML calls (`tests/calibration/calls/*.yaml`): the turns of a
transcript, and per methodology the 0–4 level a reviewer gave each criterion, plus the MEDDIC
field values they would enter in the CRM (or null). `calibrate` scores every call twice and
reports, per criterion: exact and within-one accuracy, Cohen's κ on found/absent (level ≥ 2 =
asked and answered), quadratically weighted κ on the levels, the found/absent confusion,
abstentions, and run-to-run agreement; the same for field values.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from core.domain import CallScoreResult, FieldResult, Role, TranscriptSegment, TranscriptView
from core.numbers import numbers_in
from core.errors import InputError
from core.redact import Redactor
from core.rubrics import Rubric

FOUND_AT = 2  # a criterion is "found" when asked and answered (the rubric's level 2)
NOT_LABELLED = "?"
UNKNOWN_SPEAKER = "unknown"  # a turn nobody could be credited with


@dataclass(frozen=True)
class LabelledCall:
    id: str
    title: str
    stage: str
    view: TranscriptView
    levels: dict[str, dict[str, int]]  # methodology → criterion → 0–4
    facts: dict[str, LabelledFact]  # methodology field → the reviewer's deal fact


@dataclass(frozen=True)
class LabelledFact:
    """A reviewer's deal fact (tests/calibration/FACTS.md): status, value, checkable terms."""

    status: str  # found | ambiguous | absent
    value: str | None = None
    terms: tuple[str, ...] = ()
    negative: bool = False
    three_way: bool = True  # False when only found/absent was labelled (older `fields:`)


def load_labelled_set(folder: str | Path) -> list[LabelledCall]:
    """Every call in `folder` (or its `calls/` subfolder), in file order."""
    folder = Path(folder)
    files = sorted((folder / "calls").glob("*.yaml")) or sorted(folder.glob("*.yaml"))
    if not files:
        raise InputError("no labelled calls (*.yaml) here", file=str(folder))
    return [_load_call(path, index) for index, path in enumerate(files)]


def _load_call(path: Path, index: int) -> LabelledCall:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        buyers = {b["name"]: b.get("email") for b in data.get("buyers", [])}
        rep = data["rep"]
        segments = []
        for number, turn in enumerate(data["turns"], start=1):
            speaker = turn["speaker"]
            if speaker not in ("rep", UNKNOWN_SPEAKER) and speaker not in buyers:
                raise InputError(f"turn {number}: unknown speaker {speaker!r}", file=str(path))
            if speaker == "rep":
                role, who, name = Role.REP, rep.get("email"), rep.get("name")
            elif speaker == UNKNOWN_SPEAKER:
                role, who, name = Role.UNKNOWN, None, None
            else:
                role, who, name = Role.BUYER, buyers[speaker] or speaker, speaker
            segments.append(TranscriptSegment(
                id=index * 10_000 + number, start=float(turn["start"]),
                end=float(turn["end"]), text=str(turn["text"]), role=role, speaker=who,
                attribution_confidence=0.0 if role is Role.UNKNOWN else 1.0, speaker_name=name))
        labels = data["labels"]
        # "?" is a label not given yet (an exported call being labelled): left out, not 0.
        levels = {m: {k: int(v) for k, v in labels[m].items() if v != NOT_LABELLED}
                  for m in labels if m not in ("fields", "notes")}
        return LabelledCall(str(data["id"]), str(data.get("title", "")),
                            str(data.get("stage", "other")),
                            TranscriptView(index, tuple(segments), "platform"), levels,
                            _labelled_facts(data))
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"not a labelled call ({type(exc).__name__}: {exc})",
                         file=str(path)) from None


def _labelled_facts(data: dict) -> dict[str, LabelledFact]:
    """The call's `facts:` labels; a set labelled before facts existed gives found/absent
    from its `labels.fields` values."""
    facts = data.get("facts")
    if facts:
        return {key: LabelledFact(str(f["status"]), f.get("value"),
                                  tuple(str(t) for t in f.get("terms") or ()),
                                  bool(f.get("negative")))
                for key, f in facts.items() if f.get("status") != NOT_LABELLED}
    return {key: LabelledFact("found" if value else "absent", value, three_way=False)
            for key, value in (data["labels"].get("fields") or {}).items()
            if value != NOT_LABELLED}


# ------------------------------------------------------------ labelling export ----


def labelling_document(call_id: str, title: str, stage: str | None, view: TranscriptView,
                       rubrics: list[Rubric], redactor: Redactor | None = None) -> dict:
    """One of your own calls in the labelled-set format, every label "?" for a reviewer to
    fill in, so `coachloop calibrate` can measure a scorer on your calls, not only ours."""
    rep_talk: dict[tuple[str, str], float] = {}
    buyers: dict[str, str | None] = {}
    turns = []
    for segment in view.segments:
        name = segment.speaker_name or segment.speaker or "buyer"
        if segment.role is Role.REP:
            key = (segment.speaker_name or "", segment.speaker or "")
            rep_talk[key] = rep_talk.get(key, 0.0) + segment.end - segment.start
            speaker = "rep"
        elif segment.role is Role.BUYER:
            buyers.setdefault(name, segment.speaker if segment.speaker != name else None)
            speaker = name
        else:
            speaker = UNKNOWN_SPEAKER
        text = redactor.redact(segment.text).text if redactor else segment.text
        turns.append({"speaker": speaker, "start": round(segment.start, 2),
                      "end": round(segment.end, 2), "text": text})
    rep_name, rep_email = max(rep_talk, key=rep_talk.get) if rep_talk else ("", "")
    labels: dict = {r.key: {c.key: NOT_LABELLED for c in r.criteria} for r in rubrics}
    labels["notes"] = ""
    facts = {f.key: {"status": NOT_LABELLED, "value": None, "terms": []}
             for r in rubrics for f in r.fields}
    return {"id": call_id, "title": title, "stage": stage or "other",
            "rep": {"name": rep_name, "email": rep_email},
            "buyers": [{"name": n, "email": e} for n, e in buyers.items()],
            "turns": turns, "labels": labels, "facts": facts}


def labelling_header(rubrics: list[Rubric]) -> str:
    """The comment on top of an exported call: how to label it, with each rubric's levels."""
    lines = ['A call exported for labelling. Replace every "?" under labels with the level',
             "you judge on the rubric's scale:"]
    scales: dict[tuple, list[str]] = {}
    for rubric in rubrics:
        scales.setdefault(tuple(sorted(rubric.scale.levels.items())), []).append(rubric.key)
    for levels, keys in scales.items():
        lines.append(f"  {', '.join(keys)}:")
        lines += [f"    {level}: {words}" for level, words in levels]
    lines += ["Under facts, give each field's status (found, ambiguous or absent) and, when",
              "found, the distilled value you would enter in the CRM and its terms (names,",
              "vendors, numbers in digits); see FACTS.md in coachloop's tests/calibration.",
              'Labels left at "?" are skipped.',
              "Then: coachloop calibrate THIS_FOLDER"]
    return "".join(f"# {line}\n" for line in lines)


# ----------------------------------------------------------------- statistics ----


def cohen_kappa(a: list[int], b: list[int], categories: list[int],
                weights: str | None = None) -> float | None:
    """Cohen's κ between two raters; `weights="quadratic"` for ordinal levels. None when
    undefined (both raters constant and equal)."""
    n = len(a)
    if n == 0:
        return None
    k = len(categories)
    index = {c: i for i, c in enumerate(categories)}
    observed = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        observed[index[x]][index[y]] += 1 / n
    row = [sum(observed[i]) for i in range(k)]
    col = [sum(observed[i][j] for i in range(k)) for j in range(k)]

    def weight(i: int, j: int) -> float:
        if weights == "quadratic":
            return ((i - j) / (k - 1)) ** 2 if k > 1 else 0.0
        return 0.0 if i == j else 1.0

    disagree_observed = sum(weight(i, j) * observed[i][j] for i in range(k) for j in range(k))
    disagree_expected = sum(weight(i, j) * row[i] * col[j] for i in range(k) for j in range(k))
    if disagree_expected == 0:
        return None
    return round(1 - disagree_observed / disagree_expected, 3)


@dataclass
class CriterionReport:
    methodology: str
    criterion: str
    n: int
    exact: float
    within_one: float
    kappa_found: float | None
    kappa_levels: float | None
    confusion: dict[str, int]  # tp, fp, fn, tn for found/absent
    abstained: float
    run_to_run: float
    label_found: int


@dataclass
class FactReport:
    """Agreement with the reviewers on one deal-fact field."""

    field: str
    n: int
    found_accuracy: float  # found vs not found agrees with the label
    status_accuracy: float | None  # found / ambiguous / absent agrees (three-way labels only)
    value_match: float | None  # where both found and the label has terms: all terms named
    value_n: int
    confusion: dict[str, int]  # "label→ours" counts over found / ambiguous / absent
    run_to_run: float
    person: bool = False  # the value is a person: value_match is the person-name match


@dataclass
class CalibrationReport:
    scorer: str
    scorer_version: str
    calls: int
    criteria: list[CriterionReport] = field(default_factory=list)
    facts: list[FactReport] = field(default_factory=list)
    pooled: dict[str, float | list[float] | None] = field(default_factory=dict)
    facts_pooled: dict[str, float | int | list[float] | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _confusion(truth: list[bool], predicted: list[bool]) -> dict[str, int]:
    pairs = list(zip(truth, predicted, strict=True))
    return {"tp": sum(t and p for t, p in pairs), "fp": sum(p and not t for t, p in pairs),
            "fn": sum(t and not p for t, p in pairs),
            "tn": sum(not t and not p for t, p in pairs)}


def calibrate(calls: list[LabelledCall], rubrics: dict[str, Rubric],
              score: Callable[[TranscriptView, Rubric], CallScoreResult]) -> CalibrationReport:
    """Score every call twice with `score` and compare with the labels and with itself."""
    runs: list[dict[tuple[str, str], CallScoreResult]] = []
    for _ in range(2):
        runs.append({(call.id, key): score(call.view, rubric)
                     for call in calls for key, rubric in rubrics.items()
                     if key in call.levels})
    first = next(iter(runs[0].values()))
    report = CalibrationReport(first.scorer, first.scorer_version, len(calls))
    by_call: dict[str, list[tuple[int, int]]] = {call.id: [] for call in calls}
    for key, rubric in rubrics.items():
        lo, hi = int(rubric.scale.min), int(rubric.scale.max)
        levels = list(range(lo, hi + 1))
        for criterion in rubric.criteria:
            truth, pred, again, abstained = [], [], [], 0
            for call in calls:
                label = call.levels.get(key, {}).get(criterion.key)
                if label is None:
                    continue
                results = [{c.key: c for c in run[(call.id, key)].criteria} for run in runs]
                got = [r.get(criterion.key) for r in results]
                values = [round(g.score) if g is not None and g.score is not None else lo
                          for g in got]
                abstained += got[0] is None or got[0].score is None
                truth.append(max(lo, min(hi, label)))
                pred.append(values[0])
                by_call[call.id].append((truth[-1], values[0]))
                again.append(values[0] == values[1])
            if not truth:
                continue
            found_t = [t >= FOUND_AT for t in truth]
            found_p = [p >= FOUND_AT for p in pred]
            n = len(truth)
            report.criteria.append(CriterionReport(
                key, criterion.key, n,
                exact=round(sum(t == p for t, p in zip(truth, pred, strict=True)) / n, 3),
                within_one=round(sum(abs(t - p) <= 1 for t, p in zip(truth, pred,
                                                                      strict=True)) / n, 3),
                kappa_found=cohen_kappa([int(x) for x in found_t], [int(x) for x in found_p],
                                        [0, 1]),
                kappa_levels=cohen_kappa(truth, pred, levels, weights="quadratic"),
                confusion=_confusion(found_t, found_p), abstained=round(abstained / n, 3),
                run_to_run=round(sum(again) / n, 3), label_found=sum(found_t)))
    pairs = [pair for labelled in by_call.values() for pair in labelled]
    if not pairs:
        raise InputError(f'none of these calls has a label yet: replace the "{NOT_LABELLED}" '
                         "under labels with the levels you judge")
    report.facts, report.facts_pooled = _fact_reports(calls, rubrics, runs)
    kappa_found, kappa_levels = _pooled_kappas(pairs)
    report.pooled = {
        "kappa_found": kappa_found,
        "kappa_levels": kappa_levels,
        "exact": round(sum(t == p for t, p in pairs) / len(pairs), 3),
        "found_accuracy": round(sum((t >= FOUND_AT) == (p >= FOUND_AT) for t, p in pairs)
                                / len(pairs), 3),
        "run_to_run": round(sum(c.run_to_run * c.n for c in report.criteria)
                            / sum(c.n for c in report.criteria), 3),
    }
    report.pooled.update(_bootstrap_intervals(list(by_call.values())))
    return report


POOLED_LEVELS = list(range(0, 5))  # every shipped methodology scores 0–4


def _pooled_kappas(pairs: list[tuple[int, int]]) -> tuple[float | None, float | None]:
    """κ on found/absent and quadratic κ on levels over (label, prediction) pairs."""
    truth, pred = [t for t, _ in pairs], [p for _, p in pairs]
    return (cohen_kappa([int(t >= FOUND_AT) for t in truth], [int(p >= FOUND_AT) for p in pred],
                        [0, 1]),
            cohen_kappa(truth, pred, POOLED_LEVELS, weights="quadratic"))


BOOTSTRAP_SAMPLES = 1000


def _bootstrap_intervals(per_call: list[list[tuple[int, int]]]) -> dict[str, list[float] | None]:
    """95% intervals for the pooled κs, resampling whole calls (a call's criteria are not
    independent of each other), with a fixed seed so the report is repeatable. With a few dozen
    calls they are wide, and the report should say so."""
    rng = random.Random(0)
    samples = [_pooled_kappas([pair for _ in per_call for pair in rng.choice(per_call)])
               for _ in range(BOOTSTRAP_SAMPLES)]
    return {"kappa_found_ci": _interval([found for found, _ in samples]),
            "kappa_levels_ci": _interval([levels for _, levels in samples])}


def _interval(values: list[float | None]) -> list[float] | None:
    known = sorted(v for v in values if v is not None)
    if len(known) < len(values) * 0.9:
        return None
    return [known[int(0.025 * len(known))], known[int(0.975 * len(known)) - 1]]


def _fact_reports(calls: list[LabelledCall], rubrics: dict[str, Rubric],
                  runs) -> tuple[list[FactReport], dict]:
    """Per field and pooled: found-vs-not and three-way status accuracy, value match (all the
    reviewer's terms named), person-name match, with 95% intervals resampling whole calls."""
    kinds = {f.key: (key, f.kind) for key, rubric in rubrics.items() for f in rubric.fields}
    per_call: list[list[tuple[str, LabelledFact, FieldResult, bool]]] = []
    for call in calls:
        rows = []
        for key, label in call.facts.items():
            if key not in kinds or (call.id, kinds[key][0]) not in runs[0]:
                continue
            ours = [{f.key: f for f in run[(call.id, kinds[key][0])].fields}.get(key)
                    for run in runs]
            if ours[0] is None:
                continue
            same = (ours[0].status, ours[0].value) == (ours[1].status, ours[1].value)
            rows.append((key, label, ours[0], same))
        per_call.append(rows)
    reports = []
    for key in [k for k in kinds if any(r[0] == k for rows in per_call for r in rows)]:
        rows = [r for rows in per_call for r in rows if r[0] == key]
        stats = _fact_stats(rows)
        confusion: dict[str, int] = {}
        for _, label, ours, _ in rows:
            name = f"{label.status}→{ours.status}"
            confusion[name] = confusion.get(name, 0) + 1
        reports.append(FactReport(key, len(rows), stats["found_accuracy"],
                                  stats["status_accuracy"], stats["value_match"],
                                  stats["value_n"], confusion,
                                  round(sum(r[3] for r in rows) / len(rows), 3),
                                  person=kinds[key][1] == "person"))
    every = [r for rows in per_call for r in rows]
    if not every:
        return reports, {}
    pooled: dict = dict(_fact_stats(every))
    people = [r for r in every if kinds[r[0]][1] == "person"]
    person = _fact_stats(people) if people else {}
    pooled["person_match"], pooled["person_n"] = person.get("value_match"), \
        person.get("value_n", 0)
    rng = random.Random(0)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES):
        drawn = [r for _ in per_call for r in rng.choice(per_call)]
        if drawn:
            stats = _fact_stats(drawn)
            stats["person_match"] = _fact_stats(
                [r for r in drawn if kinds[r[0]][1] == "person"]).get("value_match")
            samples.append(stats)
    for name in ("found_accuracy", "status_accuracy", "value_match", "person_match"):
        pooled[f"{name}_ci"] = _interval([s.get(name) for s in samples]) \
            if pooled.get(name) is not None else None
    return reports, pooled


_PERSON_FIELDS = {"economic_buyer", "champion", "authority"}


def _fact_stats(rows) -> dict:
    if not rows:
        return {"value_match": None, "value_n": 0}
    found = [(label.status == "found") == (ours.status == "found") for _, label, ours, _ in rows]
    three = [label.status == ours.status for _, label, ours, _ in rows if label.three_way]
    # A person value is judged on the principal person (the first term); other values on the
    # share of the reviewer's terms they name (a metrics label often lists several numbers).
    named = [terms_named(ours.value, label.terms[:1] if ours.key in _PERSON_FIELDS
                         else label.terms)
             for _, label, ours, _ in rows
             if label.status == "found" and ours.status == "found" and label.terms]
    return {"found_accuracy": round(sum(found) / len(found), 3),
            "status_accuracy": round(sum(three) / len(three), 3) if three else None,
            "value_match": round(sum(named) / len(named), 3) if named else None,
            "value_n": len(named)}


def terms_named(value: str | None, terms: tuple[str, ...]) -> float:
    """The share of the reviewer's checkable terms our value names: numbers compared as
    numbers however written ("$14K" names "14000"), a person by first or last name, other
    words case-insensitively."""
    if not value or not terms:
        return 0.0
    ours_numbers = numbers_in(value)
    words = {w.lower() for w in re.findall(r"[\w'&.-]+", value)}
    lowered = value.lower()
    named = 0
    for term in terms:
        wanted = numbers_in(term) if re.fullmatch(r"[\d.,$£€%kKmM ]+", term.strip()) else None
        if wanted:
            named += bool(wanted & ours_numbers)
        else:
            named += term.lower() in lowered or any(
                part.lower() in words for part in term.split() if len(part) > 2)
    return named / len(terms)
