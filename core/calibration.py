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

from core.domain import CallScoreResult, Role, TranscriptSegment, TranscriptView
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
    fields: dict[str, str | None]  # MEDDIC field → value or None


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
        fields = {k: v for k, v in (labels.get("fields") or {}).items() if v != NOT_LABELLED}
        return LabelledCall(str(data["id"]), str(data.get("title", "")),
                            str(data.get("stage", "other")),
                            TranscriptView(index, tuple(segments), "platform"), levels, fields)
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"not a labelled call ({type(exc).__name__}: {exc})",
                         file=str(path)) from None


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
    meddic = next((r for r in rubrics if r.key == "meddic"), None)
    labels["fields"] = {f.key: NOT_LABELLED for f in meddic.fields} if meddic else {}
    labels["notes"] = ""
    return {"id": call_id, "title": title, "stage": stage or "other",
            "rep": {"name": rep_name, "email": rep_email},
            "buyers": [{"name": n, "email": e} for n, e in buyers.items()],
            "turns": turns, "labels": labels}


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
    lines += ["Under fields, write what you would enter in the CRM, or null when the call does",
              'not establish it. Labels left at "?" are skipped.',
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
class FieldReport:
    field: str
    n: int
    agreement: float  # found/absent agrees with the label
    kappa: float | None
    confusion: dict[str, int]
    run_to_run: float
    # Where both filled the field and the reviewer's value names something checkable (a
    # person, a product, a number): the share of our values that name one of those too.
    key_terms: float | None = None
    key_terms_n: int = 0


@dataclass
class CalibrationReport:
    scorer: str
    scorer_version: str
    calls: int
    criteria: list[CriterionReport] = field(default_factory=list)
    fields: list[FieldReport] = field(default_factory=list)
    pooled: dict[str, float | list[float] | None] = field(default_factory=dict)

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
    if "meddic" in rubrics:
        report.fields = _field_reports(calls, runs)
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


def _field_reports(calls: list[LabelledCall], runs) -> list[FieldReport]:
    out = []
    keys = sorted({k for call in calls for k in call.fields})
    for key in keys:
        truth, pred, again, named = [], [], [], []
        for call in calls:
            if key not in call.fields or (call.id, "meddic") not in runs[0]:
                continue
            values = [{f.key: f.value for f in run[(call.id, "meddic")].fields}.get(key)
                      for run in runs]
            truth.append(call.fields[key] is not None)
            pred.append(values[0] is not None)
            again.append(values[0] == values[1])
            terms = _key_terms(call.fields[key] or "")
            if values[0] is not None and terms:
                named.append(bool(terms & _words_and_numbers(values[0])))
        if not truth:
            continue
        n = len(truth)
        out.append(FieldReport(key, n, round(sum(t == p for t, p in zip(truth, pred,
                                                                        strict=True)) / n, 3),
                               cohen_kappa([int(x) for x in truth], [int(x) for x in pred],
                                           [0, 1]),
                               _confusion(truth, pred), round(sum(again) / n, 3),
                               round(sum(named) / len(named), 3) if named else None,
                               len(named)))
    return out


_UNITS = {w: i for i, w in enumerate("""zero one two three four five six seven eight nine ten
    eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen""".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "k": 1000, "million": 1_000_000, "m": 1_000_000}


def _numbers(text: str) -> set[str]:
    """Every number in `text`, spoken ("eighty-two", "two hundred") or written ("3,000",
    "$40k"), as digits; a scaled amount also as its leading figure (40k: 40000 and 40)."""
    out: set[str] = set()
    for figure, scale in re.findall(r"(\d[\d,]*(?:\.\d+)?)\s*(k|m|thousand|million)?\b",
                                    text, re.IGNORECASE):
        figure = figure.replace(",", "").rstrip(".")
        out.add(figure)
        if scale:
            out.add(str(round(float(figure) * _SCALES[scale.lower()])))
    value, current, seen = 0, 0, False
    for word in re.findall(r"[a-z]+", text.lower()) + ["."]:
        if word in _UNITS or word in _TENS:
            current += _UNITS.get(word, 0) + _TENS.get(word, 0)
            seen = True
        elif word in _SCALES and seen and word not in ("k", "m"):
            out.add(str(current))
            value += (current or 1) * _SCALES[word]
            current = 0
        elif seen:
            out.update({str(value + current), str(current)} - {"0"})
            value, current, seen = 0, 0, False
    return out


def _words_and_numbers(text: str) -> set[str]:
    """Every word of `text`, lower-cased, and every number as digits: where a reviewer's key
    terms are looked up."""
    return {w.lower() for w in re.findall(r"[A-Za-z][\w'&-]*\w|[A-Za-z]", text)} | _numbers(text)


def _key_terms(text: str) -> set[str]:
    """The checkable words of a reviewer's value, lower-cased: names and products
    (capitalised, but not the first word of a clause), acronyms, and numbers as digits."""
    names = {w.lower() for clause in re.split(r"[;:(]|\s[-–>]+\s", text)
             for w in re.findall(r"[A-Za-z][\w'&-]*\w", clause)[1:]
             if w[0].isupper() and w.lower() not in _COMMON}
    return names | _numbers(text)


# Capitalised words in a reviewer's value that name nothing checkable.
_COMMON = frozenset("""a an the and or but no not none some any all our their his her its my
    we they he she it i if in on at to for of by with from as is are was were be will would
    can could may might must should has have had do does did so than then also only about
    around under over up down off out new old current other another both each every per via
    yes maybe probably likely unclear tbd n/a""".split())
