"""The `files` connector against real folders of manifests and real (generated) audio."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import av
import numpy as np
import pytest

import connectors
from connectors.base import MeetingSource, SourceProblem
from connectors.files import FilesSource, load_deals, load_team
from core.domain import AudioTrack, MeetingRecord, ParticipantInfo, Role, Utterance
from core.errors import ConfigError, InputError

MAYA = "maya.chen@acme-analytics.example"
SAM = "sam.patel@northwind.example"

VTT = """WEBVTT

1
00:00:00.000 --> 00:00:00.800
<v Maya Chen>Thanks for joining.</v>
"""


def write_tone(path: Path, channels: int = 1, freq: float = 440.0, seconds: float = 1.0) -> Path:
    """Encode a sine tone: .wav as 16-bit PCM, .ogg as Opus, at 48 kHz."""
    rate = 48_000
    codec = "pcm_s16le" if path.suffix == ".wav" else "libopus"
    layout = "mono" if channels == 1 else "stereo"
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    interleaved = np.repeat(samples, channels).reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def write_yaml_manifest(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


PARTICIPANTS = f"""participants:
  - {{name: Maya Chen, email: {MAYA}, role: rep}}
  - {{name: Sam Patel, email: {SAM}}}
"""


def dual_channel_manifest(recording: str = "call.ogg", extra: str = "") -> str:
    return f"""external_id: demo-call-01
title: "Discovery call - Northwind Traders"
started_at: "2026-10-05T15:00:00Z"
deal: OPP-NW-001
recording: {recording}
channels:
  0: {MAYA}
  1: {SAM}
transcript: call.vtt
{PARTICIPANTS}{extra}"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with one valid dual-channel meeting: call.yaml, call.ogg (stereo), call.vtt."""
    write_tone(tmp_path / "call.ogg", channels=2)
    (tmp_path / "call.vtt").write_text(VTT, encoding="utf-8")
    write_yaml_manifest(tmp_path, "call.yaml", dual_channel_manifest())
    return tmp_path


def records(items: list[MeetingRecord | SourceProblem]) -> list[MeetingRecord]:
    return [item for item in items if isinstance(item, MeetingRecord)]


def problems(items: list[MeetingRecord | SourceProblem]) -> list[SourceProblem]:
    return [item for item in items if isinstance(item, SourceProblem)]


def sha256_of(*parts: tuple[str, bytes]) -> str:
    """The content hash as documented: each part framed by its label and length."""
    digest = hashlib.sha256()
    for label, data in parts:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


# ------------------------------------------------------------------ valid meetings ----


def test_dual_channel_manifest_becomes_a_meeting_record(folder: Path):
    items = list(FilesSource(folder).list_meetings())

    assert problems(items) == []
    (record,) = items
    assert record == MeetingRecord(
        source="files",
        external_id="demo-call-01",
        title="Discovery call - Northwind Traders",
        started_at=datetime(2026, 10, 5, 15, 0, tzinfo=UTC),
        participants=(ParticipantInfo("Maya Chen", MAYA, Role.REP),
                      ParticipantInfo("Sam Patel", SAM, None)),
        tracks=(AudioTrack(str(folder / "call.ogg"), 0, MAYA),
                AudioTrack(str(folder / "call.ogg"), 1, SAM)),
        transcript_path=str(folder / "call.vtt"),
        deal_external_id="OPP-NW-001",
        content_hash=sha256_of(("manifest", (folder / "call.yaml").read_bytes()),
                               ("recording", (folder / "call.ogg").read_bytes()),
                               ("transcript", (folder / "call.vtt").read_bytes())),
        origin=str(folder / "call.yaml"),
    )


def test_recording_alone_is_one_mixed_track_and_ids_default_to_the_stem(tmp_path: Path):
    write_tone(tmp_path / "mono.wav")
    write_yaml_manifest(tmp_path, "weekly-sync.yml", f"""title: Weekly sync
started_at: 2026-10-06 09:30:00
recording: mono.wav
{PARTICIPANTS}""")

    (record,) = FilesSource(tmp_path).list_meetings()

    assert record.external_id == "weekly-sync"
    assert record.tracks == (AudioTrack(str(tmp_path / "mono.wav")),)
    assert record.started_at == datetime(2026, 10, 6, 9, 30, tzinfo=UTC)  # naive → UTC
    assert record.transcript_path is None and record.deal_external_id is None


