"""Reading the folder's YAML and JSON files so that every error points at a file, line and field."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import InputError

Model = TypeVar("Model", bound=BaseModel)
Loc = Sequence[str | int]

# Pydantic error types whose message already says everything; others get the input appended.
_SELF_EXPLAINING = {"missing", "extra_forbidden", "value_error"}


@dataclass(frozen=True)
class FieldError:
    """One problem in a document: the dotted field path (None: the whole file) and line."""

    field: str | None
    message: str
    line: int | None = None


@dataclass(frozen=True)
class Document:
    """A parsed YAML or JSON file and the node tree that says where each value sits."""

    path: Path
    data: Any
    root: yaml.Node | None  # None when positions are unknown

    @classmethod
    def read(cls, path: Path) -> Document:
        """Read and parse `path`; `InputError` when it cannot be read or parsed."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}", file=str(path)) from exc
        return cls.parse(path, raw)

    @classmethod
    def parse(cls, path: Path, raw: bytes) -> Document:
        """Parse `raw` (the bytes of `path`) as JSON for `.json` files, YAML otherwise.

        Raises `InputError` with the line for undecodable text, syntax errors and duplicate
        keys (which YAML and JSON parsers otherwise resolve silently to the last one).
        """
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError("the file is not UTF-8 text", file=str(path),
                             line=raw.count(b"\n", 0, exc.start) + 1) from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", file=str(path),
                                 line=exc.lineno) from None
            try:
                # JSON is (nearly) a subset of YAML, so the YAML composer can tell us lines.
                root, _ = _load_yaml(text)
            except yaml.YAMLError:
                root = None
        else:
            try:
                root, data = _load_yaml(text)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or exc.context_mark
                raise InputError(f"invalid YAML: {exc.problem or exc.context}", file=str(path),
                                 line=mark.line + 1 if mark else None) from None
            except yaml.YAMLError as exc:
                raise InputError(f"invalid YAML: {exc}", file=str(path)) from None
        if root is not None:
            _reject_duplicate_keys(path, root, ())
        return cls(path, data, root)

    def validate(self, model: type[Model]) -> tuple[Model | None, list[FieldError]]:
        """Validate the whole document against `model`: the model, or every problem found."""
        if self.data is None:
            return None, [FieldError(None, "the file is empty")]
        if not isinstance(self.data, dict):
            return None, [FieldError(None, "expected a mapping of fields at the top level, "
                                           f"found {_kind(self.data)}", self.line_of(()))]
        try:
            return model.model_validate(self.data), []
        except ValidationError as exc:
            return None, [self.error(err["loc"], _message(err)) for err in exc.errors()]

    def error(self, loc: Loc, message: str) -> FieldError:
        """A `FieldError` for the value at `loc`, with its line when known."""
        return FieldError(".".join(str(part) for part in loc) or None, message,
                          self.line_of(loc))

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the deepest part of `loc` present in the file, if any is."""
        node, line = self.root, None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                entry = next(((key, value) for key, value in node.value
                              if isinstance(key, yaml.ScalarNode) and key.value == str(part)),
                             None)
                if entry is None:
                    break
                line = entry[0].start_mark.line + 1
                node = entry[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        if not loc and node is not None:
            return node.start_mark.line + 1
        return line


def single_file(folder: Path, names: Sequence[str]) -> Path | None:
    """The one file in `folder` named one of `names` (spellings of one file), if any."""
    found = [folder / name for name in names if (folder / name).is_file()]
    if len(found) > 1:
        raise InputError(f"both {' and '.join(p.name for p in found)} exist; keep one",
                         file=str(folder))
    return found[0] if found else None


def input_error(path: Path, errors: list[FieldError]) -> InputError:
    """One `InputError` for a file's problems: the first in the message, all in the detail."""
    first = errors[0]
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    detail = "\n".join(f"{path}:{e.line or '?'} [{e.field or '-'}] {e.message}" for e in errors)
    return InputError(first.message + suffix, file=str(path), field=first.field,
                      line=first.line, detail=detail)


def _load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _reject_duplicate_keys(path: Path, node: yaml.Node, loc: tuple[str, ...],
                           visited: set[int] | None = None) -> None:
    visited = set() if visited is None else visited
    if id(node) in visited:  # an alias to a node already checked (or to itself)
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise InputError(f"duplicate key '{key.value}'", file=str(path),
                                     field=".".join((*loc, key.value)),
                                     line=key.start_mark.line + 1)
                seen.add(key.value)
            _reject_duplicate_keys(path, value, (*loc, str(key.value)), visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _reject_duplicate_keys(path, item, (*loc, str(index)), visited)


def _message(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] not in _SELF_EXPLAINING and isinstance(error.get("input"),
                                                             str | int | float | bool):
        message += f" (got {error['input']!r})"
    return message


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), type(value).__name__)
