"""The HTTP API over a processed set of calls: JSON everywhere, errors included."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.conversation import ENGAGED_BUYER_WORDS
from core.db import session_scope
from core.models import Meeting
from core.skill_refresh import refresh_skills
from tests.conftest import PLATFORM_CALLS, bearer, copy_calls, ingest_folder, run_pending

AS_OF = date(2026, 11, 20)


@pytest.fixture
def client(database, tmp_path):
    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    run_pending()
    with session_scope() as session:
        refresh_skills(session.exec(select(Meeting.org_id)).first(), AS_OF)
    from api import create_app

    with TestClient(create_app(), raise_server_exceptions=False,
                    headers=bearer("read")) as test_client:
        yield test_client


def test_health_and_openapi(client):
    assert client.get("/health").json()["database"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/meetings", "/meetings/{meeting_id}", "/reps", "/reps/{email}/skills"} <= set(paths)


def test_meeting_detail_has_transcript_scores_and_evidence(client):
    meetings = client.get("/meetings").json()
    assert len(meetings) == len(PLATFORM_CALLS)
    assert meetings[0]["started_at"] >= meetings[-1]["started_at"]
    detail = client.get(f"/meetings/{meetings[0]['id']}").json()
    assert detail["transcript_source"] == "platform"
    assert detail["call_stage"] in ("discovery", "demo", "pricing", "renewal", "other")
    shape = detail["conversation"]
    assert 0 < shape["talk_ratio"] < 1 and shape["longest_monologue_s"] > 0
    rep_asked = any("?" in s["text"] for s in detail["segments"] if s["role"] == "rep")
    assert (shape["questions_per_min"] > 0) == rep_asked
    buyer_words: dict[str, int] = {}
    for s in detail["segments"]:
        if s["role"] == "buyer":
            buyer_words[s["speaker"]] = buyer_words.get(s["speaker"], 0) + len(s["text"].split())
    assert shape["buyer_speakers"] == sum(n >= ENGAGED_BUYER_WORDS for n in buyer_words.values())
    segments = {s["id"]: s for s in detail["segments"]}
    assert {s["role"] for s in segments.values()} == {"rep", "buyer"}
    assert {c["rubric"] for c in detail["call_scores"]} == {"meddic", "bant"}
    quotes = [(e, c) for cs in detail["call_scores"] for c in cs["criteria"] for e in c["evidence"]]
    assert quotes
    for evidence, _ in quotes:
        segment = segments[evidence["segment_id"]]
        assert evidence["quote"] in segment["text"]
        assert (evidence["start"], evidence["end"]) == (segment["start"], segment["end"])


def test_rep_skills(client):
    reps = {r["email"]: r for r in client.get("/reps").json()}
    maya = "maya.chen@acme-analytics.example"
    assert reps[maya]["manager"] == "Priya Nair"
    card = client.get(f"/reps/{maya}/skills", params={"window": 90}).json()
    assert card["as_of"] == AS_OF.isoformat()
    assert card["skills"] and all(s["window_days"] == 90 for s in card["skills"])
    team = client.get("/team/skills").json()
    assert len(team["rows"]) == 3
    # Every skill of the taxonomy is either estimated or listed as not measured, with why.
    from core.skill_taxonomy import SKILLS
    for body in (card, team):
        estimated = {s["skill"] for s in body["skills"]} if body is card else set(
            team["skills"])
        missing = {m["skill"]: m["reason"] for m in body["not_measured"]}
        assert estimated | set(missing) == set(SKILLS) and not estimated & set(missing)
    # The default methodologies (MEDDIC, BANT) score no criterion of these three.
    for skill in ("objection_handling", "next_step_clarity", "insight_teaching"):
        assert "none of the methodologies in use (meddic, bant)" in missing[skill]
        assert "challenger" in missing[skill] or "sandler" in missing[skill]


@pytest.mark.parametrize("path, status, code", [
    ("/meetings/999999", 404, "not_found"),
    ("/reps/nobody@nowhere.example/skills", 404, "not_found"),
    ("/meetings/not-a-number", 422, "invalid_request"),
    ("/meetings?limit=0", 422, "invalid_request"),
    ("/no/such/route", 404, "http_error"),
])
def test_errors_are_json_with_a_clear_message(client, path, status, code):
    response = client.get(path)
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text


def test_anonymous_requests_are_told_how_to_sign_in(sqlite_database):
    from api import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = client.get("/meetings")
        wrong = client.get("/meetings", headers={"Authorization": "Bearer clt_not-a-token"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith(
        "Bearer")
    assert "sign in" in response.json()["error"]["message"]
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["error"]["message"]
