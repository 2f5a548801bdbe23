r"""Rubrics (sales methodologies) as data: YAML files validated into pydantic models.

A rubric lists the criteria a call is scored on, each feeding one skill from
`core.skill_taxonomy`, with the phrase signals the built-in scorer looks for, plus the
methodology fields (MEDDIC's Economic Buyer, BANT's Budget, ...) extracted from a call.
Errors in a rubric file name the file and the line of the offending node.

Phrases are regular expressions matched case-insensitively as whole words: `sign[- ]?off`
matches "Sign-off" and "signoff" but not "signoffs". Write alternatives and optional parts
explicitly (`decision[- ]makers?`), and end numbers with `\w*` (`\$ ?\d[\d,.]*\w*`), since a
phrase may not stop in the middle of a word.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from core.skill_taxonomy import SKILLS, skill_keys
from core.yaml_models import LocatedError, YamlFileError, parse_yaml_model

BUILTIN_DIR = Path(__file__).parent / "methodologies"


class RubricError(YamlFileError):
    """A rubric file is unreadable or invalid; the message names the file and line."""


# ------------------------------------------------------------------ phrases ----


@cache
def compile_phrase(phrase: str) -> re.Pattern[str]:
    """Compile a rubric phrase: case-insensitive, anchored at word boundaries on both ends."""
    # Lookarounds rather than \b so phrases may start or end with "$", "%" or "?".
    return re.compile(rf"(?<!\w)(?:{phrase})(?!\w)", re.IGNORECASE)


def _check_phrase(phrase: str) -> str:
    if not phrase.strip():
        raise ValueError("phrase is empty")
    try:
        re.compile(phrase)  # alone, so the error position is the author's, not the wrapper's
        pattern = compile_phrase(phrase)
    except re.error as exc:
        raise ValueError(f"invalid regex {phrase!r}: {exc.msg} at position {exc.pos}") from None
    if pattern.search("") or pattern.search(" "):
        raise ValueError(f"regex {phrase!r} matches empty text, so it would match everywhere")
    return phrase


Phrase = Annotated[str, AfterValidator(_check_phrase)]
Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Text = Annotated[str, Field(min_length=1)]


SignalKind = Literal["ask", "answer", "reply", "confirm", "concrete"]
Stage = Literal["discovery", "demo", "pricing", "renewal", "other"]


def _matching(patterns: tuple[str, ...], text: str) -> tuple[str, ...]:
    return tuple(p for p in patterns if compile_phrase(p).search(text))


# ------------------------------------------------------------------- models ----


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scale(_Model):
    """The score range of every criterion, with optional words for each level."""

    min: float = 0
    max: float = 4
    levels: dict[int, Text] = {}

    @model_validator(mode="after")
    def _check_range(self) -> Scale:
        if self.max <= self.min:
            raise LocatedError(f"max ({self.max:g}) must be greater than min ({self.min:g})",
                                ("max",))
        for level in sorted(self.levels):
            if not self.min <= level <= self.max:
                raise LocatedError(
                    f"level {level} is outside the scale {self.min:g}–{self.max:g}",
                    ("levels", level))
        return self


class Criterion(_Model):
    """One thing a call is scored on, the skill it feeds, and the signals that reveal it.

    `ask`: rep questions that probe it; `answer`: buyer statements that supply it; `reply`:
    buyer statements that supply it only as the direct reply to one of its questions (a bare
    amount after a budget question); `confirm`: rep phrases that confirm or summarise it;
    `concrete`: what makes an answer concrete beyond numbers and dates (a job title, a named
    vendor); `related`: keys of neighbouring criteria whose questions often draw this one's
    answer, which then counts when it is concrete.
    """

    key: Key
    name: Text
    skill: str
    good: Text
    weight: float = Field(default=1.0, gt=0)
    ask: tuple[Phrase, ...] = Field(min_length=1)
    answer: tuple[Phrase, ...] = Field(min_length=1)
    reply: tuple[Phrase, ...] = ()
    confirm: tuple[Phrase, ...] = ()
    concrete: tuple[Phrase, ...] = ()
    related: tuple[Key, ...] = ()
    stages: tuple[Stage, ...] = ()  # the call stages it applies to; empty: every stage

    def applies_to(self, stage: str | None) -> bool:
        return not self.stages or stage is None or stage in self.stages

    @model_validator(mode="after")
    def _check_skill(self) -> Criterion:
        if self.skill not in SKILLS:
            raise LocatedError(
                f"unknown skill {self.skill!r}; known skills: {', '.join(skill_keys())}",
                ("skill",))
        return self

    def matches(self, kind: SignalKind, text: str) -> tuple[str, ...]:
        """The phrases of one signal list (`ask`, `answer`, ...) that `text` matches, in order."""
        return _matching(getattr(self, kind), text)


FactKind = Literal["person", "metric", "vendors", "money", "date", "steps", "list", "phrase"]


class MethodologyField(_Model):
    """A methodology field filled from the call, e.g. MEDDIC's Economic Buyer: a deal fact.

    `patterns` find a sentence about the field; `kind` says what its value is and so how it is
    distilled (a person's name and title, a number with its unit, vendor names, an amount, a
    date, process steps, a list, a short phrase); `negative` patterns state a clear "none"
    (`negative_value` is what is written then); `excludes` mark sentences that match a pattern
    but are about something else; `side` is who usually says it.
    """

    key: Key
    label: Text
    side: Literal["buyer", "rep"] = "buyer"
    kind: FactKind = "phrase"
    patterns: tuple[Phrase, ...] = Field(min_length=1)
    negative: tuple[Phrase, ...] = ()
    negative_value: str = "none"
    excludes: tuple[Phrase, ...] = ()
    concrete: tuple[Phrase, ...] = ()
    # The criterion whose questions ask for this field (default: the one with the same key).
    criterion: Key | None = None
    # Kept for rubric files written before `kind`: `person: true` is `kind: person`.
    person: bool = False

    @model_validator(mode="after")
    def _person_kind(self) -> MethodologyField:
        if self.person and self.kind == "phrase":
            object.__setattr__(self, "kind", "person")
        object.__setattr__(self, "person", self.kind == "person")
        return self

    def matches(self, text: str) -> tuple[str, ...]:
        """The topic patterns `text` matches, in file order."""
        return _matching(self.patterns, text)

    @property
    def single_valued(self) -> bool:
        """Whether the field holds one thing (a person, an amount, a date): two different
        values of it conflict, where two vendors or two pains add up."""
        return self.kind in ("person", "money", "date")

    def states_none(self, text: str) -> bool:
        """Whether `text` states a clear "none" for this field."""
        return bool(_matching(self.negative, text))

    def excluded(self, text: str) -> bool:
        """Whether `text` is about something else although it matches a pattern."""
        return bool(_matching(self.excludes, text))

    def is_concrete(self, text: str) -> bool:
        """Whether `text` matches one of the value-bearing phrases."""
        return bool(_matching(self.concrete, text))


class Rubric(_Model):
    """A methodology: criteria scored on `scale`, and fields extracted from the call."""

    key: Key
    name: Text
    description: Text
    scale: Scale = Scale()
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    fields: tuple[MethodologyField, ...] = ()

    @model_validator(mode="after")
    def _check_unique_keys(self) -> Rubric:
        for section, items in (("criteria", self.criteria), ("fields", self.fields)):
            seen: dict[str, int] = {}
            for index, item in enumerate(items):
                if item.key in seen:
                    raise LocatedError(
                        f"duplicate key {item.key!r} (first used by {section}[{seen[item.key]}])",
                        (section, index, "key"))
                seen[item.key] = index
        return self

    @model_validator(mode="after")
    def _check_related(self) -> Rubric:
        keys = [c.key for c in self.criteria]
        for index, criterion in enumerate(self.criteria):
            for position, key in enumerate(criterion.related):
                if key == criterion.key or key not in keys:
                    problem = ("a criterion cannot be related to itself" if key == criterion.key
                               else f"unknown criterion {key!r}; criteria: {', '.join(keys)}")
                    raise LocatedError(problem, ("criteria", index, "related", position))
        return self

    @property
    def version(self) -> str:
        """Content hash of the validated rubric: formatting and comments don't change it."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def criterion(self, key: str) -> Criterion:
        """The criterion called `key`; KeyError if there is none."""
        for criterion in self.criteria:
            if criterion.key == key:
                return criterion
        raise KeyError(key)


