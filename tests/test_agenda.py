"""Coaching agendas from the demo's scored calls: two focus skills shown in the rep's calls."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder, run_pending, bearer

TYLER = "tyler.reed@acme-analytics.example"


@pytest.fixture
def scored(sqlite_database, tmp_path):
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    run_pending()


def agenda_for(email, as_of, **kw):
    from core.agenda import coaching_agenda
    from core.db import session_scope
    from core.ingest import current_org

    with session_scope() as session:
        return coaching_agenda(session, current_org(session).id, email, as_of=as_of,
                               public_url="https://coach.example", **kw)


def test_agenda_names_two_weak_relevant_skills_with_moments_from_the_reps_calls(scored):
    agenda = agenda_for(TYLER, date(2026, 11, 19))
    assert len(agenda.focus) == 2 and agenda.note is None
    for focus in agenda.focus:
        assert focus.estimate < 50 and focus.relevance > 0 and focus.good
        assert 1 <= len(focus.moments) <= 3
        for moment in focus.moments:
            assert moment.link.startswith("https://coach.example/app/meetings/")
            assert date(2026, 8, 21) <= moment.on <= date(2026, 11, 19)
            assert moment.why


def test_a_strong_reps_focus_differs_and_too_few_calls_says_so(scored):
    strong = agenda_for("maya.chen@acme-analytics.example", date(2026, 11, 19), min_calls=2)
    weak = agenda_for(TYLER, date(2026, 11, 19), min_calls=2)
    assert strong.focus and weak.focus
    assert min(f.estimate for f in strong.focus) > max(f.estimate for f in weak.focus)
    early = agenda_for(TYLER, date(2026, 9, 12))
    assert early.focus == () and "not enough calls" in early.note


def test_last_weeks_focus_is_followed_up(scored):
    agenda = agenda_for(TYLER, date(2026, 11, 26))
    assert agenda.last_week, "the week before had a focus"
    for follow in agenda.last_week:
        assert follow.n_since == 0 and "no calls since" in follow.verdict
    # As of 19 Nov with 2 calls enough: last week's focus (as of 12 Nov) is judged on the
    # 19 Nov call against the 15 Oct one.
    judged = agenda_for(TYLER, date(2026, 11, 19), min_calls=2)
    assert judged.last_week
    for follow in judged.last_week:
        assert follow.n_since == 1 and follow.before is not None and follow.since is not None
        assert follow.verdict.split(":")[0] in ("sticking", "slipping", "not yet")


def test_agenda_over_the_api_and_cli(scored):
    from typer.testing import CliRunner

    from api import create_app
    from cli import app

    client = TestClient(create_app(), raise_server_exceptions=False, headers=bearer("read"))
    body = client.get(f"/reps/{TYLER}/agenda", params={"as_of": "2026-11-19"}).json()
    assert len(body["focus"]) == 2 and body["focus"][0]["moments"]
    assert client.get("/reps/nobody@x.example/agenda").status_code == 404
    out = CliRunner().invoke(app, ["agenda", TYLER, "--as-of", "2026-11-19"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "Coaching agenda" in out.output and "1." in out.output
