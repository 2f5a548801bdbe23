"""The command line: clear errors, idempotent ingest, reports; and the demo end to end."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from cli import app
from tests.conftest import DEMO_CALLS, PLATFORM_CALLS, copy_calls

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_ingest_process_report(tmp_path):
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:4])
    for name in ("team.yaml", "deals.yaml"):
        (folder / name).write_text((DEMO_CALLS.parent / name).read_text())
    (folder / "broken.yaml").write_text("title: [unclosed\n")
    result = invoke("ingest", str(folder))
    assert result.exit_code == 1, result.output
    assert "broken.yaml" in result.output and "4 were" in result.output
    again = invoke("ingest", str(folder))
    assert again.output.count("already ingested, unchanged") == 4
    processed = invoke("process", "--as-of", "2026-11-20")
    assert processed.exit_code == 0, processed.output
    assert "skills refreshed as of 2026-11-20" in processed.output
    team = invoke("report", "team")
    assert team.exit_code == 0 and "Maya Chen" in team.output
    rep = invoke("report", "rep", "maya.chen@acme-analytics.example")
    assert rep.exit_code == 0 and "Scorecard" in rep.output


def test_errors_are_one_clear_line(tmp_path):
    missing = invoke("ingest", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "not a folder" in missing.output
    assert "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    no_org = invoke("ingest", str(tmp_path / "empty"))
    assert no_org.exit_code == 1 and "coachloop init" in no_org.output
    bad_date = invoke("process", "--as-of", "yesterday")
    assert bad_date.exit_code == 1 and "YYYY-MM-DD" in bad_date.output


def test_demo_runs_end_to_end(tmp_path):
    """What `make demo` runs, as a user would: a fresh process, the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLOOP_")}
    env.update(COLUMNS="200", COACHLOOP_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "cli", "demo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900,
                            )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "connected zoom" in out and "connected salesforce" in out
    assert "Zoom validated the webhook endpoint" in out
    assert "15 accepted, 15 duplicate" in out  # every webhook delivered twice, kept once
    for rep in ("Maya Chen", "Jordan Brooks", "Tyler Reed"):
        assert rep in out
    assert "Scorecard" in out and "Strengths" in out and '"' in out  # quotes as evidence
    assert "Coaching agenda" in out and "Tyler Reed" in out and "what good looks like" in out
    assert "fields written (audit trail)" in out and "fill_empty" in out
    assert "Salesforce now holds 15 call Task(s)" in out
    assert "failed" not in out
