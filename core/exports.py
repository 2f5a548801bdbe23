"""Exports for analysts: skills, call scores, deals and methodology fields as CSV or Parquet,
with a documented, versioned column schema, scoped like every other read.

`SCHEMAS` is the contract: column names, types and meanings per export, at
`SCHEMA_VERSION`. A change that renames, retypes or drops a column raises the version; adding
a column at the end does not. Parquet files carry `coachloop.schema` = "<kind>/<version>" in
their metadata; the API sends it as the `X-Coachloop-Schema` header.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from core.access import Scope, as_scope
from core.errors import InputError

SCHEMA_VERSION = 1
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string | int | float | bool | date | datetime
    meaning: str


def _c(name: str, type_: str, meaning: str) -> Column:
    return Column(name, type_, meaning)


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "skills": (
        _c("rep_email", "string", "the rep"),
        _c("skill", "string", "skill key (core/skill_taxonomy.py)"),
        _c("window_days", "int", "window length, days before as_of"),
        _c("as_of", "date", "the day the estimate is as of"),
        _c("n_calls", "int", "scored calls in the window"),
        _c("raw_mean", "float", "mean call score, 0–100"),
        _c("estimate", "float", "estimate shrunk toward the team for small samples, 0–100"),
        _c("interval_low", "float", "90 % interval, low"),
        _c("interval_high", "float", "90 % interval, high"),
        _c("percentile", "float", "percentile among peers with enough calls"),
        _c("slope_per_30d", "float", "trend, points per 30 days"),
        _c("state", "string", "ok | insufficient_data"),
    ),
    "scores": (
        _c("meeting_id", "int", "coachloop meeting id"),
        _c("meeting_external_id", "string", "the platform's id"),
        _c("started_at", "datetime", "when the call started (UTC)"),
        _c("rep_email", "string", "the rep scored"),
        _c("rubric", "string", "rubric key"),
        _c("criterion", "string", "criterion key"),
        _c("skill", "string", "the skill it feeds"),
        _c("score", "float", "points given (empty: abstained)"),
        _c("max_score", "float", "points possible"),
        _c("weight", "float", "weight within the skill"),
        _c("confidence", "float", "0–1"),
        _c("state", "string", "scored | abstained | unsupported | not_applicable"),
    ),
    "deals": (
        _c("deal_id", "int", "coachloop deal id"),
        _c("crm", "string", "where it comes from"),
        _c("crm_id", "string", "its id there"),
        _c("name", "string", "deal name"),
        _c("account", "string", "account / company"),
        _c("owner_email", "string", "owner, when a coachloop user"),
        _c("stage", "string", "stage label"),
        _c("amount", "float", "amount"),
        _c("close_date", "date", "close date"),
        _c("is_closed", "bool", "closed"),
        _c("is_won", "bool", "won"),
        _c("n_calls", "int", "calls linked to it"),
    ),
    "fields": (
        _c("meeting_id", "int", "coachloop meeting id"),
        _c("started_at", "datetime", "when the call started (UTC)"),
        _c("rep_email", "string", "the rep"),
        _c("rubric", "string", "methodology"),
        _c("field", "string", "methodology field key"),
        _c("status", "string", "found | ambiguous | absent"),
        _c("value", "string", "the distilled value (found and ambiguous)"),
        _c("confidence", "float", "0–1"),
        _c("negative", "bool", "a found 'none' (\"no other vendor\")"),
    ),
}


def _rows(session: Session, scope: Scope, kind: str) -> Iterator[tuple]:
    from core.models import (CallScore, CriterionScore, Deal, FieldExtraction, Meeting,
                             MeetingDeal, Rubric, SkillSnapshot, User)
    from sqlalchemy import func

    reps = scope.rep_ids
    if kind == "skills":
        yield from session.exec(
            select(User.email, SkillSnapshot.skill, SkillSnapshot.window_days,
                   SkillSnapshot.as_of, SkillSnapshot.n_calls, SkillSnapshot.raw_mean,
                   SkillSnapshot.shrunk, SkillSnapshot.interval_low,
                   SkillSnapshot.interval_high, SkillSnapshot.percentile,
                   SkillSnapshot.slope_per_30d, SkillSnapshot.state)
            .join(User, SkillSnapshot.rep_id == User.id)
            .where(SkillSnapshot.org_id == scope.org_id, scope.user_clause())
            .order_by(SkillSnapshot.as_of, User.email, SkillSnapshot.skill,
                      SkillSnapshot.window_days))
    elif kind == "scores":
        yield from session.exec(
            select(Meeting.id, Meeting.external_id, Meeting.started_at, User.email,
                   Rubric.key, CriterionScore.criterion, CriterionScore.skill,
                   CriterionScore.score, CriterionScore.max_score, CriterionScore.weight,
                   CriterionScore.confidence, CriterionScore.state)
            .join(CallScore, CriterionScore.call_score_id == CallScore.id)
            .join(Meeting, CallScore.meeting_id == Meeting.id)
            .join(Rubric, CallScore.rubric_id == Rubric.id)
            .join(User, CallScore.rep_id == User.id, isouter=True)
            .where(CallScore.org_id == scope.org_id,
                   *(() if reps is None else (CallScore.rep_id.in_(reps),)))
            .order_by(Meeting.started_at, Meeting.id, Rubric.key, CriterionScore.id))
    elif kind == "deals":
        calls = (select(MeetingDeal.deal_id, func.count(MeetingDeal.id).label("n"))
                 .group_by(MeetingDeal.deal_id).subquery())
        yield from session.exec(
            select(Deal.id, Deal.crm, Deal.external_id, Deal.name, Deal.account, User.email,
                   Deal.stage, Deal.amount, Deal.close_date, Deal.is_closed, Deal.is_won,
                   func.coalesce(calls.c.n, 0))
            .join(User, Deal.owner_id == User.id, isouter=True)
            .join(calls, calls.c.deal_id == Deal.id, isouter=True)
            .where(Deal.org_id == scope.org_id,
                   *(() if reps is None else (Deal.owner_id.in_(reps),)))
            .order_by(Deal.id))
    elif kind == "fields":
        yield from session.exec(
            select(Meeting.id, Meeting.started_at, User.email, Rubric.key,
                   FieldExtraction.field, FieldExtraction.status, FieldExtraction.value,
                   FieldExtraction.confidence, FieldExtraction.negative)
            .join(CallScore, FieldExtraction.call_score_id == CallScore.id)
            .join(Meeting, CallScore.meeting_id == Meeting.id)
            .join(Rubric, CallScore.rubric_id == Rubric.id)
            .join(User, CallScore.rep_id == User.id, isouter=True)
            .where(FieldExtraction.org_id == scope.org_id,
                   *(() if reps is None else (CallScore.rep_id.in_(reps),)))
            .order_by(Meeting.started_at, Meeting.id, Rubric.key, FieldExtraction.field))


def export_rows(session: Session, org: int | Scope, kind: str) -> list[dict[str, Any]]:
    """The rows of one export in scope, as dicts in the schema's column order."""
    if kind not in SCHEMAS:
        raise InputError(f"unknown export {kind!r} (exports: {', '.join(SCHEMAS)})")
    names = [c.name for c in SCHEMAS[kind]]
    return [dict(zip(names, row, strict=True)) for row in _rows(session, as_scope(org), kind)]


def schema_tag(kind: str) -> str:
    return f"{kind}/{SCHEMA_VERSION}"


def to_csv(kind: str, rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in SCHEMAS[kind]])
    for row in rows:
        writer.writerow([_text(row[c.name]) for c in SCHEMAS[kind]])
    return out.getvalue().encode()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_parquet(kind: str, rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(),
             "bool": pa.bool_(), "date": pa.date32(), "datetime": pa.timestamp("us", "UTC")}
    schema = pa.schema([pa.field(c.name, types[c.type]) for c in SCHEMAS[kind]],
                       metadata={"coachloop.schema": schema_tag(kind)})
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def render(kind: str, rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    return to_csv(kind, rows) if fmt == "csv" else to_parquet(kind, rows)
