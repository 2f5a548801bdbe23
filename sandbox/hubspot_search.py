"""The filter engine behind the HubSpot sandbox's `POST /crm/v3/objects/{type}/search`.

HubSpot's request shape: `filterGroups` (OR of groups, AND of filters inside a group), each filter
`{propertyName, operator, value | values | highValue}`. Limits checked against the Aug 2024
changelog ("Expanded filtering capabilities"): at most 5 groups, 10 filters per group, 25 filters
in all. String comparisons are case-insensitive, as HubSpot's search index is; number, date and
datetime properties compare numerically (dates and datetimes as epoch milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")


class SearchError(ValueError):
    """A request HubSpot rejects with 400 VALIDATION_ERROR."""


@dataclass(frozen=True)
class Filter:
    """One parsed filter."""

    prop: str
    operator: str
    value: Any = None
    high: Any = None
    values: tuple = ()


def to_millis(value: Any) -> int | None:
    """Epoch milliseconds from epoch ms (int or digit string), `YYYY-MM-DD` or ISO-8601."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def parse(groups: Any, known: Callable[[str], str | None]) -> list[list[Filter]]:
    """Validate `filterGroups`; `known(name)` gives a property's type or None if unknown."""
    if groups is None:
        return []
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list")
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups ({len(groups)}). The maximum number of "
                          f"filter groups is {MAX_GROUPS}.")
    total = 0
    out: list[list[Filter]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise SearchError("Each filter group must have a filters list")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Too many filters in a filter group ({len(filters)}). The "
                              f"maximum number of filters per group is "
                              f"{MAX_FILTERS_PER_GROUP}.")
        total += len(filters)
        parsed = []
        for raw in filters:
            if not isinstance(raw, dict):
                raise SearchError("A filter must be an object")
            name, op = raw.get("propertyName"), raw.get("operator")
            if op not in OPERATORS:
                raise SearchError(f"Invalid filter operator {op!r}")
            if not isinstance(name, str) or known(name) is None:
                raise SearchError(f"There was a problem with the request: property {name!r} "
                                  "does not exist")
            if op in ("IN", "NOT_IN"):
                values = raw.get("values")
                if not isinstance(values, list) or not values:
                    raise SearchError(f"Operator {op} requires a non-empty values list")
                parsed.append(Filter(name, op, values=tuple(values)))
            elif op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                parsed.append(Filter(name, op))
            else:
                if raw.get("value") is None:
                    raise SearchError(f"Operator {op} requires a value")
                if op == "BETWEEN" and raw.get("highValue") is None:
                    raise SearchError("Operator BETWEEN requires a highValue")
                parsed.append(Filter(name, op, raw.get("value"), raw.get("highValue")))
        out.append(parsed)
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters ({total}). The maximum number of filters is "
                          f"{MAX_FILTERS}.")
    return out


def _scalar(kind: str, value: Any) -> Any:
    if kind in ("number",):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind in ("date", "datetime"):
        return to_millis(value)
    if kind == "bool":
        return str(value).lower()
    return str(value).lower()


def _matches(flt: Filter, kind: str, stored: str | None) -> bool:
    op = flt.operator
    present = stored is not None and stored != ""
    if op == "HAS_PROPERTY":
        return present
    if op == "NOT_HAS_PROPERTY":
        return not present
    if op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and not present:
        return True
    if not present:
        return False
    mine = _scalar(kind, stored)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(flt.value).lower()
        tokens = re.split(r"[^\w*@.-]+", str(stored).lower())
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
        hit = any(regex.match(t) for t in tokens) or (
            "*" not in pattern and pattern in str(stored).lower().split())
        return hit if op == "CONTAINS_TOKEN" else not hit
    if op in ("IN", "NOT_IN"):
        if kind == "enumeration":
            mine_set = set(str(stored).lower().split(";"))
            hit = any(str(v).lower() in mine_set for v in flt.values)
        else:
            hit = any(_scalar(kind, v) == mine for v in flt.values)
        return hit if op == "IN" else not hit
    other = _scalar(kind, flt.value)
    if mine is None or other is None:
        return op == "NEQ"
    if op == "EQ":
        return mine == other
    if op == "NEQ":
        return mine != other
    if op == "BETWEEN":
        high = _scalar(kind, flt.high)
        return high is not None and other <= mine <= high
    try:
        return {"LT": mine < other, "LTE": mine <= other, "GT": mine > other,
                "GTE": mine >= other}[op]
    except TypeError:
        return False


def matches(groups: list[list[Filter]], kind_of: Callable[[str], str],
            value_of: Callable[[str], str | None]) -> bool:
    """True when the record passes any group (all filters of a group); no groups: all pass."""
    if not groups:
        return True
    return any(all(_matches(f, kind_of(f.prop), value_of(f.prop)) for f in group)
               for group in groups)


def sort_key(kind: str, value: str | None) -> tuple:
    """Sort key for one property value: missing values sort last in ascending order."""
    if value is None or value == "":
        return (1, 0)
    scalar = _scalar(kind, value)
    if scalar is None:
        return (1, 0)
    return (0, scalar)
