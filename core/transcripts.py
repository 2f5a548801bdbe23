"""Platform transcripts (WebVTT from Zoom and Microsoft Teams, SRT) read into `Utterance`s.

A platform transcript, when a meeting has one, replaces speech recognition: its cues already
carry times, text and usually the speaker's display name. Bad input raises `InputError` naming
the file and the line at fault.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.domain import Utterance
from core.errors import InputError

# Hours are optional in WebVTT (`MM:SS.mmm`) and may have more than two digits.
_VTT_TIME = r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t]+.*)?$")
# SRT always has hours. Its decimal mark is a comma; some tools write a dot, which we accept.
_SRT_TIME = r"(\d+):(\d{2}):(\d{2})[,.](\d{3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}[ \t]+-->[ \t]+{_SRT_TIME}(?:[ \t]+.*)?$")
_LOOKS_LIKE_TIMING = re.compile(r"^\s*(?:\d+:)?\d+:\d+|.*-->")

# Any markup inside cue text: WebVTT tags (<c.x>, <i>, <00:00:01.000>) and SRT's <i>/<font>.
_TAG = re.compile(r"<[^<>]*>")
# SSA-style overrides some SRT writers emit, e.g. {\an8}.
_SSA_OVERRIDE = re.compile(r"\{\\[^{}]*\}")
_VOICE_TAG = re.compile(r"^<v(?:\.[^\s>]*)?(?:[ \t]+([^>]*))?>$")
# Zoom's older style and most SRT writers put the speaker in front: "Maya Chen: Hello".
# A URL ("https://…") has no space after the colon, so it never matches.
_SPEAKER_PREFIX = re.compile(r"^([^\s:<>][^:<>]{0,79}?)[ \t]*:[ \t]+(\S.*)$")
_MAX_SPEAKER_WORDS = 6
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class _Block:
    """Consecutive non-blank lines; `first_line` is the 1-based number of the first one."""

    first_line: int
    lines: tuple[str, ...]


def parse_webvtt(text: str, origin: str) -> list[Utterance]:
    """Read a WebVTT transcript as Zoom and Teams write it into utterances sorted by start.

    The speaker comes from a voice tag (`<v Maya Chen>…</v>`, Teams) or, when a cue has no
    voice tag, from a `Maya Chen: …` prefix (older Zoom files). A cue with several voices
    yields one utterance per voice, all with the cue's times.
    """
    blocks = _blocks(text)
    if not blocks or not _is_webvtt_header(blocks[0].lines[0]):
        line = blocks[0].first_line if blocks else 1
        raise InputError("not a WebVTT file: the first line must be 'WEBVTT'", file=origin,
                         line=line)
    for offset, header_line in enumerate(blocks[0].lines):
        if "-->" in header_line:  # a cue glued to the header would otherwise be dropped
            raise InputError("expected a blank line between the WEBVTT header and the first "
                             "cue", file=origin, line=blocks[0].first_line + offset)
    utterances: list[Utterance] = []
    cues = 0
    for block in blocks[1:]:
        keyword = block.lines[0].split(maxsplit=1)[0]
        if keyword in ("NOTE", "STYLE", "REGION") and "-->" not in block.lines[0]:
            continue
        # A cue may start with an identifier line; a line that starts like a time is the
        # timing line even when malformed, so the error points at it.
        timing_index = 0 if _LOOKS_LIKE_TIMING.match(block.lines[0]) else 1
        if timing_index >= len(block.lines):
            raise InputError("text outside a cue: expected a cue timing line "
                             "'HH:MM:SS.mmm --> HH:MM:SS.mmm'", file=origin,
                             line=block.first_line)
        line_no = block.first_line + timing_index
        start, end = _timing(block.lines[timing_index], _VTT_TIMING, origin, line_no,
                             "HH:MM:SS.mmm --> HH:MM:SS.mmm")
        cues += 1
        payload = "\n".join(block.lines[timing_index + 1:])
        for speaker, words in _voices(payload):
            if speaker is None:
                speaker, words = _split_speaker_prefix(words)
            utterances.append(Utterance(start=start, end=end, text=words, speaker_label=speaker))
    if cues == 0:
        raise InputError("the transcript contains no cues", file=origin)
    return sorted(utterances, key=lambda u: u.start)


def parse_srt(text: str, origin: str) -> list[Utterance]:
    """Read an SRT transcript into utterances sorted by start.

    The speaker comes from a `Name: text` prefix when the cue has one.
    """
    utterances: list[Utterance] = []
    cues = 0
    for block in _blocks(text):
        # The cue number is customary but some writers drop it, so find the timing line.
        timing_index = 1 if len(block.lines) > 1 and block.lines[0].strip().isdigit() else 0
        line_no = block.first_line + timing_index
        start, end = _timing(block.lines[timing_index], _SRT_TIMING, origin, line_no,
                             "HH:MM:SS,mmm --> HH:MM:SS,mmm")
        cues += 1
        raw = " ".join(block.lines[timing_index + 1:])
        words = _clean(_SSA_OVERRIDE.sub("", _TAG.sub("", raw)))
        if not words:
            continue
        speaker, words = _split_speaker_prefix(words)
        utterances.append(Utterance(start=start, end=end, text=words, speaker_label=speaker))
    if cues == 0:
        raise InputError("the transcript contains no cues", file=origin)
    return sorted(utterances, key=lambda u: u.start)


def load_platform_transcript(path: str | Path, *, max_bytes: int | None = None,
                             max_cues: int | None = None) -> list[Utterance]:
    """Read a `.vtt` or `.srt` file (UTF-8, BOM allowed) into utterances sorted by start;
    one larger than `max_bytes` or with more than `max_cues` cues is refused, clearly."""
    path = Path(path)
    parsers = {".vtt": parse_webvtt, ".srt": parse_srt}
    parser = parsers.get(path.suffix.lower())
    if parser is None:
        raise InputError(f"unsupported transcript format '{path.suffix or path.name}'; "
                         "expected a .vtt or .srt file", file=str(path))
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise InputError(f"the transcript is {size / 1024**2:.1f} MB, over the "
                             f"{max_bytes / 1024**2:.0f} MB limit (COACHLOOP_MAX_TRANSCRIPT_"
                             "BYTES): a call's transcript is far smaller; is it the right "
                             "file?", file=str(path))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("transcript file not found", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the transcript: {exc.strerror}", file=str(path)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError("the transcript is not UTF-8 text; save it as UTF-8",
                         file=str(path), line=line) from None
    if max_cues is not None:
        cues = text.count("-->")  # every VTT and SRT cue has one timing arrow
        if cues > max_cues:
            raise InputError(f"the transcript has {cues:,} cues, over the limit of "
                             f"{max_cues:,} (COACHLOOP_MAX_SEGMENTS): a two-hour call has "
                             "about 2,000", file=str(path))
    return parser(text, str(path))


def _blocks(text: str) -> list[_Block]:
    """Split text into blank-line separated blocks, tolerating a BOM and CRLF/CR endings."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[_Block] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            blocks.append(_Block(first, tuple(current)))
            current = []
    if current:
        blocks.append(_Block(first, tuple(current)))
    return blocks


