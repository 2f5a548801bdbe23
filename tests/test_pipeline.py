"""The core pipeline on the embedded default (in process), on SQLite and PostgreSQL:
ingest → transcript → attributed segments → scores with evidence → skill snapshots."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import func, select

from core.db import session_scope
from core.ingest import IngestOutcome
from core.models import (CallScore, CriterionScore, FieldExtraction, Meeting, MeetingDeal, Segment,
                         SkillSnapshot, Transcript, User)
from core.pipeline import pending_meetings, score_meeting, transcribe_meeting
from core.skill_refresh import refresh_skills
from tests.conftest import DEMO_CALLS, PLATFORM_CALLS, copy_calls, ingest_folder, run_pending

def test_platform_transcripts_flow_through_every_stage(database, tmp_path):
    assert len(PLATFORM_CALLS) >= 6
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS)
    outcomes = ingest_folder(folder)
    assert set(outcomes.values()) == {IngestOutcome.CREATED}
    run_pending()
    with session_scope() as session:
        org_id = session.exec(select(Meeting.org_id)).first()
    as_of = date(2026, 11, 20)
    assert refresh_skills(org_id, as_of) > 0

    with session_scope() as session:
        meetings = session.exec(select(Meeting)).all()
        assert {m.stage for m in meetings} == {"scored"}
        assert {t.source for t in session.exec(select(Transcript))} == {"platform"}
        segments = session.exec(select(Segment)).all()
        roles = {s.role for s in segments}
        assert roles == {"rep", "buyer"}, "every cue names a known participant"
        texts = {s.id: s.text for s in segments}
        # Two rubrics per meeting, every criterion either scored or abstained with a reason.
        assert session.exec(select(func.count()).select_from(CallScore)).one() == 2 * len(meetings)
        criteria = session.exec(select(CriterionScore)).all()
        assert any(c.score for c in criteria)
        for criterion in criteria:
            assert criterion.rationale
            for evidence in criterion.evidence:
                assert evidence["quote"] in texts[evidence["segment_id"]]
        found = [f for f in session.exec(select(FieldExtraction)) if f.value]
        assert found, "stated MEDDIC/BANT facts are extracted"
        # Every scored call is credited to the rep who spoke for our side.
        reps = {u.id: u.email for u in session.exec(select(User).where(User.role == "rep"))}
        assert {reps[c.rep_id] for c in session.exec(select(CallScore))} <= set(reps.values())
        snapshots = session.exec(select(SkillSnapshot).where(SkillSnapshot.as_of == as_of)).all()
        assert {s.window_days for s in snapshots} == {30, 60, 90}
        assert {s.rep_id for s in snapshots} == set(reps)
        assert session.exec(select(func.count()).select_from(MeetingDeal)).one() > 0


def test_reingest_is_idempotent_and_changes_are_picked_up(sqlite_database, tmp_path):
    stem = PLATFORM_CALLS[0]
    folder = copy_calls(tmp_path / "calls", [stem])
    assert ingest_folder(folder) == {stem: IngestOutcome.CREATED}
    run_pending()
    assert ingest_folder(folder) == {stem: IngestOutcome.UNCHANGED}
    assert pending_meetings() == []

    manifest = folder / f"{stem}.yaml"
    manifest.write_text(manifest.read_text().replace("title:", "title: Renamed -", 1))
    assert ingest_folder(folder) == {stem: IngestOutcome.UPDATED}
    with session_scope() as session:
        meeting = session.exec(select(Meeting)).one()
        assert meeting.title.startswith("Renamed -")
        assert meeting.stage == "ingested"
        assert session.exec(select(func.count()).select_from(CallScore)).one() == 0
    assert [stage for _, stage in pending_meetings()] == ["ingested"]


def test_same_recording_under_another_id_is_a_duplicate(sqlite_database, tmp_path):
    stem = PLATFORM_CALLS[0]
    folder = copy_calls(tmp_path / "calls", [stem])
    ingest_folder(folder)
    copy = folder / "copy.yaml"
    copy.write_text((folder / f"{stem}.yaml").read_text().replace(
        f"external_id: {stem}", "external_id: another-id"))
    (folder / f"{stem}.yaml").unlink()
    assert ingest_folder(folder) == {"another-id": IngestOutcome.DUPLICATE}
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Meeting)).one() == 1


def test_a_failed_stage_is_recorded_and_the_rest_continue(sqlite_database, tmp_path):
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:2])
    ingest_folder(folder)
    broken = folder / f"{PLATFORM_CALLS[0]}.vtt"
    if not broken.exists():
        broken = folder / f"{PLATFORM_CALLS[0]}.srt"
    broken.write_text("WEBVTT\n\n00:00:01.000 --> garbage\nhello\n")
    from core.pipeline import record_failure

    for meeting_id, _ in pending_meetings():
        try:
            transcribe_meeting(meeting_id)
            score_meeting(meeting_id)
        except Exception as exc:  # what the CLI and the worker do
            record_failure(meeting_id, "transcribe", exc)
    with session_scope() as session:
        stages = {m.external_id: (m.stage, m.error) for m in session.exec(select(Meeting))}
    stage, error = stages[PLATFORM_CALLS[0]]
    assert stage == "failed" and f"{broken.name}:3" in error and "malformed" in error
    assert stages[PLATFORM_CALLS[1]][0] == "scored"
    assert pending_meetings() == []
    assert [m for m, _ in pending_meetings(include_failed=True)]


def test_a_transient_failure_keeps_the_call_pending_with_its_reason(sqlite_database, tmp_path):
    from core import reports
    from core.errors import TransientError
    from core.pipeline import record_failure

    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS[:1]))
    ((meeting_id, stage),) = pending_meetings()
    record_failure(meeting_id, "transcribe", TransientError("Zoom is unavailable (HTTP 503)"))
    assert pending_meetings() == [(meeting_id, stage)]  # still retried, not failed
    with session_scope() as session:
        org_id = session.get(Meeting, meeting_id).org_id
        line = reports.not_scored(session, org_id).line()
    assert line == "1 call not scored: 1 not processed yet (last try: Zoom is unavailable " \
                   "(HTTP 503))"
    transcribe_meeting(meeting_id)  # a later try that works forgets the reason
    with session_scope() as session:
        assert session.get(Meeting, meeting_id).error is None


@pytest.mark.audio
def test_mixed_audio_without_transcript_never_scores_the_rep(sqlite_database, tmp_path):
    """Mono audio with no platform transcript: nobody can be credited, so every criterion abstains."""
    stereo = next(p for p in sorted(DEMO_CALLS.glob("*.yaml")) if "channels:" in p.read_text())
    folder = copy_calls(tmp_path / "calls", [stereo.stem])
    manifest = folder / stereo.name
    lines = manifest.read_text().splitlines()
    start = lines.index("channels:")
    manifest.write_text("\n".join(lines[:start] + lines[start + 3:]) + "\n")
    ingest_folder(folder)
    run_pending()
    with session_scope() as session:
        segments = session.exec(select(Segment)).all()
        assert segments and {s.role for s in segments} == {"unknown"}
        assert all(c.score is None for c in session.exec(select(CriterionScore)))
        assert all(c.abstain_reason for c in session.exec(select(CallScore)))
