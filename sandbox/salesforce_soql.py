"""The SOQL subset the Salesforce sandbox understands: a tokenizer, a parser and an evaluator.

SELECT fields (one-level relationships such as Account.Name, and COUNT()) FROM one object,
WHERE with =, !=, <>, <, >, <=, >=, IN, NOT IN, LIKE, AND, OR, NOT and parentheses, literals
('text', numbers, true/false, null, YYYY-MM-DD dates, ISO datetimes), ORDER BY (ASC/DESC,
NULLS FIRST/LAST), LIMIT and OFFSET. Anything else is a `SoqlError` (MALFORMED_QUERY).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable


class SoqlError(ValueError):
    """A query the sandbox cannot parse; served as 400 MALFORMED_QUERY."""


@dataclass(frozen=True)
class Literal:
    """A typed literal: kind is string, number, boolean, null, date or datetime."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Condition:
    """`field op literal`, `field [NOT] IN (...)` or `field LIKE 'pattern'`."""

    field: str
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    """AND / OR of two expressions, or NOT of one (right is None)."""

    op: str
    left: Any
    right: Any = None


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY term."""

    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed SOQL statement."""

    fields: tuple[str, ...]
    sobject: str
    where: Any = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int = 0
    count_only: bool = False
    text: str = field(default="", compare=False)


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w])
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.VERBOSE)

_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc",
             "desc", "nulls", "first", "last", "limit", "offset", "true", "false", "null",
             "count"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"',
            "\\": "\\", "%": "\\%", "_": "\\_"}


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SoqlError(f"unexpected token: '{text[pos:pos + 20]}'")
        pos = match.end()
        kind, raw = match.lastgroup, match.group()
        if kind == "ws":
            continue
        if kind == "string":
            out.append(("string", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)),
                                         raw[1:-1])))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            out.append(("kw", raw.lower()))
        else:
            out.append((kind, raw))
    out.append(("end", None))
    return out


