"""A quick look at an audio file: can it be decoded, and how many channels does it have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError

_FRAMES_TO_DECODE = 3


@dataclass(frozen=True)
class AudioProbe:
    """What probing found: the first audio stream's codec and channel count."""

    codec: str
    channels: int


def probe_audio(path: Path) -> AudioProbe:
    """Open `path` with PyAV and decode the first frames of its first audio stream.

    Raises `InputError` ("unreadable audio", naming the file) when it cannot be opened, has
    no audio stream or yields no decodable audio.
    """
    import av  # heavy; only needed when a folder is actually read

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise InputError("unreadable audio: the file has no audio stream",
                                 file=str(path))
            channels = decoded = 0
            for frame in container.decode(stream):
                channels = frame.layout.nb_channels
                decoded += 1
                if decoded == _FRAMES_TO_DECODE:
                    break
            codec = stream.codec_context.name
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InputError(f"unreadable audio ({reason})", file=str(path),
                         detail=str(exc)) from exc
    if decoded == 0:
        raise InputError("unreadable audio: no audio could be decoded", file=str(path))
    return AudioProbe(codec=codec, channels=channels)
