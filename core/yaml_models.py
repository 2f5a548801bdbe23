"""YAML files validated into pydantic models, with errors that name the file and the line.

Rubrics and CRM mappings are both written by people in YAML; a mistake should come back as
"file:line [field]: what is wrong", every problem at once, never as a pydantic dump.
"""

from __future__ import annotations

from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import InputError

Model = TypeVar("Model", bound=BaseModel)


class YamlFileError(InputError):
    """A YAML file is unreadable or invalid; the message names the file and line."""

    def __init__(self, message: str, *, file: str, line: int | None = None,
                 field: str | None = None, problems: tuple[str, ...] = ()):
        super().__init__(message, file=file, line=line, field=field)
        # Every problem found, each already "file:line [field]: message"; the first is `message`.
        self.problems = problems or (self.message,)
        if len(self.problems) > 1:
            self.message = "\n".join(self.problems)
            self.args = (self.message,)


class LocatedError(ValueError):
    """A cross-item check failure that knows which node it is about (pydantic keeps it)."""

    def __init__(self, message: str, loc: tuple[str | int, ...]):
        super().__init__(message)
        self.loc = loc


def parse_yaml_model(text: str, model: type[Model], *, source: str,
                     error: type[YamlFileError] = YamlFileError,
                     shape: str = "the file must be a mapping") -> Model:
    """Parse `text` as YAML and validate it into `model`; `error` names file and line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(f"malformed YAML: {exc.problem or exc.context}", file=source,
                    line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise error(f"malformed YAML: {exc}", file=source) from None
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise error(shape, file=source, line=line)
    _reject_duplicate_keys(root, source, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, root, source, error) from None


def _reject_duplicate_keys(node: yaml.Node, source: str, error: type[YamlFileError]) -> None:
    # PyYAML silently keeps the last of two equal keys; in a hand-written file that hides a
    # mistake.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise error(f"key {key_node.value!r} appears twice in this mapping",
                                file=source, line=key_node.start_mark.line + 1,
                                field=key_node.value)
                seen.add(key_node.value)
            _reject_duplicate_keys(value_node, source, error)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source, error)


def _located(exc: ValidationError, root: yaml.Node, source: str,
             error: type[YamlFileError]) -> YamlFileError:
    located = []
    for problem in exc.errors():
        loc = tuple(problem["loc"])
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, LocatedError):
            loc += cause.loc
        located.append((loc, problem))
    problems: list[tuple[int, str, str]] = []
    for loc, problem in located:
        # A list that is "too short" only because its bad item was dropped is not news.
        if any(len(other) > len(loc) and other[:len(loc)] == loc for other, _ in located):
            continue
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling)"
        elif problem["type"] == "string_type" and isinstance(problem.get("input"), bool):
            message += " (YAML reads an unquoted yes/no/on/off as true/false: quote it)"
        problems.append((line_of(root, loc), _dotted(loc), message))
    problems.sort(key=lambda p: p[0])  # stable: equal lines keep pydantic's order
    line, field, message = problems[0]
    rendered = tuple(f"{source}:{ln} [{fld}]: {msg}" if fld else f"{source}:{ln}: {msg}"
                     for ln, fld, msg in problems)
    return error(message, file=source, line=line, field=field or None, problems=rendered)


def line_of(root: yaml.Node, loc: tuple[str | int, ...]) -> int:
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
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
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