def test_per_participant_tracks_in_a_subfolder(tmp_path: Path):
    (tmp_path / "audio").mkdir()
    write_tone(tmp_path / "audio" / "maya.ogg", freq=300)
    write_tone(tmp_path / "audio" / "sam.wav", freq=500)
    write_yaml_manifest(tmp_path, "tracks.yaml", f"""title: Pricing call
started_at: "2026-10-07T10:00:00+02:00"
tracks:
  - {{file: audio/maya.ogg, speaker: {MAYA.upper()}}}
  - {{file: ./audio/sam.wav, speaker: {SAM}}}
{PARTICIPANTS}""")

    (record,) = FilesSource(tmp_path).list_meetings()

    assert record.tracks == (AudioTrack(str(tmp_path / "audio" / "maya.ogg"), None, MAYA),
                             AudioTrack(str(tmp_path / "audio" / "sam.wav"), None, SAM))
    assert record.started_at == datetime(2026, 10, 7, 8, 0, tzinfo=UTC)


def test_transcript_only_meeting_has_no_tracks(tmp_path: Path):
    (tmp_path / "t.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nSam Patel: hi\n",
                                    encoding="utf-8")
    write_yaml_manifest(tmp_path, "t.yaml", f"""title: Transcript only
started_at: "2026-10-08T10:00:00Z"
transcript: t.srt
{PARTICIPANTS}""")
    source = FilesSource(tmp_path)

    (record,) = source.list_meetings()

    assert record.tracks == ()
    assert source.fetch_transcript(record) == [Utterance(1.0, 2.0, "hi", "Sam Patel")]
    assert source.download_media(record, tmp_path / "media") == ()


def test_json_manifest(tmp_path: Path):
    write_tone(tmp_path / "call.wav", channels=2)
    (tmp_path / "call.json").write_text(json.dumps({
        "title": "JSON call",
        "started_at": "2026-10-09T12:00:00Z",
        "deal": 4711,
        "recording": "call.wav",
        "channels": {"0": MAYA, "1": SAM},
        "participants": [{"name": "Maya Chen", "email": MAYA, "role": "rep"},
                         {"name": "Sam Patel", "email": SAM, "role": "buyer"}],
    }, indent=2), encoding="utf-8")

    (record,) = FilesSource(tmp_path).list_meetings()

    assert record.external_id == "call"
    assert record.deal_external_id == "4711"
    assert [(t.channel, t.speaker_email) for t in record.tracks] == [(0, MAYA), (1, SAM)]
    assert record.participants[1].role is Role.BUYER


def test_manifests_come_sorted_by_name_and_other_files_are_ignored(folder: Path):
    for name in ("b.yaml", "a.json", "c.YML"):
        manifest = {"title": name, "started_at": "2026-10-05T15:00:00Z",
                    "transcript": "call.vtt"}
        (folder / name).write_text(json.dumps(manifest), encoding="utf-8")
    (folder / "team.yaml").write_text("org: {name: Acme, domains: [acme.example]}\n")
    (folder / "deals.yaml").write_text("deals: []\n")
    (folder / "._call.yaml").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (folder / "notes.txt").write_text("not a manifest")
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.yaml").write_text("title: nested\n")

    items = list(FilesSource(folder).list_meetings())

    assert problems(items) == []
    assert [r.origin for r in items] == [str(folder / n)
                                         for n in ("a.json", "b.yaml", "c.YML", "call.yaml")]


def test_since_filters_by_start(folder: Path):
    write_yaml_manifest(folder, "early.yaml", """title: Early
started_at: "2026-09-01T08:00:00Z"
transcript: call.vtt
""")
    source = FilesSource(folder)

    assert [r.external_id for r in source.list_meetings(since=datetime(2026, 10, 1))] == [
        "demo-call-01"]
    assert [r.external_id for r in source.list_meetings(
        since=datetime(2026, 10, 5, 15, 0, tzinfo=UTC))] == ["demo-call-01"]
    assert [r.external_id for r in source.list_meetings(
        since=datetime(2026, 10, 5, 15, 0, 1, tzinfo=UTC))] == []
    assert len(list(source.list_meetings())) == 2


# -------------------------------------------------------------------- content hash ----


