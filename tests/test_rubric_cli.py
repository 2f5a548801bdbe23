"""Rubrics as code: validate with line-precise errors, an org's own forks, re-scoring by version."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder, run_pending

FORK = """\
extends: meddic
key: acme_meddic
name: Acme MEDDIC
description: Our MEDDIC without competition, plus a next-step criterion.
remove: [competition]
criteria:
  - key: next_step
    name: Next step
    skill: next_step_clarity
    good: The call ends with a dated next step both sides agreed to.
    weight: {weight}
    ask: ['(next step|follow[- ]up|(book|schedule|set up) (a|the) (call|meeting|demo))']
    answer: ['(next (week|tuesday|monday|call)|on (monday|tuesday|wednesday|thursday|friday))']
"""


def invoke(*args):
    return CliRunner().invoke(__import__("cli").app, list(args), env={"COLUMNS": "200"})


def test_validate_reports_every_problem_with_file_and_line(tmp_path):
    good = tmp_path / "acme_meddic.yaml"
    good.write_text(FORK.format(weight=1.0))
    ok = invoke("rubric", "validate", str(good))
    assert ok.exit_code == 0 and "acme_meddic (Acme MEDDIC), 7 criteria" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(FORK.format(weight=1.0).replace("    name: Next step\n", "")
                   .replace("skill: next_step_clarity", "skill: closing"))
    result = invoke("rubric", "validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{bad}:7 [criteria[0].name]: Field required" in result.output
    gone = tmp_path / "gone.yaml"
    gone.write_text(FORK.format(weight=1.0).replace("[competition]", "[budget]"))
    assert "remove: budget not in meddic" in invoke("rubric", "validate", str(gone)).output


def test_an_orgs_fork_scores_calls_and_a_new_version_rescores_them(sqlite_database, tmp_path,
                                                                  monkeypatch):
    from core.db import session_scope
    from core.models import CallScore, CriterionScore, Rubric
    from core.settings import get_settings

    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    (rubrics / "acme_meddic.yaml").write_text(FORK.format(weight=1.0))
    monkeypatch.setenv("COACHLOOP_SCORING__RUBRIC_DIRS", json.dumps([str(rubrics)]))
    monkeypatch.setenv("COACHLOOP_SCORING__METHODOLOGIES", '["acme_meddic"]')
    get_settings.cache_clear()
    listed = invoke("rubric", "list")
    assert "acme_meddic" in listed.output and str(rubrics) in listed.output
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS[:3]))
    run_pending()
    with session_scope() as session:
        versions = set(session.exec(select(Rubric.version).join(
            CallScore, CallScore.rubric_id == Rubric.id)))
        criteria = {c.criterion for c in session.exec(select(CriterionScore))}
    assert len(versions) == 1 and "competition" not in criteria and "next_step" in criteria
    assert "already has the current version" in invoke("rescore").output

    (rubrics / "acme_meddic.yaml").write_text(FORK.format(weight=2.0))
    result = invoke("rescore")
    assert result.exit_code == 0 and "re-scored 3 call(s)" in result.output
    with session_scope() as session:
        now = set(session.exec(select(Rubric.version).join(
            CallScore, CallScore.rubric_id == Rubric.id)))
    assert len(now) == 1 and now != versions  # every call on the new version, none left over


def test_calls_scored_by_an_older_scorer_release_are_rescored(sqlite_database, tmp_path):
    from core.db import session_scope
    from core.models import CallScore
    from core.score import BuiltinScorer

    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS[:2]))
    run_pending()
    assert "already has the current version" in invoke("rescore").output
    with session_scope() as session:  # as if scored before an upgrade
        for score in session.exec(select(CallScore)):
            score.scorer_version = "0.9.0"
            session.add(score)
    result = invoke("rescore")
    assert result.exit_code == 0 and "re-scored 2 call(s)" in result.output
    assert f"by builtin {BuiltinScorer.version}" in result.output
    with session_scope() as session:
        assert {s.scorer_version for s in session.exec(select(CallScore))} == {
            BuiltinScorer.version}
