#!/usr/bin/env python3
"""Synthesize the coachloop demo calls from demo/scripts/*.yaml.

Usage (from the repository root):

    .venv/bin/python demo/synthesize.py            # regenerate every call
    .venv/bin/python demo/synthesize.py demo-call-03 demo-call-07   # only these

For every script this writes, into demo/calls/ (overwriting):

* ``<id>.ogg``  Opus audio, 16 kHz. ``stereo`` calls are dual-channel (rep on
  channel 0 / left, buyer(s) on channel 1 / right, silence on the other
  channel while one side speaks); ``mono_vtt`` / ``mono_srt`` calls are a mono
  mix of everybody.
* ``<id>.vtt``  (mono_vtt only) WebVTT transcript with ``<v Speaker Name>``
  voice tags, as Zoom / Teams export it.
* ``<id>.srt``  (mono_srt only) SRT transcript, each cue prefixed with
  ``Speaker Name: ``.
* ``<id>.yaml`` the meeting manifest read by the ``files`` connector.

Speech comes from espeak-ng (``espeak-ng -v <voice> -s <speed> -w x.wav``),
one sentence at a time, so that every transcript cue starts and ends exactly
where that sentence sits in the audio timeline. Pauses are drawn from a
random generator seeded with the call id, so the output is deterministic
(the Ogg muxer and Opus encoder run in bit-exact mode).

Requirements: espeak-ng on PATH, numpy, PyAV, PyYAML.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import yaml

DEMO_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = DEMO_DIR / "scripts"
CALLS_DIR = DEMO_DIR / "calls"
TEAM_FILE = DEMO_DIR / "team.yaml"

RATE = 16_000
# Opus bitrates (bits/s). Stereo is coded as one coupled stream, i.e. ~16 kbps
# per channel; silence costs almost nothing with VBR.
BITRATE_STEREO = 32_000
BITRATE_MONO = 16_000

DEFAULT_SPEED = 155
LEAD_IN_S = 0.6          # silence before the first word
TAIL_S = 0.8             # silence after the last word
TURN_GAP_S = (0.3, 0.8)  # pause between speaker turns
SENTENCE_GAP_S = (0.18, 0.32)  # pause between sentences within a turn
TARGET_RMS = 0.10        # per-speaker speech loudness (full scale = 1.0)
PEAK_LIMIT = 0.89
FADE = int(0.005 * RATE)  # samples

LAYOUTS = ("stereo", "mono_vtt", "mono_srt")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


@dataclass
class Person:
    name: str
    email: str
    voice: str
    pitch: int | None = None


@dataclass
class Cue:
    start: int  # samples
    end: int    # samples
    speaker: Person
    text: str


# --------------------------------------------------------------------------- io


def load_team() -> dict[str, dict]:
    team = yaml.safe_load(TEAM_FILE.read_text())
    return {u["email"]: u for u in team["users"]}


def load_script(path: Path) -> dict:
    script = yaml.safe_load(path.read_text())
    for key in ("id", "title", "started_at", "rep", "buyers", "layout", "turns"):
        if key not in script:
            raise ValueError(f"{path.name}: missing '{key}'")
    if script["layout"] not in LAYOUTS:
        raise ValueError(f"{path.name}: layout must be one of {LAYOUTS}")
    if path.stem != script["id"]:
        raise ValueError(f"{path.name}: file name must match id {script['id']!r}")
    return script


def speakers_for(script: dict, team: dict[str, dict]) -> dict[str, Person]:
    """Map turn speaker keys (rep, buyer, buyer2, ...) to people."""
    rep_user = team[script["rep"]]
    people = {
        "rep": Person(rep_user["name"], rep_user["email"], script["rep_voice"],
                      script.get("rep_pitch")),
    }
    for i, b in enumerate(script["buyers"], start=1):
        p = Person(b["name"], b["email"], b["voice"], b.get("pitch"))
        people[f"buyer{i}"] = p
        if i == 1:
            people["buyer"] = p
    voices = [(p.voice, p.pitch) for k, p in people.items() if k != "buyer"]
    if len(set(voices)) != len(voices):
        raise ValueError(f"{script['id']}: every participant needs a distinct voice")
    for voice, _ in voices:
        # espeak-ng 1.51 silently ignores the +variant on the "en-gb" alias
        # (en-gb+f2 sounds exactly like en-gb+m3); use "en+<variant>" instead.
        if voice.startswith("en-gb+"):
            raise ValueError(f"{script['id']}: use 'en+…' instead of {voice!r}")
    return people


# ---------------------------------------------------------------- synthesis


def split_sentences(text: str) -> list[str]:
    text = " ".join(text.split())
    return [s for s in _SENTENCE_SPLIT.split(text) if s]


def read_wav_16k(path: Path) -> np.ndarray:
    """Decode a wav file and resample to 16 kHz mono float32 in [-1, 1]."""
    out = []
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in c.decode(audio=0):
            for f in resampler.resample(frame):
                out.append(f.to_ndarray()[0])
        for f in resampler.resample(None):
            out.append(f.to_ndarray()[0])
    return np.concatenate(out).astype(np.float32) / 32768.0


def trim(x: np.ndarray, threshold: float = 0.004, margin: int = int(0.02 * RATE)) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > threshold)
    if idx.size == 0:
        return x[:0]
    return x[max(idx[0] - margin, 0): min(idx[-1] + margin + 1, len(x))]


def espeak(text: str, voice: str, speed: int, pitch: int | None, wav: Path) -> np.ndarray:
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed)]
    if pitch is not None:
        cmd += ["-p", str(pitch)]
    cmd += ["-w", str(wav), text]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    x = trim(read_wav_16k(wav))
    n = min(FADE, len(x) // 2)
    if n:  # short fades so that no sentence starts or stops with a click
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def synthesize_call(script: dict, people: dict[str, Person], tmp: Path):
    """Return (tracks, cues): tracks maps speaker key group -> float32 signal."""
    speed = int(script.get("speed", DEFAULT_SPEED))
    rng = random.Random(script["id"])

    # 1. every sentence of every turn, synthesized in parallel
    jobs = []
    for t_idx, turn in enumerate(script["turns"]):
        key = turn["speaker"]
        if key not in people:
            raise ValueError(f"{script['id']}: turn {t_idx}: unknown speaker {key!r}")
        for s_idx, sentence in enumerate(split_sentences(turn["text"])):
            jobs.append((t_idx, key, sentence, tmp / f"{t_idx:03d}_{s_idx:02d}.wav"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        audio = list(pool.map(
            lambda j: espeak(j[2], people[j[1]].voice, speed, people[j[1]].pitch, j[3]),
            jobs))

    # 2. per-speaker loudness normalisation
    gains = {}
    for key in {j[1] for j in jobs}:
        speech = np.concatenate([a for j, a in zip(jobs, audio) if j[1] == key])
        rms = float(np.sqrt(np.mean(speech ** 2))) or 1.0
        gain = TARGET_RMS / rms
        gain = min(gain, PEAK_LIMIT / float(np.max(np.abs(speech))))
        gains[key] = gain

    # 3. timeline
    cues: list[Cue] = []
    pos = int(LEAD_IN_S * RATE)
    placed = []
    prev_turn = None
    for (t_idx, key, sentence, _), a in zip(jobs, audio):
        if prev_turn is not None:
            lo, hi = TURN_GAP_S if t_idx != prev_turn else SENTENCE_GAP_S
            pos += int(round(rng.uniform(lo, hi) * RATE))
        placed.append((pos, key, a * gains[key]))
        cues.append(Cue(pos, pos + len(a), people[key], sentence))
        pos += len(a)
        prev_turn = t_idx
    total = pos + int(TAIL_S * RATE)

    rep = np.zeros(total, np.float32)
    buyers = np.zeros(total, np.float32)
    for start, key, a in placed:
        (rep if key == "rep" else buyers)[start:start + len(a)] += a
    return rep, buyers, cues


# ------------------------------------------------------------------ writers


def write_opus(path: Path, channels: list[np.ndarray], bitrate: int) -> None:
    layout = "stereo" if len(channels) == 2 else "mono"
    data = np.stack(channels)
    data = np.clip(np.round(data * 32767.0), -32768, 32767).astype(np.int16)
    path.unlink(missing_ok=True)
    with av.open(str(path), "w", format="ogg") as c:
        c.flags |= av.container.Flags.bitexact.value
        s = c.add_stream("libopus", rate=RATE, options={"application": "voip"})
        s.layout = layout
        s.bit_rate = bitrate
        s.codec_context.flags |= av.codec.context.Flags.bitexact.value
        chunk = 1600
        for i in range(0, data.shape[1], chunk):
            block = np.ascontiguousarray(data[:, i:i + chunk])
            frame = av.AudioFrame.from_ndarray(block, format="s16p", layout=layout)
            frame.sample_rate = RATE
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)


def _ts(samples: int, sep: str) -> str:
    ms = int(round(samples * 1000 / RATE))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_vtt(path: Path, cues: list[Cue]) -> None:
    lines = ["WEBVTT", ""]
    for n, cue in enumerate(cues, start=1):
        lines += [
            str(n),
            f"{_ts(cue.start, '.')} --> {_ts(cue.end, '.')}",
            f"<v {cue.speaker.name}>{cue.text}</v>",
            "",
        ]
    path.write_text("\n".join(lines))


def write_srt(path: Path, cues: list[Cue]) -> None:
    lines = []
    for n, cue in enumerate(cues, start=1):
        lines += [
            str(n),
            f"{_ts(cue.start, ',')} --> {_ts(cue.end, ',')}",
            f"{cue.speaker.name}: {cue.text}",
            "",
        ]
    path.write_text("\n".join(lines))


def _q(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(path: Path, script: dict, people: dict[str, Person],
                   recording: str, transcript: str | None) -> None:
    rep = people["rep"]
    buyers = [people[f"buyer{i}"] for i in range(1, len(script["buyers"]) + 1)]
    lines = [
        f"external_id: {script['id']}",
        f"title: {_q(script['title'])}",
        f"started_at: {_q(script['started_at'])}",
    ]
    if script.get("deal"):
        lines.append(f"deal: {script['deal']}")
    lines.append(f"recording: {recording}")
    if script["layout"] == "stereo":
        lines += ["channels:", f"  0: {rep.email}", f"  1: {buyers[0].email}"]
    if transcript:
        lines.append(f"transcript: {transcript}")
    lines.append("participants:")
    for p in [rep, *buyers]:
        lines.append(f"  - {{name: {p.name}, email: {p.email}}}")
    text = "\n".join(lines) + "\n"
    yaml.safe_load(text)  # sanity: must parse
    path.write_text(text)


# --------------------------------------------------------------------- main


def build(script: dict, team: dict[str, dict]) -> float:
    people = speakers_for(script, team)
    cid = script["id"]
    with tempfile.TemporaryDirectory(prefix=f"coachloop-{cid}-") as tmp:
        rep, buyers, cues = synthesize_call(script, people, Path(tmp))

    layout = script["layout"]
    recording = f"{cid}.ogg"
    transcript = None
    for ext in ("vtt", "srt"):
        (CALLS_DIR / f"{cid}.{ext}").unlink(missing_ok=True)
    if layout == "stereo":
        write_opus(CALLS_DIR / recording, [rep, buyers], BITRATE_STEREO)
    else:
        mix = rep + buyers  # turns never overlap
        write_opus(CALLS_DIR / recording, [mix], BITRATE_MONO)
        if layout == "mono_vtt":
            transcript = f"{cid}.vtt"
            write_vtt(CALLS_DIR / transcript, cues)
        else:
            transcript = f"{cid}.srt"
            write_srt(CALLS_DIR / transcript, cues)
    write_manifest(CALLS_DIR / f"{cid}.yaml", script, people, recording, transcript)
    return len(rep) / RATE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", help="only these call ids (default: all)")
    args = ap.parse_args(argv)

    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found on PATH", file=sys.stderr)
        return 1
    team = load_team()
    scripts = [load_script(p) for p in sorted(SCRIPTS_DIR.glob("*.yaml"))]
    if args.ids:
        unknown = set(args.ids) - {s["id"] for s in scripts}
        if unknown:
            print(f"unknown ids: {sorted(unknown)}", file=sys.stderr)
            return 1
        scripts = [s for s in scripts if s["id"] in args.ids]
    CALLS_DIR.mkdir(exist_ok=True)
    for script in scripts:
        seconds = build(script, team)
        flag = "" if 30 <= seconds <= 120 else "  <-- outside 30-120 s"
        print(f"{script['id']:14s} {script['layout']:9s} {seconds:6.1f} s{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
