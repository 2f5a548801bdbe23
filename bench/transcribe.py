"""Transcription overhead: our pipeline vs raw faster-whisper on the same audio, in one run.

    python bench/transcribe.py [--repeats 3] [--calls 3]

For each demo dual-channel call: raw = faster-whisper's own decode_audio(split_stereo) and
transcribe on both channels with the pipeline's settings; pipeline = `transcribe_meeting` (decode, ASR, bleed removal, attribution, database
writes). Runs alternate and the medians are compared, so machine noise hits both alike.
Prints the overhead ratio, the real-time factor and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="how many stereo demo calls")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="coachloop-bench-")
    os.environ["COACHLOOP_DATA_DIR"] = workdir
    os.environ.pop("COACHLOOP_DATABASE_URL", None)

    from connectors.files import FilesSource
    from core.db import migrate, session_scope
    from core.ingest import ensure_org, ingest_record
    from core.pipeline import transcribe_meeting
    from core.settings import get_settings
    from core.transcribe import get_model

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