# ------------------------------------------------------------------ loading ----


class RubricExtension(_Model):
    """A rubric written as changes to another (`extends: meddic`): a variant or an org's fork.

    Criteria and fields with a base key replace the base's; new ones are added after them;
    `remove` drops base criteria or fields by key.
    """

    extends: Key
    key: Key
    name: Text | None = None
    description: Text | None = None
    scale: Scale | None = None
    criteria: tuple[Criterion, ...] = ()
    fields: tuple[MethodologyField, ...] = ()
    remove: tuple[Key, ...] = ()


def load_rubric(path: str | Path, search: tuple[Path, ...] = ()) -> Rubric:
    """Read and validate a rubric file; RubricError names the file and line at fault.
    `search`: folders where a rubric it `extends` may live (before the built-in ones)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read rubric file ({exc})", file=str(path)) from None
    return parse_rubric(text, source=str(path), search=(path.parent, *search))


def parse_rubric(text: str, *, source: str, search: tuple[Path, ...] = ()) -> Rubric:
    """Validate rubric YAML `text`; `source` (a path or a name) is used in error messages."""
    import yaml

    try:
        top = yaml.safe_load(text)
    except yaml.YAMLError:
        top = None  # parse_yaml_model reports it with its line
    if not (isinstance(top, dict) and "extends" in top):
        return parse_yaml_model(text, Rubric, source=source, error=RubricError,
                                shape="a rubric file must be a mapping (key:, name:, "
                                      "criteria:, ...)")
    child = parse_yaml_model(text, RubricExtension, source=source, error=RubricError)
    if child.extends == child.key:
        raise RubricError("a rubric cannot extend itself", file=source, field="extends")
    base = find_rubric(child.extends, search)
    merged = base.model_dump(mode="json")
    for name in ("key", "name", "description", "scale"):
        value = getattr(child, name)
        if value is not None:
            merged[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    for section in ("criteria", "fields"):
        items = [i for i in merged[section] if i["key"] not in child.remove]
        for item in getattr(child, section):
            dumped = item.model_dump(mode="json")
            position = next((n for n, i in enumerate(items) if i["key"] == item.key), None)
            if position is None:
                items.append(dumped)
            else:
                items[position] = dumped
        merged[section] = items
    unknown = set(child.remove) - {i.key for i in (*base.criteria, *base.fields)}
    if unknown:
        raise RubricError(f"remove: {', '.join(sorted(unknown))} not in {base.key}",
                          file=source, field="remove")
    try:
        return Rubric.model_validate(merged)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise RubricError(f"extending {base.key}: {problem['msg'].removeprefix('Value error, ')}",
                          file=source) from None


def rubric_search(settings) -> tuple[Path, ...]:
    """Where an org's own rubrics live, searched before the built-in ones: the configured
    folders, then the app's own (rubrics uploaded on the settings page)."""
    return (*settings.scoring.rubric_dirs, uploaded_rubrics(settings))