def _is_webvtt_header(line: str) -> bool:
    return line == "WEBVTT" or line.startswith(("WEBVTT ", "WEBVTT\t"))


def _timing(line: str, pattern: re.Pattern[str], origin: str, line_no: int,
            expected: str) -> tuple[float, float]:
    match = pattern.match(line.strip())
    if match is None:
        raise InputError(f"malformed cue timing {line.strip()!r}; expected '{expected}'",
                         file=origin, line=line_no)
    groups = match.groups()
    start = _seconds(*groups[:4], origin=origin, line_no=line_no)
    end = _seconds(*groups[4:], origin=origin, line_no=line_no)
    if end < start:
        raise InputError(f"cue ends ({end:.3f}s) before it starts ({start:.3f}s)",
                         file=origin, line=line_no)
    return start, end


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str, *, origin: str,
             line_no: int) -> float:
    if int(minutes) > 59 or int(seconds) > 59:
        raise InputError("malformed timestamp: minutes and seconds must be below 60",
                         file=origin, line=line_no)
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _voices(payload: str) -> Iterator[tuple[str | None, str]]:
    """Split WebVTT cue text into (voice, plain text) runs; text outside voices has None."""
    runs: list[tuple[str | None, list[str]]] = [(None, [])]
    position = 0
    for tag in _TAG.finditer(payload):
        runs[-1][1].append(payload[position:tag.start()])
        position = tag.end()
        voice = _VOICE_TAG.match(tag.group())
        if voice:
            runs.append(((voice.group(1) or "").strip() or None, []))
        elif tag.group() == "</v>":
            runs.append((None, []))
    runs[-1][1].append(payload[position:])

    merged: list[tuple[str | None, str]] = []
    for speaker, parts in runs:
        words = _clean("".join(parts))
        if not words:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1] = (speaker, f"{merged[-1][1]} {words}")
        else:
            merged.append((speaker, words))
    yield from merged


def _clean(text: str) -> str:
    """Decode entities and collapse line breaks and runs of spaces into single spaces."""
    return _WHITESPACE.sub(" ", html.unescape(text)).strip()


def _split_speaker_prefix(text: str) -> tuple[str | None, str]:
    match = _SPEAKER_PREFIX.match(text)
    if match is None or len(match.group(1).split()) > _MAX_SPEAKER_WORDS:
        return None, text
    return match.group(1).strip(), match.group(2)
