"""Transcription: our pipeline vs raw faster-whisper on the same audio, and the ASR settings
measured against each other, in one run.

    python bench/transcribe.py [--repeats 3] [--calls 3]
    python bench/transcribe.py --settings [--repeats 2]

Overhead: for each demo dual-channel call, raw = faster-whisper's own decode_audio(split_stereo)
and transcribe (batched, as the pipeline runs audio this long) on both channels with the
pipeline's settings; pipeline = `transcribe_meeting`, what the `transcribe` task runs (decode,
ASR, bleed removal, attribution, database writes), in the same warm process, as in a worker.
Runs alternate and the medians are compared, so machine noise hits both alike. Prints the
overhead ratio, the real-time factor and the peak RSS.

--settings: each candidate setting (beam size, batch size, threads, compute type, word
timestamps) on the demo calls that have both audio (channels mixed) and the meeting
platform's own transcript, which serves as the reference: time relative to the default and word error
rate (WER) against the reference, rounds interleaved so noise hits every setting alike.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# Each candidate differs from the defaults in one thing (the defaults are the first row).
CANDIDATES = {
    "defaults": {},
    "beam 1 (greedy)": {"beam_size": 1},
    "batch 0 (sequential)": {"batch_size": 0},
    "batch 16": {"batch_size": 16},
    "2 threads": {"cpu_threads": 2},
    "float32": {"compute_type": "float32"},
    "no word timestamps": {"word_timestamps": False},
}


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def compare_settings(repeats: int) -> None:
    import jiwer

    from core.settings import get_settings
    from core.transcribe import get_model, transcribe_audio
    from core.transcripts import load_platform_transcript
    from faster_whisper import decode_audio

    defaults = get_settings().asr
    calls = []
    for manifest in sorted((ROOT / "demo" / "calls").glob("*.yaml")):
        meta = yaml.safe_load(manifest.read_text())
        audio = ROOT / "demo" / "calls" / str(meta.get("recording", ""))
        if "transcript" not in meta or not audio.is_file():
            continue
        # The two channels mixed down: each channel also carries the other side faintly
        # (bleed), which the pipeline removes after ASR; the mix is what the meeting
        # platform's transcript describes.
        mixed = decode_audio(str(audio))
        reference = load_platform_transcript(ROOT / "demo" / "calls" / meta["transcript"])
        calls.append((mixed, words(" ".join(u.text for u in reference))))
    if not calls:
        raise SystemExit("no demo call has both a recording and a platform transcript")
    audio_seconds = sum(len(mixed) / 16_000 for mixed, _ in calls)
    settings = {name: defaults.model_copy(update=change) for name, change in CANDIDATES.items()}
    for asr in settings.values():
        get_model(asr)  # every model loaded before any timing
    times = {name: [] for name in settings}
    errors = {}
    for _ in range(repeats):
        for name, asr in settings.items():
            started = time.perf_counter()
            hypotheses = []
            for mixed, _ in calls:
                hypotheses.append(words(" ".join(u.text for u in transcribe_audio(mixed, asr)[0])))
            times[name].append(time.perf_counter() - started)
            errors[name] = jiwer.wer([ref for _, ref in calls], hypotheses)
    base = statistics.median(times["defaults"])
    print(f"{len(calls)} calls with audio and a platform transcript, {audio_seconds:.0f} s of "
          f"audio (channels mixed); defaults: beam {defaults.beam_size}, batch {defaults.batch_size}, "
          f"threads {defaults.cpu_threads or 'auto'}, {defaults.compute_type}, word timestamps "
          f"{'on' if defaults.word_timestamps else 'off'}; median of {repeats}")
    print(f"{'setting':<22} {'time ratio':>10} {'real-time factor':>17} {'WER':>7}")
    for name in settings:
        median = statistics.median(times[name])
        print(f"{name:<22} {median / base:10.2f} {median / audio_seconds:17.3f} "
              f"{errors[name]:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="how many stereo demo calls")
    parser.add_argument("--settings", action="store_true",
                        help="compare ASR settings for time and WER instead")
    args = parser.parse_args()
    if args.settings:
        os.environ.setdefault("COACHLOOP_DATA_DIR", tempfile.mkdtemp(prefix="coachloop-bench-"))
        compare_settings(args.repeats)
        return

    workdir = tempfile.mkdtemp(prefix="coachloop-bench-")
    os.environ["COACHLOOP_DATA_DIR"] = workdir
    os.environ.pop("COACHLOOP_DATABASE_URL", None)

    from connectors.files import FilesSource
    from core.db import migrate, session_scope
    from core.ingest import ensure_org, ingest_record
    from core.models import Meeting
    from core.pipeline import transcribe_meeting
    from core.settings import get_settings
    from core.transcribe import get_model
    from sqlmodel import update

    settings = get_settings()
    migrate()
    records = [r for r in FilesSource(ROOT / "demo" / "calls").list_meetings()
               if hasattr(r, "tracks") and len(r.tracks) == 2][: args.calls]
    if not records:
        raise SystemExit("no dual-channel demo calls found in demo/calls")
    with session_scope() as session:
        org = ensure_org(session, "bench", ["acme-analytics.example"])
        ids = [ingest_record(session, org, r).meeting_id for r in records]

    from faster_whisper import BatchedInferencePipeline, decode_audio

    asr = settings.asr
    model = get_model(asr)  # load once, outside the timings
    options = dict(language=asr.language, beam_size=asr.beam_size, vad_filter=asr.vad,
                   word_timestamps=True)

    def raw_whisper(samples) -> None:
        """faster-whisper itself, with the settings the pipeline uses for this length."""
        if asr.batch_size > 0 and len(samples) / 16_000 >= asr.batch_min_seconds:
            segments, _ = BatchedInferencePipeline(model=model).transcribe(
                samples, batch_size=asr.batch_size, **options)
        else:
            segments, _ = model.transcribe(samples, condition_on_previous_text=False, **options)
        list(segments)

    audio_seconds = sum(len(channel) / 16_000 for r in records
                        for channel in decode_audio(r.tracks[0].path, split_stereo=True))
    raw_times, pipe_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for record in records:
            for channel in decode_audio(record.tracks[0].path, split_stereo=True):
                raw_whisper(channel)
        raw_times.append(time.perf_counter() - start)
        with session_scope() as session:  # transcribe again, as after `process --again`
            session.exec(update(Meeting).where(Meeting.id.in_(ids)).values(stage="ingested"))
        start = time.perf_counter()
        for meeting_id in ids:
            transcribe_meeting(meeting_id)
        pipe_times.append(time.perf_counter() - start)

    raw_s, pipe_s = statistics.median(raw_times), statistics.median(pipe_times)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"audio: {len(records)} dual-channel calls, {audio_seconds:.1f} s of channel audio; "
          f"model {settings.asr.model}, {settings.asr.device}/{settings.asr.compute_type}, "
          f"beam {settings.asr.beam_size}, repeats {args.repeats}")
    print(f"raw faster-whisper   median {raw_s:7.2f} s   real-time factor {raw_s / audio_seconds:.3f}")
    print(f"coachloop pipeline   median {pipe_s:7.2f} s   real-time factor {pipe_s / audio_seconds:.3f}")
    print(f"overhead ratio (pipeline / raw): {pipe_s / raw_s:.3f}")
    print(f"peak RSS: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
