"""The meeting manifest: one YAML or JSON file per meeting in a recordings folder.

```yaml
external_id: demo-call-01          # optional; defaults to the manifest file stem
title: "Discovery call - Northwind Traders"
started_at: "2026-10-05T15:00:00Z" # ISO 8601; without an offset it is UTC
deal: OPP-NW-001                   # optional deal external id
recording: demo-call-01.ogg        # path relative to the manifest
channels: {0: maya@acme.example, 1: sam@northwind.example}   # optional, needs recording
tracks: [{file: maya.m4a, speaker: maya@acme.example}]        # or per-participant files
transcript: demo-call-01.vtt       # optional platform transcript (.vtt / .srt)
participants:
  - {name: Maya Chen, email: maya@acme.example, role: rep}    # role optional: rep | buyer
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.files.document import Document, FieldError
from connectors.files.fields import Email, ExternalId, Text, UtcDateTime


class ParticipantEntry(BaseModel):
    """A person on the call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    email: Email | None = None
    role: Literal["rep", "buyer"] | None = None


class TrackEntry(BaseModel):
    """One participant's own audio file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Text
    speaker: Email


class Manifest(BaseModel):
    """A meeting manifest as written, before its files are looked at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_id: ExternalId | None = None
    title: Text
    started_at: UtcDateTime
    deal: ExternalId | None = None
    recording: Text | None = None
    channels: dict[Annotated[int, Field(ge=0)], Email] | None = None
    tracks: list[TrackEntry] | None = None
    transcript: Text | None = None
    participants: list[ParticipantEntry] = Field(default_factory=list)


def reference_errors(manifest: Manifest, doc: Document) -> list[FieldError]:
    """Problems between fields: who is referenced, and whether there is anything to analyse."""
    errors: list[FieldError] = []
    first_index: dict[str, int] = {}
    for index, participant in enumerate(manifest.participants):
        if participant.email is None:
            continue
        if participant.email in first_index:
            errors.append(doc.error(
                ("participants", index, "email"),
                f"duplicate participant email {participant.email} "
                f"(also participants.{first_index[participant.email]})"))
        else:
            first_index[participant.email] = index

    for channel, email in sorted((manifest.channels or {}).items()):
        if email not in first_index:
            errors.append(doc.error(("channels", channel),
                                    f"unknown participant {email}: not among participants"))
    for index, track in enumerate(manifest.tracks or ()):
        if track.speaker not in first_index:
            errors.append(doc.error(("tracks", index, "speaker"),
                                    f"unknown participant {track.speaker}: not among "
                                    "participants"))

    if not (manifest.recording or manifest.tracks or manifest.transcript):
        errors.append(doc.error(("recording",), "nothing to analyse: give a recording, "
                                                "tracks or a transcript"))
    if manifest.recording and manifest.tracks:
        # Transcribing both would count every word twice.
        errors.append(doc.error(("tracks",), "give either a recording or per-participant "
                                             "tracks, not both"))
    if manifest.channels and not manifest.recording:
        errors.append(doc.error(("channels",), "channels split a recording, but there is no "
                                               "recording"))
    return errors