def test_hash_is_stable_across_runs_and_folders(folder: Path, tmp_path_factory):
    first = records(list(FilesSource(folder).list_meetings()))[0].content_hash
    again = records(list(FilesSource(str(folder)).list_meetings()))[0].content_hash
    moved = Path(shutil.copytree(folder, tmp_path_factory.mktemp("moved") / "calls"))
    elsewhere = records(list(FilesSource(moved).list_meetings()))[0].content_hash

    assert len(first) == 64
    assert first == again == elsewhere


def test_hash_changes_when_any_referenced_file_changes(folder: Path):
    def content_hash() -> str:
        return records(list(FilesSource(folder).list_meetings()))[0].content_hash

    original = content_hash()
    write_tone(folder / "call.ogg", channels=2, freq=880.0)
    new_audio = content_hash()
    (folder / "call.vtt").write_text(VTT.replace("joining", "coming"), encoding="utf-8")
    new_transcript = content_hash()
    (folder / "call.yaml").write_text(dual_channel_manifest().replace("Discovery", "Demo"),
                                      encoding="utf-8")
    new_manifest = content_hash()

    assert len({original, new_audio, new_transcript, new_manifest}) == 4


# ---------------------------------------------------------------- bad manifests ----

# Each case: manifest file name, its text (or bytes), extra files to write, and the expected
# (field, words in the message, line in the manifest or None).
BROKEN = {
    "broken_yaml": ("bad.yaml", "title: [unclosed\nstarted_at: 2026-10-05\n", {},
                    (None, "invalid YAML", 2)),
    "broken_json": ("bad.json", '{\n  "title": "x",\n  "started_at": \n}\n', {},
                    (None, "invalid JSON", 4)),
    "not_a_mapping": ("bad.yaml", "- title: x\n", {}, (None, "mapping", 1)),
    "empty_file": ("bad.yaml", "", {}, (None, "empty", None)),
    "duplicate_key": ("bad.yaml", "title: a\nstarted_at: 2026-10-05T10:00:00Z\ntitle: b\n", {},
                      ("title", "duplicate key", 3)),
    "missing_title": ("bad.yaml", "started_at: 2026-10-05T10:00:00Z\ntranscript: call.vtt\n",
                      {}, ("title", "required", None)),
    "missing_started_at": ("bad.yaml", "title: x\ntranscript: call.vtt\n", {},
                           ("started_at", "required", None)),
    "bad_date": ("bad.yaml", "title: x\nstarted_at: next tuesday\ntranscript: call.vtt\n", {},
                 ("started_at", "ISO 8601", 2)),
    "date_without_time": ("bad.yaml", "title: x\nstarted_at: 2026-10-05\ntranscript: call.vtt\n",
                          {}, ("started_at", "no time of day", 2)),
    "unknown_field": ("bad.yaml", "title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                  "recordng: call.ogg\n", {}, ("recordng", "unknown field", 3)),
    "bad_role": ("bad.yaml", f"title: x\nstarted_at: 2026-10-05T10:00:00Z\ntranscript: call.vtt\n"
                             f"participants:\n  - {{name: M, email: {MAYA}, role: boss}}\n", {},
                 ("participants.0.role", "'rep' or 'buyer'", 5)),
    "recording_missing": ("bad.yaml", dual_channel_manifest("gone.ogg"), {},
                          ("recording", "file not found: gone.ogg", 5)),
    "transcript_missing": ("bad.yaml", "title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                       "transcript: nope.vtt\n", {},
                           ("transcript", "file not found", 3)),
    "track_missing": ("bad.yaml", f"title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                  f"tracks:\n  - {{file: nope.wav, speaker: {MAYA}}}\n"
                                  f"{PARTICIPANTS}", {}, ("tracks.0.file", "not found", 4)),
    "unknown_channel_participant": (
        "bad.yaml", dual_channel_manifest().replace(f"1: {SAM}", "1: someone@else.example"), {},
        ("channels.1", "unknown participant someone@else.example", 8)),
    "unknown_track_participant": (
        "bad.yaml", "title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                    "tracks:\n  - {file: call.ogg, speaker: ghost@else.example}\n"
                    f"{PARTICIPANTS}", {}, ("tracks.0.speaker", "unknown participant", 4)),
    "duplicate_participant": (
        "bad.yaml", dual_channel_manifest(extra=f"  - {{name: Maya again, email: {MAYA}}}\n"),
        {}, ("participants.2.email", "duplicate participant email", 13)),
    "nothing_to_analyse": ("bad.yaml", f"title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                       f"{PARTICIPANTS}", {},
                           ("recording", "nothing to analyse", None)),
    "recording_and_tracks": (
        "bad.yaml", f"title: x\nstarted_at: 2026-10-05T10:00:00Z\nrecording: call.ogg\n"
                    f"tracks:\n  - {{file: call.ogg, speaker: {MAYA}}}\n{PARTICIPANTS}", {},
        ("tracks", "not both", 4)),
    "channels_without_recording": (
        "bad.yaml", f"title: x\nstarted_at: 2026-10-05T10:00:00Z\ntranscript: call.vtt\n"
                    f"channels: {{0: {MAYA}}}\n{PARTICIPANTS}", {},
        ("channels", "no recording", 4)),
    "channel_beyond_file": (
        "bad.yaml", dual_channel_manifest("mono.wav"), {"mono.wav": "mono"},
        ("channels.1", "channel 1 does not exist: mono.wav has 1 channel", 8)),
    "garbage_audio": ("bad.yaml", dual_channel_manifest("noise.ogg"),
                      {"noise.ogg": b"OggS but not really" * 40},
                      ("recording", "unreadable audio", 5)),
    "truncated_audio": ("bad.yaml", dual_channel_manifest("cut.wav"), {"cut.wav": "truncated"},
                        ("recording", "unreadable audio", 5)),
    "audio_without_samples": ("bad.yaml", dual_channel_manifest("silent.wav"),
                              {"silent.wav": "no samples"},
                              ("recording", "no audio could be decoded", 5)),
    "video_without_audio": ("bad.yaml", dual_channel_manifest("video.mkv"),
                            {"video.mkv": "video"}, ("recording", "no audio stream", 5)),
    "transcript_unparsable": ("bad.yaml", "title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                          "transcript: broken.vtt\n",
                              {"broken.vtt": "WEBVTT\n\n1\n00:00:01.000 --> 00:00:0x.000\nx\n"},
                              ("transcript", "broken.vtt:4: malformed cue timing", 3)),
    "transcript_wrong_format": ("bad.yaml", "title: x\nstarted_at: 2026-10-05T10:00:00Z\n"
                                            "transcript: notes.txt\n", {"notes.txt": "hi"},
                                ("transcript", "unsupported transcript format", 3)),
}


def write_extra(folder: Path, name: str, content: str | bytes) -> None:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "mono":
        write_tone(path)
    elif content == "truncated":
        write_tone(path, channels=2)
        path.write_bytes(path.read_bytes()[:44])  # the RIFF header, no samples
    elif content == "no samples":  # a valid WAV header announcing zero bytes of audio
        fmt = struct.pack("<IHHIIHH", 16, 1, 2, 48_000, 48_000 * 4, 4, 16)
        path.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + fmt + b"data"
                         + struct.pack("<I", 0))
    elif content == "video":
        with av.open(str(path), "w") as container:
            stream = container.add_stream("ffv1", rate=1)
            stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_bad_manifest_is_a_problem_and_the_batch_goes_on(folder: Path, case: str):
    name, text, extra_files, (field, words, line) = BROKEN[case]
    (folder / name).write_text(text.replace("demo-call-01", "broken-call"), encoding="utf-8")
    for extra_name, content in extra_files.items():
        write_extra(folder, extra_name, content)
    # a second valid meeting sorted after the broken one: the batch must reach it
    write_yaml_manifest(folder, "zz-later.yaml", dual_channel_manifest().replace(
        "demo-call-01", "later-call"))

    items = list(FilesSource(folder).list_meetings())

    assert [r.external_id for r in records(items)] == ["demo-call-01", "later-call"]
    (problem,) = problems(items)
    assert problem.origin == str(folder / name)
    assert problem.field == field
    assert words in problem.message
    assert problem.line == line
    assert str(problem).startswith(str(folder / name))