def uploaded_rubrics(settings) -> Path:
    return Path(settings.data_dir) / "rubrics"


def save_rubric(text: str, *, source: str, settings) -> Rubric:
    """Validate an uploaded rubric (RubricError names the line at fault) and keep it as
    `<key>.yaml` among the uploaded rubrics, replacing an earlier upload of that key."""
    rubric = parse_rubric(text, source=source, search=rubric_search(settings))
    folder = uploaded_rubrics(settings)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{rubric.key}.yaml.part"
    partial.write_text(text, encoding="utf-8")
    partial.replace(folder / f"{rubric.key}.yaml")  # the key is [a-z0-9_]: no path tricks
    return rubric


def find_rubric(key: str, search: tuple[Path, ...] = ()) -> Rubric:
    """The rubric `key`: `{key}.yaml` in the first `search` folder that has it (an org's own
    rubrics), else the built-in one."""
    for folder in search:
        path = Path(folder) / f"{key}.yaml"
        if path.is_file():
            rubric = load_rubric(path, tuple(f for f in search if f != Path(folder)))
            if rubric.key != key:
                raise RubricError(f"rubric key {rubric.key!r} does not match the file name",
                                  file=str(path))
            return rubric
    return builtin_rubric(key)


@cache
def builtin_rubric(key: str) -> Rubric:
    """One of the rubrics shipped in `core/methodologies`, by key (e.g. "meddic")."""
    if key not in list_builtin_rubrics():
        raise RubricError(f"no built-in rubric {key!r}; built-in rubrics: "
                          f"{', '.join(list_builtin_rubrics())}", file=str(BUILTIN_DIR))
    path = BUILTIN_DIR / f"{key}.yaml"
    rubric = load_rubric(path)
    if rubric.key != key:
        raise RubricError(f"rubric key {rubric.key!r} does not match the file name", file=str(path))
    return rubric


def list_builtin_rubrics() -> tuple[str, ...]:
    """Keys of the rubrics shipped with coachloop, sorted."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


# Measured for every call from its airtime (core.conversation), whatever the rubric.
ALWAYS_MEASURED = frozenset({"talk_listen_balance"})


def skills_scored_by(rubrics: list[Rubric]) -> set[str]:
    """The skills some criterion of `rubrics` feeds, plus those every call measures."""
    return {c.skill for rubric in rubrics for c in rubric.criteria} | ALWAYS_MEASURED


def builtin_rubrics_scoring(skill: str) -> tuple[str, ...]:
    """Keys of the built-in rubrics with a criterion that feeds `skill`."""
    return tuple(key for key in list_builtin_rubrics()
                 if any(c.skill == skill for c in builtin_rubric(key).criteria))
