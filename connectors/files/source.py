"""`FilesSource`: meetings from a local folder of recordings with one manifest per meeting."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import LocalMediaSource, SourceProblem
from connectors.files.audio import probe_audio
from connectors.files.deals import DEALS_FILE_NAMES
from connectors.files.document import Document, FieldError
from connectors.files.manifest import Manifest, reference_errors
from connectors.files.team import TEAM_FILE_NAMES
from core.domain import AudioTrack, MeetingRecord, ParticipantInfo, Role
from core.errors import ConfigError, InputError
from core.transcripts import load_platform_transcript

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_NOT_MANIFESTS = {name.lower() for name in (*TEAM_FILE_NAMES, *DEALS_FILE_NAMES)}
_HASH_CHUNK = 1 << 20

Loc = tuple[str | int, ...]  # a field's path in the manifest, e.g. ("tracks", 0, "file")


class FilesSource(LocalMediaSource):
    """Meetings from `folder`: each `*.yaml`, `*.yml` or `*.json` file in it (not in
    subfolders; not `team.yaml`/`deals.yaml`) describes one meeting and names its files."""

    name = "files"

    def __init__(self, folder: str | Path):
        self.folder = Path(os.path.abspath(folder))

    def check(self) -> None:
        """Raise `ConfigError` unless the folder exists and is a folder."""
        if not self.folder.exists():
            raise ConfigError(f"recordings folder not found: {self.folder}")
        if not self.folder.is_dir():
            raise ConfigError(f"the files source needs a folder of meeting manifests, but "
                              f"{self.folder} is a file")

    def manifest_paths(self) -> list[Path]:
        """The manifests in the folder, sorted by name."""
        self.check()
        return sorted(
            path for path in self.folder.iterdir()
            if path.suffix.lower() in MANIFEST_SUFFIXES
            and not path.name.startswith(".")  # editor and macOS ("._x.yaml") side files
            and path.name.lower() not in _NOT_MANIFESTS
            and path.is_file())

    def list_meetings(self, since: datetime | None = None
                      ) -> Iterator[MeetingRecord | SourceProblem]:
        """Yield a `MeetingRecord` per valid manifest that started at or after `since`, and
        `SourceProblem`s (file, field, line) for each problem in the others.

        A manifest whose fields are invalid is always reported, since its start is unknown;
        one that starts before `since` is otherwise skipped before its files are examined.
        """
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        claimed: dict[str, Path] = {}
        for path in self.manifest_paths():
            yield from self._read_manifest(path, since, claimed)

    @classmethod
    def record_for(cls, origin: str) -> MeetingRecord:
        """The meeting described by the manifest at `origin`; its first problem as `InputError`."""
        path = Path(os.path.abspath(origin))
        for item in cls(path.parent)._read_manifest(path, None, {}):
            if isinstance(item, SourceProblem):
                raise InputError(item.message, file=item.origin, field=item.field, line=item.line)
            return item
        raise InputError("the manifest describes no meeting", file=origin)

    def _read_manifest(self, path: Path, since: datetime | None, claimed: dict[str, Path]
                       ) -> Iterator[MeetingRecord | SourceProblem]:
        origin = str(path)
        try:
            raw = path.read_bytes()
            doc = Document.parse(path, raw)
        except OSError as exc:
            yield SourceProblem(origin, None, f"cannot read the manifest: {exc.strerror}")
            return
        except InputError as exc:
            yield SourceProblem(origin, exc.field, _without_location(exc), exc.line)
            return

        manifest, errors = doc.validate(Manifest)
        if manifest is None:
            yield from _problems(origin, errors)
            return
        external_id = manifest.external_id or path.stem
        if external_id in claimed:
            yield _problem(origin, doc.error(
                ("external_id",), f"external_id '{external_id}' is already used by "
                                  f"{claimed[external_id].name}"))
            return
        claimed[external_id] = path
        if since is not None and manifest.started_at < since:
            return

        errors = reference_errors(manifest, doc)
        files = _referenced_files(manifest, path.parent)
        errors += [doc.error(loc, message) for loc, file in files.items()
                   if (message := _outside(file, path.parent) or _missing(file, path.parent))]
        if errors:
            yield from _problems(origin, errors)
            return
        errors = _content_errors(manifest, files, doc)
        if errors:
            yield from _problems(origin, errors)
            return

        try:
            content_hash = _content_hash(raw, files)
        except OSError as exc:  # a file went away or became unreadable since it was checked
            yield SourceProblem(origin, None, f"cannot read a referenced file: {exc}")
            return
        yield MeetingRecord(
            source=self.name,
            external_id=external_id,
            title=manifest.title,
            started_at=manifest.started_at,
            participants=tuple(
                ParticipantInfo(name=p.name, email=p.email, role=Role(p.role) if p.role else None)
                for p in manifest.participants),
            tracks=_tracks(manifest, files),
            transcript_path=str(files[("transcript",)]) if manifest.transcript else None,
            deal_external_id=manifest.deal,
            content_hash=content_hash,
            origin=origin,
        )


def _referenced_files(manifest: Manifest, base: Path) -> dict[Loc, Path]:
    """Every file the manifest names, by field, in the fixed order the content hash uses."""
    files: dict[Loc, Path] = {}
    if manifest.recording:
        files[("recording",)] = _absolute(base, manifest.recording)
    for index, track in enumerate(manifest.tracks or ()):
        files[("tracks", index, "file")] = _absolute(base, track.file)
    if manifest.transcript:
        files[("transcript",)] = _absolute(base, manifest.transcript)
    return files


def _absolute(base: Path, name: str) -> Path:
    return Path(os.path.abspath(base / name))


def _outside(file: Path, base: Path) -> str | None:
    """Why `file` may not be read: it leaves the manifest's folder (`../`, an absolute path,
    a symlink pointing out) and no configured media root holds it."""
    from core.settings import get_settings

    real = Path(os.path.realpath(file))
    roots = [Path(os.path.realpath(base))] + [Path(os.path.realpath(r))
                                              for r in get_settings().media_roots]
    if any(real.is_relative_to(root) for root in roots):
        return None
    return (f"{file.name} is outside the manifest's folder ({real}); an admin can allow a "
            "folder with COACHLOOP_MEDIA_ROOTS")


def _missing(file: Path, base: Path) -> str | None:
    if file.is_file():
        return None
    shown = os.path.relpath(file, base) if file.is_relative_to(base) else str(file)
    if file.exists():
        return f"not a file: {shown}"
    return f"file not found: {shown} (looked for {file})"


def _content_errors(manifest: Manifest, files: dict[Loc, Path], doc: Document
                    ) -> list[FieldError]:
    """Open every audio file and the transcript: are they what the manifest says they are."""
    errors: list[FieldError] = []
    for loc, file in files.items():
        try:
            if loc == ("transcript",):
                load_platform_transcript(file)
                continue
            probe = probe_audio(file)
        except InputError as exc:
            errors.append(doc.error(loc, exc.message))
            continue
        if loc == ("recording",):
            for channel in sorted(manifest.channels or ()):
                if channel >= probe.channels:
                    errors.append(doc.error(
                        ("channels", channel),
                        f"channel {channel} does not exist: {file.name} has {probe.channels} "
                        f"channel{'s' if probe.channels != 1 else ''} "
                        f"(numbered from 0)"))
    return errors


def _tracks(manifest: Manifest, files: dict[Loc, Path]) -> tuple[AudioTrack, ...]:
    if manifest.tracks:
        return tuple(AudioTrack(path=str(files[("tracks", index, "file")]),
                                speaker_email=track.speaker)
                     for index, track in enumerate(manifest.tracks))
    if not manifest.recording:
        return ()
    recording = str(files[("recording",)])
    if manifest.channels:
        return tuple(AudioTrack(path=recording, channel=channel, speaker_email=email)
                     for channel, email in sorted(manifest.channels.items()))
    return (AudioTrack(path=recording),)


def _content_hash(manifest_bytes: bytes, files: dict[Loc, Path]) -> str:
    """sha256 over the manifest and each referenced file, each framed by its field and length
    so that moving bytes from one file to the next changes the hash."""
    digest = hashlib.sha256()
    digest.update(_frame("manifest", len(manifest_bytes)))
    digest.update(manifest_bytes)
    for loc, file in files.items():
        with file.open("rb") as stream:
            digest.update(_frame(".".join(map(str, loc)), os.fstat(stream.fileno()).st_size))
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _frame(label: str, size: int) -> bytes:
    return f"{label}\0{size}\0".encode()


def _problems(origin: str, errors: list[FieldError]) -> Iterator[SourceProblem]:
    return (_problem(origin, error) for error in errors)


def _problem(origin: str, error: FieldError) -> SourceProblem:
    return SourceProblem(origin, error.field, error.message, error.line)


def _without_location(exc: InputError) -> str:
    """The message of an error about the manifest itself, minus the "file:line [field]: "
    prefix `InputError` puts in front, since `SourceProblem` carries those separately."""
    where = (exc.file or "") + (f":{exc.line}" if exc.line is not None else "")
    if exc.field:
        where += f" [{exc.field}]" if where else exc.field
    return exc.message.removeprefix(f"{where}: ") if where else exc.message