def test_all_problems_of_one_manifest_are_reported(folder: Path):
    write_yaml_manifest(folder, "bad.yaml", f"""title: ""
started_at: yesterday
channels: {{0: not-an-email, -1: {MAYA}}}
participants:
  - {{email: {SAM}}}
""")

    found = {(p.field, p.line) for p in problems(list(FilesSource(folder).list_meetings()))}

    assert found == {("title", 1), ("started_at", 2), ("channels.0", 3),
                     ("channels.-1.[key]", 3), ("participants.0.name", 5)}


def test_problems_from_several_checks_come_together(folder: Path):
    write_yaml_manifest(folder, "bad.yaml", f"""title: x
started_at: 2026-10-05T10:00:00Z
recording: call.ogg
channels:
  0: a@x.example
  5: {MAYA}
{PARTICIPANTS}""")

    found = [(p.field, p.message) for p in problems(list(FilesSource(folder).list_meetings()))]

    assert found == [("channels.0", "unknown participant a@x.example: not among participants")]
    # once the participant is fixed, the probe finds that channel 5 does not exist
    (folder / "bad.yaml").write_text((folder / "bad.yaml").read_text().replace(
        "a@x.example", SAM))
    (problem,) = problems(list(FilesSource(folder).list_meetings()))
    assert (problem.field, problem.line) == ("channels.5", 6)
    assert "has 2 channels" in problem.message


