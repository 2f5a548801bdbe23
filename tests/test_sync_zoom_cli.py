"""`coachloop sync zoom`: polling Zoom for recordings through the CLI, against the sandbox."""

from __future__ import annotations

import os

from sqlmodel import select
from typer.testing import CliRunner


def test_sync_backfills_then_only_reads_what_is_new(sqlite_database, tmp_path, monkeypatch):
    from cli import app
    from connectors.files import load_team
    from connectors.oauth_apps import connect_following_consent
    from core.db import session_scope
    from core.ingest import apply_team, ensure_org
    from core.models import MediaAsset, Meeting
    from core.settings import get_settings
    from sandbox.run import DEMO_DIR, start_sandboxes

    boxes = start_sandboxes(tmp_path / "sandbox")
    try:
        os.environ.update(boxes.settings())  # monkeypatch restores COACHLOOP_* (conftest)
        for key in boxes.settings():
            monkeypatch.setenv(key, os.environ[key])
        get_settings.cache_clear()
        team = load_team(DEMO_DIR)
        with session_scope() as session:
            org = ensure_org(session, team.org.name, list(team.org.domains))
            apply_team(session, org, team.members())
            org_id = org.id
        connect_following_consent("zoom", org_id, get_settings())
        runner = CliRunner()
        first = runner.invoke(app, ["sync", "zoom", "--days", "120", "--no-process"],
                              env={"COLUMNS": "200"})
        assert first.exit_code == 0, first.output
        assert "created" in first.output and len(boxes.zoom_meetings) == 15
        with session_scope() as session:
            meetings = session.exec(select(Meeting)).all()
            assets = session.exec(select(MediaAsset)).all()
        assert len(meetings) == 15
        # Platform transcripts where Zoom has one; per-participant audio for the others.
        assert sum(1 for a in assets if a.kind == "transcript") == 8
        assert sum(1 for a in assets if a.kind == "audio" and a.speaker_email) == 14
        listed = boxes.zoom.requests["GET /v2/users/{userId}/recordings"]
        hosts = 4  # the connected user and the three reps on the roster
        assert listed == 5 * hosts  # 120 days in windows of at most 30 days
        again = runner.invoke(app, ["sync", "zoom", "--no-process"], env={"COLUMNS": "200"})
        assert again.exit_code == 0 and "created" not in again.output
        assert boxes.zoom.requests["GET /v2/users/{userId}/recordings"] == listed + hosts  # one window
        assert runner.invoke(app, ["sync", "teams"]).exit_code == 1
    finally:
        boxes.stop()