def parse_datetime(raw: str) -> datetime:
    """An ISO / SOQL datetime literal (Z or ±hh:mm or ±hhmm) as an aware datetime."""
    raw = raw.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", raw):
        raw = raw[:-2] + ":" + raw[-2:]
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, Any]:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> tuple[str, Any]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        kind, value = self.peek()
        return kind == "kw" and value in words

    def expect_kw(self, word: str) -> None:
        kind, value = self.take()
        if kind != "kw" or value != word:
            raise SoqlError(f"unexpected token: '{value}', expected {word.upper()}")

    def name(self) -> str:
        kind, value = self.take()
        if kind != "name":
            raise SoqlError(f"unexpected token: '{value}'")
        return value

    def query(self) -> Query:
        self.expect_kw("select")
        fields: list[str] = []
        count_only = False
        if self.is_kw("count") and self.peek(1) == ("punct", "("):
            self.i += 2
            if self.take() != ("punct", ")"):
                raise SoqlError("only COUNT() without a field is supported")
            count_only = True
        else:
            fields.append(self.name())
            while self.peek() == ("punct", ","):
                self.take()
                fields.append(self.name())
        self.expect_kw("from")
        sobject = self.name()
        where = None
        if self.is_kw("where"):
            self.take()
            where = self.expr()
        order: list[OrderItem] = []
        if self.is_kw("order"):
            self.take()
            self.expect_kw("by")
            while True:
                fname = self.name()
                desc = False
                if self.is_kw("asc", "desc"):
                    desc = self.take()[1] == "desc"
                nulls_last = desc
                if self.is_kw("nulls"):
                    self.take()
                    kind, value = self.take()
                    if value not in ("first", "last"):
                        raise SoqlError(f"unexpected token: '{value}'")
                    nulls_last = value == "last"
                order.append(OrderItem(fname, desc, nulls_last))
                if self.peek() != ("punct", ","):
                    break
                self.take()
        limit, offset = None, 0
        if self.is_kw("limit"):
            self.take()
            limit = self.integer()
        if self.is_kw("offset"):
            self.take()
            offset = self.integer()
        kind, value = self.peek()
        if kind != "end":
            raise SoqlError(f"unexpected token: '{value}'")
        return Query(tuple(fields), sobject, where, tuple(order), limit, offset, count_only,
                     self.text)

    def integer(self) -> int:
        kind, value = self.take()
        if kind != "number" or not value.isdigit():
            raise SoqlError(f"unexpected token: '{value}', expected a non-negative integer")
        return int(value)

    def expr(self) -> Any:
        left = self.conjunction()
        while self.is_kw("or"):
            self.take()
            left = BoolOp("or", left, self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.unary()
        while self.is_kw("and"):
            self.take()
            left = BoolOp("and", left, self.unary())
        return left

    def unary(self) -> Any:
        if self.is_kw("not"):
            self.take()
            return BoolOp("not", self.unary())
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.expr()
            if self.take() != ("punct", ")"):
                raise SoqlError("expected ')'")
            return inner
        return self.condition()

    def condition(self) -> Condition:
        fname = self.name()
        kind, value = self.take()
        if kind == "op":
            return Condition(fname, "!=" if value == "<>" else value, self.literal())
        if kind == "kw" and value == "like":
            lit = self.literal()
            if lit.kind != "string":
                raise SoqlError("LIKE needs a string literal")
            return Condition(fname, "like", lit)
        negate = False
        if kind == "kw" and value == "not" and self.is_kw("in"):
            self.take()
            kind, value, negate = "kw", "in", True
        if kind == "kw" and value == "in":
            if self.take() != ("punct", "("):
                raise SoqlError("expected '(' after IN")
            values = [self.literal()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.literal())
            if self.take() != ("punct", ")"):
                raise SoqlError("expected ')' after IN list")
            return Condition(fname, "not in" if negate else "in", tuple(values))
        raise SoqlError(f"unexpected token: '{value}'")

    def literal(self) -> Literal:
        kind, value = self.take()
        if kind == "string":
            return Literal("string", value)
        if kind == "number":
            return Literal("number", float(value) if "." in value else int(value))
        if kind == "date":
            return Literal("date", date.fromisoformat(value))
        if kind == "datetime":
            return Literal("datetime", parse_datetime(value))
        if kind == "kw" and value in ("true", "false"):
            return Literal("boolean", value == "true")
        if kind == "kw" and value == "null":
            return Literal("null", None)
        raise SoqlError(f"unexpected token: '{value}'")


def parse(text: str) -> Query:
    """Parse one SOQL statement, or raise `SoqlError`."""
    return _Parser(text.strip()).query()


def conditions(expr: Any) -> list[Condition]:
    """Every Condition in a WHERE tree, for type checking against the schema."""
    if expr is None:
        return []
    if isinstance(expr, Condition):
        return [expr]
    return conditions(expr.left) + conditions(expr.right)


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return _norm(left) == _norm(right)
    if op == "!=":
        return _norm(left) != _norm(right)
    if left is None or right is None:
        return False
    left, right = _norm(left), _norm(right)
    try:
        return {"<": left < right, ">": left > right, "<=": left <= right,
                ">=": left >= right}[op]
    except TypeError:
        return False


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = ""
    for part in re.split(r"(\\%|\\_|%|_)", pattern):
        if part == "%":
            regex += ".*"
        elif part == "_":
            regex += "."
        elif part in ("\\%", "\\_"):
            regex += re.escape(part[1])
        else:
            regex += re.escape(part)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(expr: Any, get: Callable[[str], Any]) -> bool:
    """Whether a record (read through `get(field_path)`) satisfies a WHERE tree."""
    if expr is None:
        return True
    if isinstance(expr, BoolOp):
        if expr.op == "not":
            return not matches(expr.left, get)
        if expr.op == "and":
            return matches(expr.left, get) and matches(expr.right, get)
        return matches(expr.left, get) or matches(expr.right, get)
    value = get(expr.field)
    if expr.op == "like":
        return _like(value, expr.value.value)
    if expr.op in ("in", "not in"):
        found = any(_compare(value, "=", lit.value) for lit in expr.value)
        return found if expr.op == "in" else (not found and value is not None)
    return _compare(value, expr.op, expr.value.value)


def sort_key(item: OrderItem, value: Any) -> tuple:
    """A key for a stable sort with reverse=item.descending: nulls placed as asked, strings
    compared case-insensitively."""
    missing = value is None
    null_rank = 1 if item.nulls_last != item.descending else 0
    return (null_rank if missing else 1 - null_rank, 0 if missing else _norm(value))