def test_duplicate_external_id_is_a_problem_for_the_later_manifest(folder: Path):
    write_yaml_manifest(folder, "copy.yaml", dual_channel_manifest())

    items = list(FilesSource(folder).list_meetings())

    assert [r.origin for r in records(items)] == [str(folder / "call.yaml")]
    (problem,) = problems(items)
    assert (problem.origin, problem.field, problem.line) == (str(folder / "copy.yaml"),
                                                             "external_id", 1)
    assert "already used by call.yaml" in problem.message


def test_check_rejects_a_missing_folder_or_a_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        FilesSource(tmp_path / "nope").check()
    with pytest.raises(ConfigError, match="not found"):
        list(FilesSource(tmp_path / "nope").list_meetings())
    (tmp_path / "file.yaml").write_text("title: x\n")
    with pytest.raises(ConfigError, match="is a file"):
        FilesSource(tmp_path / "file.yaml").check()
    FilesSource(tmp_path).check()


# ------------------------------------------------------------------- registration ----


def test_files_is_registered_under_the_vendors_entry_point_group():
    assert "files" in connectors.available_sources()
    assert connectors.load_source("files") is FilesSource
    assert issubclass(FilesSource, MeetingSource) and FilesSource.name == "files"


def test_vendors_come_from_pyproject_when_coachloop_is_not_installed(monkeypatch):
    """A source checkout (no installed metadata) reads the same `coachloop.vendors` table
    from pyproject.toml; installed, the metadata holds that table too (not a stale one)."""
    from importlib.metadata import PackageNotFoundError, entry_points

    import core.vendors as registry

    root = Path(connectors.__file__).parent.parent
    with (root / "pyproject.toml").open("rb") as stream:
        declared = tomllib.load(stream)["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    installed = {e.name: e.value for e in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert installed == declared

    def not_installed(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(registry, "distribution", not_installed)
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    registry.vendors.cache_clear()
    try:
        assert sorted(registry.vendors()) == sorted(declared) == ["files", "hubspot", "meet",
                                                              "salesforce", "teams", "zoom"]
        assert connectors.available_sources() == ["files", "meet", "teams", "zoom"]
    finally:
        registry.vendors.cache_clear()


def test_unknown_source_names_what_is_registered():
    with pytest.raises(ConfigError, match=r"no meeting source named 'zoomish'.*files"):
        connectors.load_source("zoomish")


def test_optional_operations_say_which_source_lacks_them(folder: Path):
    class Minimal(MeetingSource):
        name = "minimal"

        def check(self) -> None:
            pass

        def list_meetings(self, since=None) -> Iterator[MeetingRecord | SourceProblem]:
            return iter(())

    record = records(list(FilesSource(folder).list_meetings()))[0]
    with pytest.raises(NotImplementedError, match="'minimal' meeting source .* fetch_transcript"):
        Minimal().fetch_transcript(record)
    with pytest.raises(NotImplementedError, match="download_media"):
        Minimal().download_media(record, folder)
    with pytest.raises(NotImplementedError, match="'files' meeting source .*meetings_from_event"):
        FilesSource(folder).meetings_from_event({})
    with pytest.raises(TypeError):
        MeetingSource()  # abstract


# ------------------------------------------------------------------ team and deals ----

TEAM = f"""org:
  name: Acme Analytics
  domains: ["@Acme-Analytics.example"]
users:
  - {{name: Maya Chen, email: {MAYA}, role: rep, manager: lee.wong@acme-analytics.example}}
  - {{name: Lee Wong, email: Lee.Wong@acme-analytics.example, role: manager}}
"""

DEALS = f"""deals:
  - external_id: OPP-NW-001
    name: Northwind analytics rollout
    account: Northwind Traders
    owner: {MAYA}
    stage: Discovery
    amount: 48000.50
    close_date: 2026-12-15
    is_closed: false
    is_won: false
    contacts: [{SAM}]
  - {{external_id: 1002, name: Old deal, close_date: "2026-01-31", is_closed: true,
     is_won: true}}
"""


def test_team_file_is_loaded_and_normalized(tmp_path: Path):
    assert load_team(tmp_path) is None
    (tmp_path / "team.yaml").write_text(TEAM, encoding="utf-8")

    team = load_team(tmp_path)

    assert team.org.name == "Acme Analytics"
    assert team.org.domains == ("acme-analytics.example",)
    assert [(u.email, u.role, u.manager) for u in team.users] == [
        (MAYA, "rep", "lee.wong@acme-analytics.example"),
        ("lee.wong@acme-analytics.example", "manager", None)]


@pytest.mark.parametrize(("text", "field", "line", "words"), [
    (TEAM.replace("role: manager", "role: boss"), "users.1.role", 6, "'rep', 'manager' or"),
    (TEAM.replace("manager: lee.wong", "manager: nobody"), "users.0.manager", 5,
     "not one of the users"),
    (TEAM.replace("Lee.Wong@", "maya.chen@").replace("Lee Wong", "Maya Two"), "users.1.email",
     6, "duplicate user email"),
    (TEAM + "  - {name: X, email: x@acme-analytics.example, role: admin, "
            "manager: x@acme-analytics.example}\n", "users.2.manager", 7, "themselves"),
    (TEAM.replace('["@Acme-Analytics.example"]', "[]"), "org.domains", 3, "at least 1"),
    ("org: {name: Acme, domains: [acme.example]\n", None, 2, "invalid YAML"),
])
def test_bad_team_file_names_file_line_and_field(tmp_path: Path, text, field, line, words):
    (tmp_path / "team.yaml").write_text(text, encoding="utf-8")

    with pytest.raises(InputError) as caught:
        load_team(tmp_path)

    error = caught.value
    assert (error.file, error.field, error.line) == (str(tmp_path / "team.yaml"), field, line)
    assert words in error.message


def test_deals_file_is_loaded(tmp_path: Path):
    assert load_deals(tmp_path) == []
    (tmp_path / "deals.yml").write_text(DEALS, encoding="utf-8")

    first, second = load_deals(tmp_path)

    assert (first.external_id, first.owner, first.amount, first.close_date, first.contacts) == (
        "OPP-NW-001", MAYA, Decimal("48000.50"), date(2026, 12, 15), (SAM,))
    assert (second.external_id, second.is_closed, second.is_won, second.close_date) == (
        "1002", True, True, date(2026, 1, 31))


@pytest.mark.parametrize(("text", "field", "line", "words"), [
    (DEALS.replace("2026-12-15", "15/12/2026"), "deals.0.close_date", 8, "YYYY-MM-DD"),
    (DEALS.replace("is_closed: true", "is_closed: false"), "deals.1", 12, "is_won"),
    (DEALS.replace("1002", "OPP-NW-001"), "deals.1.external_id", 12, "duplicate deal"),
    (DEALS.replace("amount: 48000.50", "amount: -1"), "deals.0.amount", 7, "greater than"),
    (DEALS.replace(f"[{SAM}]", "[sam]"), "deals.0.contacts.0", 11, "not an email"),
])
def test_bad_deals_file_names_file_line_and_field(tmp_path: Path, text, field, line, words):
    (tmp_path / "deals.yaml").write_text(text, encoding="utf-8")

    with pytest.raises(InputError) as caught:
        load_deals(tmp_path)

    error = caught.value
    assert (error.file, error.field, error.line) == (str(tmp_path / "deals.yaml"), field, line)
    assert words in error.message


def test_two_spellings_of_the_deals_file_are_ambiguous(tmp_path: Path):
    (tmp_path / "deals.yaml").write_text(DEALS, encoding="utf-8")
    (tmp_path / "deals.yml").write_text(DEALS, encoding="utf-8")

    with pytest.raises(InputError, match="both deals.yaml and deals.yml"):
        load_deals(tmp_path)
