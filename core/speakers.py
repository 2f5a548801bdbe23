"""Who said what: map utterances to participants, and participants to rep / buyer.

Attribution sources, best first: a per-channel or per-participant audio track (the track
names its speaker), a platform transcript's speaker name, nothing (mixed mono audio without a
platform transcript: every segment stays `unknown` and is never used to score a rep).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.domain import Role, Utterance

# How sure we are, by how the speaker was matched.
CONFIDENCE_TRACK = 0.9  # a channel/track can carry some bleed from the other side
CONFIDENCE_EXACT_NAME = 0.95
CONFIDENCE_NAME_WITHOUT_SUFFIX = 0.9  # "Maya Chen (Acme)" → "Maya Chen"
CONFIDENCE_PARTIAL_NAME = 0.75  # a unique first name or initials-free subset of the name


@dataclass(frozen=True)
class Speaker:
    """A meeting participant as attribution needs them."""

    key: int  # participant id (or index before the rows exist)
    name: str
    email: str | None
    role: Role


@dataclass(frozen=True)
class Attribution:
    """Who an utterance belongs to and how sure we are."""

    speaker: Speaker | None
    role: Role
    confidence: float


UNATTRIBUTED = Attribution(None, Role.UNKNOWN, 0.0)


def role_for(email: str | None, explicit: Role | None, org_domains: list[str]) -> Role:
    """Rep if the email is on one of the org's domains, buyer if on another; else `explicit`."""
    if email and "@" in email:
        domain = email.rsplit("@", 1)[1].lower()
        ours = {d.lower().lstrip("@") for d in org_domains}
        if ours:
            return Role.REP if domain in ours or any(domain.endswith("." + d) for d in ours) \
                else Role.BUYER
    return explicit or Role.UNKNOWN


def _normal(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^\w\s@.]", " ", text.casefold()).split())


def _without_suffix(label: str) -> str:
    return re.sub(r"\s*[\(\[].*?[\)\]]\s*$", "", label).strip()


def match_label(label: str | None, speakers: list[Speaker]) -> Attribution:
    """Match a platform speaker label (a name, or an email) to exactly one participant."""
    if not label:
        return UNATTRIBUTED
    wanted = _normal(label)
    for speaker in speakers:
        if speaker.email and wanted == speaker.email.lower():
            return Attribution(speaker, speaker.role, CONFIDENCE_EXACT_NAME)
    exact = [s for s in speakers if _normal(s.name) == wanted]
    if len(exact) == 1:
        return Attribution(exact[0], exact[0].role, CONFIDENCE_EXACT_NAME)
    trimmed = _normal(_without_suffix(label))
    if trimmed != wanted:
        loose = [s for s in speakers if _normal(s.name) == trimmed]
        if len(loose) == 1:
            return Attribution(loose[0], loose[0].role, CONFIDENCE_NAME_WITHOUT_SUFFIX)
    tokens = set(trimmed.split())
    if tokens:
        partial = [s for s in speakers if tokens <= set(_normal(s.name).split())]
        if len(partial) == 1:
            return Attribution(partial[0], partial[0].role, CONFIDENCE_PARTIAL_NAME)
    return UNATTRIBUTED


def attribute_by_track(utterances: list[Utterance], speakers: list[Speaker]) -> list[Attribution]:
    """Utterances from a track labelled with its speaker's email."""
    by_email = {s.email.lower(): s for s in speakers if s.email}
    out = []
    for utterance in utterances:
        speaker = by_email.get((utterance.speaker_label or "").lower())
        out.append(Attribution(speaker, speaker.role, CONFIDENCE_TRACK) if speaker
                   else UNATTRIBUTED)
    return out


def attribute_by_name(utterances: list[Utterance], speakers: list[Speaker]) -> list[Attribution]:
    """Utterances from a platform transcript labelled with display names."""
    cache: dict[str | None, Attribution] = {}
    out = []
    for utterance in utterances:
        if utterance.speaker_label not in cache:
            cache[utterance.speaker_label] = match_label(utterance.speaker_label, speakers)
        out.append(cache[utterance.speaker_label])
    return out


def drop_channel_bleed(utterances: list[Utterance]) -> list[Utterance]:
    """Remove echoes: the same words picked up faintly on the other channel at the same time.

    On dual-channel recordings each side's microphone can hear the other; Whisper then
    transcribes the same sentence twice. Keep the copy with the more confident words.
    """
    def confidence(u: Utterance) -> float:
        probs = [w.probability for w in u.words if w.probability is not None]
        return sum(probs) / len(probs) if probs else 0.5

    keep = [True] * len(utterances)
    for i, a in enumerate(utterances):
        for j in range(i + 1, len(utterances)):
            b = utterances[j]
            if b.start >= a.end:
                break
            if a.speaker_label == b.speaker_label or not (keep[i] and keep[j]):
                continue
            overlap = min(a.end, b.end) - max(a.start, b.start)
            shorter = min(a.end - a.start, b.end - b.start) or 1e-6
            words_a, words_b = set(_normal(a.text).split()), set(_normal(b.text).split())
            shared = len(words_a & words_b) / max(1, min(len(words_a), len(words_b)))
            if overlap / shorter > 0.6 and shared > 0.6:
                if confidence(a) >= confidence(b):
                    keep[j] = False
                else:
                    keep[i] = False
    return [u for u, k in zip(utterances, keep) if k]
