"""Analyst exports: every kind as CSV and Parquet with the documented columns, the rows the
database holds, and only the rows in the caller's scope."""

from __future__ import annotations

import csv
import io
from datetime import date

import pyarrow.parquet as pq
import pytest
from sqlmodel import func, select

from core.exports import SCHEMAS, export_rows, render
from tests.conftest import scored_demo_org


@pytest.fixture
def org_id(sqlite_database, tmp_path):
    return scored_demo_org(tmp_path / "calls", date(2026, 11, 20))


def counts():
    from core.db import session_scope
    from core.models import CriterionScore, Deal, FieldExtraction, SkillSnapshot

    with session_scope() as session:
        return {kind: session.exec(select(func.count(model.id))).one()
                for kind, model in (("skills", SkillSnapshot), ("scores", CriterionScore),
                                    ("deals", Deal), ("fields", FieldExtraction))}


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_export_as_csv_and_parquet(org_id, kind):
    from core.db import session_scope

    with session_scope() as session:
        rows = export_rows(session, org_id, kind)
    assert len(rows) == counts()[kind] > 0
    names = [c.name for c in SCHEMAS[kind]]
    table = list(csv.reader(io.StringIO(render(kind, rows, "csv").decode())))
    assert table[0] == names and len(table) == len(rows) + 1
    parquet = pq.read_table(io.BytesIO(render(kind, rows, "parquet")))
    assert parquet.schema.names == names and parquet.num_rows == len(rows)
    assert parquet.schema.metadata[b"coachloop.schema"] == f"{kind}/1".encode()
    # The same values both ways (CSV as text).
    first = parquet.slice(0, 1).to_pylist()[0]
    for name, text in zip(names, table[1], strict=True):
        value = first[name]
        if value is None:
            assert text == ""
        elif isinstance(value, bool):
            assert text == str(value).lower()
        elif isinstance(value, float):
            assert float(text) == pytest.approx(value)
        elif hasattr(value, "isoformat"):
            assert text[:10] == value.isoformat()[:10]
        else:
            assert text == str(value)


def test_a_reps_scope_exports_their_own_rows_only(org_id):
    from core.access import Scope
    from core.db import session_scope
    from core.models import User

    with session_scope() as session:
        maya = session.exec(select(User).where(
            User.email == "maya.chen@acme-analytics.example")).one()
        mine = Scope(org_id, frozenset({maya.id}))
        for kind in ("skills", "scores", "fields"):
            everyone = export_rows(session, org_id, kind)
            own = export_rows(session, mine, kind)
            assert 0 < len(own) < len(everyone)
            assert {r["rep_email"] for r in own} == {maya.email}
        deals = export_rows(session, mine, "deals")
        assert deals and {d["owner_email"] for d in deals} == {maya.email}


def test_the_cli_writes_parquet_and_refuses_an_unknown_kind(org_id, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    out = tmp_path / "deals.parquet"
    done = CliRunner().invoke(app, ["export", "deals", "--format", "parquet", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert pq.read_table(out).num_rows == counts()["deals"]
    wrong = CliRunner().invoke(app, ["export", "calls"])
    assert wrong.exit_code != 0 and "exports: skills, scores, deals, fields" in wrong.output
