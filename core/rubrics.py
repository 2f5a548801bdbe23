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
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InputError
from core.skill_taxonomy import SKILLS, skill_keys

BUILTIN_DIR = Path(__file__).parent / "methodologies"


class RubricError(InputError):
    """A rubric file is unreadable or invalid; the message names the file and line."""

    def __init__(self, message: str, *, file: str, line: int | None = None,
                 field: str | None = None, problems: tuple[str, ...] = ()):
        super().__init__(message, file=file, line=line, field=field)
        # Every problem found, each already "file:line [field]: message"; the first is `message`.
        self.problems = problems or (self.message,)
        if len(self.problems) > 1:
            self.message = "\n".join(self.problems)
            self.args = (self.message,)


class _LocatedError(ValueError):
    """A cross-item check failure that knows which node it is about (pydantic keeps it)."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__(message)
        self.loc = loc


# ------------------------------------------------------------------ phrases ----


@lru_cache(maxsize=None)
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
            raise _LocatedError(f"max ({self.max:g}) must be greater than min ({self.min:g})",
                                ("max",))
        for level in sorted(self.levels):
            if not self.min <= level <= self.max:
                raise _LocatedError(
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

    @model_validator(mode="after")
    def _check_skill(self) -> Criterion:
        if self.skill not in SKILLS:
            raise _LocatedError(
                f"unknown skill {self.skill!r}; known skills: {', '.join(skill_keys())}",
                ("skill",))
        return self

    def matches(self, kind: SignalKind, text: str) -> tuple[str, ...]:
        """The phrases of one signal list (`ask`, `answer`, ...) that `text` matches, in order."""
        return _matching(getattr(self, kind), text)


class MethodologyField(_Model):
    """A methodology field filled from the call, e.g. MEDDIC's Economic Buyer.

    `patterns` find a sentence that supports a value; `concrete` marks a sentence that
    carries the value itself (a title, an amount); `side` is who usually says it.
    """

    key: Key
    label: Text
    side: Literal["buyer", "rep"] = "buyer"
    patterns: tuple[Phrase, ...] = Field(min_length=1)
    concrete: tuple[Phrase, ...] = ()

    def matches(self, text: str) -> tuple[str, ...]:
        """The supporting patterns `text` matches, in file order."""
        return _matching(self.patterns, text)

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
                    raise _LocatedError(
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
                    raise _LocatedError(problem, ("criteria", index, "related", position))
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


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric file; RubricError names the file and line at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read rubric file ({exc})", file=str(path)) from None
    return parse_rubric(text, source=str(path))


def parse_rubric(text: str, *, source: str) -> Rubric:
    """Validate rubric YAML `text`; `source` (a path or a name) is used in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise RubricError(f"malformed YAML: {exc.problem or exc.context}", file=source,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise RubricError(f"malformed YAML: {exc}", file=source) from None
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise RubricError("a rubric file must be a mapping (key:, name:, criteria:, ...)",
                          file=source, line=line)
    _reject_duplicate_yaml_keys(root, source)
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        raise _rubric_error(exc, root, source) from None


@lru_cache(maxsize=None)
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


# ------------------------------------------------------ error → file and line ----


def _reject_duplicate_yaml_keys(node: yaml.Node, source: str) -> None:
    # PyYAML silently keeps the last of two equal keys; in a rubric that hides a mistake.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise RubricError(f"key {key_node.value!r} appears twice in this mapping",
                                      file=source, line=key_node.start_mark.line + 1,
                                      field=key_node.value)
                seen.add(key_node.value)
            _reject_duplicate_yaml_keys(value_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_yaml_keys(item, source)


def _rubric_error(exc: ValidationError, root: yaml.Node, source: str) -> RubricError:
    located = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _LocatedError):
            loc += cause.loc
        located.append((loc, error))
    problems: list[tuple[int, str, str]] = []
    for loc, error in located:
        # A list that is "too short" only because its bad item was dropped is not news.
        if any(len(other) > len(loc) and other[:len(loc)] == loc for other, _ in located):
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif error["type"] == "string_type" and isinstance(error.get("input"), bool):
            message += " (YAML reads an unquoted yes/no/on/off as true/false: quote it)"
        problems.append((_line_of(root, loc), _dotted(loc), message))
    problems.sort(key=lambda p: p[0])  # stable: equal lines keep pydantic's order
    line, field, message = problems[0]
    rendered = tuple(f"{source}:{ln} [{fld}]: {msg}" if fld else f"{source}:{ln}: {msg}"
                     for ln, fld, msg in problems)
    return RubricError(message, file=source, line=line, field=field or None, problems=rendered)


def _line_of(root: yaml.Node, loc: tuple[str | int, ...]) -> int:
    """1-based line of the deepest node `loc` reaches (a missing key: its parent mapping)."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    # Point at the key ("skill: foo"), which is where a person looks.
                    child, line = value_node, key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
