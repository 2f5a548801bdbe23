"""Real audio through the real bundled Whisper model: words, timings and speakers."""

from __future__ import annotations

import re
import shutil

import pytest
from sqlmodel import select

from core.db import session_scope
from core.domain import AudioTrack
from core.ingest import ensure_org, ingest_record
from core.models import Segment, Participant
from core.pipeline import transcribe_meeting
from core.settings import AsrSettings
from core.transcribe import transcribe_tracks
from connectors.files import FilesSource
from tests.conftest import DEMO_CALLS, shared_audio

pytestmark = pytest.mark.audio

JFK = ("and so my fellow americans ask not what your country can do for you "
       "ask what you can do for your country")
LEFT = ("he began a confused complaint against the wizard who had vanished behind the "
        "curtain on the left")
RIGHT = "the horizon seems extremely distant"


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def test_jfk_comes_out_as_the_reference_text():
    path = shared_audio("jfk.flac")
    [result] = transcribe_tracks([AudioTrack(str(path))], AsrSettings())
    assert words(" ".join(u.text for u in result.utterances)) == JFK
    assert 10.5 < result.duration_s < 11.5
    first, last = result.utterances[0].words[0], result.utterances[-1].words[-1]
    assert first.start < 1.0 and 9.0 < last.end <= 11.1, "word timings are on the audio's clock"


def _ingest_manifest(folder, text: str) -> int:
    (folder / "call.yaml").write_text(text)
    [record] = list(FilesSource(folder).list_meetings())
    with session_scope() as session:
        org = ensure_org(session, "Acme", ["acme.example"])
        return ingest_record(session, org, record).meeting_id


def test_dual_channel_recording_yields_each_text_on_its_speaker(sqlite_database, tmp_path):
    path = shared_audio("stereo_diarization.wav")
    folder = tmp_path / "calls"
    folder.mkdir()
    shutil.copy(path, folder / path.name)
    meeting_id = _ingest_manifest(folder, f"""
title: Dialer call
started_at: 2026-11-01T10:00:00Z
recording: {path.name}
channels: {{0: rep@acme.example, 1: buyer@customer.example}}
participants:
  - {{name: Rita Rep, email: rep@acme.example}}
  - {{name: Bob Buyer, email: buyer@customer.example}}
""")
    transcribe_meeting(meeting_id)
    with session_scope() as session:
        rows = session.exec(select(Segment, Participant).join(
            Participant, Segment.participant_id == Participant.id).order_by(Segment.idx)).all()
    by_speaker = {}
    for segment, participant in rows:
        by_speaker.setdefault((participant.email, segment.role), []).append(segment.text)
    assert {k: words(" ".join(v)) for k, v in by_speaker.items()} == {
        ("rep@acme.example", "rep"): LEFT, ("buyer@customer.example", "buyer"): RIGHT}


def test_committed_demo_call_is_transcribed_and_attributed(sqlite_database, tmp_path):
    """The project's own dual-channel audio exercises the same path everywhere."""
    manifest = next(p for p in sorted(DEMO_CALLS.glob("*.yaml")) if "channels:" in p.read_text())
    folder = tmp_path / "calls"
    folder.mkdir()
    for file in DEMO_CALLS.glob(f"{manifest.stem}.*"):
        shutil.copy(file, folder / file.name)
    [record] = list(FilesSource(folder).list_meetings())
    with session_scope() as session:
        org = ensure_org(session, "Acme Analytics", ["acme-analytics.example"])
        meeting_id = ingest_record(session, org, record).meeting_id
    transcribe_meeting(meeting_id)
    import yaml

    turns = yaml.safe_load((DEMO_CALLS.parent / "scripts" / f"{manifest.stem}.yaml").read_text())["turns"]
    with session_scope() as session:
        segments = session.exec(select(Segment).order_by(Segment.idx)).all()
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    for role in ("rep", "buyer"):
        heard = words(" ".join(s.text for s in segments if s.role == role)).split()
        said = set(words(" ".join(t["text"] for t in turns if t["speaker"] == role)).split())
        assert heard, f"the {role}'s channel was transcribed"
        recognised = sum(w in said for w in heard) / len(heard)
        assert recognised > 0.8, f"{role}: {recognised:.0%} of heard words are in the {role}'s lines"


def test_a_dual_channel_file_is_decoded_once_and_a_missing_channel_is_a_clear_error():
    """Both tracks of a stereo recording come from one decode (the raw faster-whisper path
    decodes once too); asking for a third channel names the file and how many it has."""
    from core.errors import InputError
    from core.transcribe import decode_file, decode_track

    path = DEMO_CALLS / "demo-call-01.ogg"
    planar = decode_file(path)
    assert planar.shape[0] == 2 and planar.shape[1] > 16_000
    left = decode_track(AudioTrack(str(path), 0), planar=planar)
    assert (left == decode_track(AudioTrack(str(path), 0))).all()
    assert not (left == decode_track(AudioTrack(str(path), 1), planar=planar)).all()
    with pytest.raises(InputError, match="channel 2 requested but the file has 2 channel"):
        transcribe_tracks([AudioTrack(str(path), 2)], AsrSettings())
