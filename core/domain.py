"""Plain, frozen dataclasses that cross layer boundaries.

ORM rows stay inside `core.models` / `core.store`; connectors, the scorer and the skill
engine exchange these instead, so each can be tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Role(StrEnum):
    """Which side of the call a speaker is on."""

    REP = "rep"
    BUYER = "buyer"
    UNKNOWN = "unknown"


# ---------------------------------------------------------------- ingest ------


@dataclass(frozen=True)
class ParticipantInfo:
    """A person on a call as a source describes them."""

    name: str
    email: str | None = None
    role: Role | None = None  # an explicit role from the source; email domain wins when known


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream to transcribe.

    `channel` picks one channel of a multi-channel file (dual-channel recordings); None means
    the whole file mixed to mono. `speaker_email` attributes everything said on this track.
    """

    path: str
    channel: int | None = None
    speaker_email: str | None = None


@dataclass(frozen=True)
class MeetingRecord:
    """What a `MeetingSource` hands the core for one meeting."""

    source: str
    external_id: str
    title: str
    started_at: datetime
    participants: tuple[ParticipantInfo, ...]
    tracks: tuple[AudioTrack, ...] = ()
    transcript_path: str | None = None  # platform transcript (WebVTT / SRT)
    deal_external_id: str | None = None
    content_hash: str = ""  # over the manifest and every referenced file
    origin: str = ""  # where it came from, for error messages (a file path, an event id)


@dataclass(frozen=True)
class TeamMember:
    """A member of our org from a roster (team file, CRM users)."""

    name: str
    email: str
    role: str = "rep"  # rep | manager | admin
    manager_email: str | None = None


@dataclass(frozen=True)
class DealRecord:
    """A deal/opportunity as a source or CRM describes it."""

    crm: str
    external_id: str
    name: str
    account: str | None = None
    owner_email: str | None = None
    stage: str | None = None
    amount: float | None = None
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    contact_emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallForCrm:
    """A scored call as CRM write-back sees it: who, when, what was found, which deal."""

    meeting_id: int
    key: str  # stable across re-processing: "<source>:<external id>"
    title: str
    started_at: datetime
    rep_email: str | None
    buyer_emails: tuple[str, ...]
    deal_record_id: str | None = None  # the CRM's id of the deal it is linked to
    overall: tuple[tuple[str, float | None], ...] = ()  # (methodology, 0–100) per rubric
    fields: tuple[tuple[str, FieldResult], ...] = ()  # (methodology, field) found in the call
    # Guests the meeting platform named but gave no e-mail (Zoom hides an uninvited guest's):
    # matched to a CRM contact by name only within the rep's own open accounts.
    unnamed_buyers: tuple[str, ...] = ()


# ------------------------------------------------------------ transcripts ----


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float | None = None


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech before attribution: platform cue or ASR segment."""

    start: float
    end: float
    text: str
    speaker_label: str | None = None  # platform speaker name, or the track's speaker email
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class TranscriptSegment:
    """An attributed segment as the scorer sees it."""

    id: int  # Segment row id (stable; evidence points at it)
    start: float
    end: float
    text: str
    role: Role
    speaker: str | None  # participant email or name
    attribution_confidence: float
    speaker_name: str | None = None  # the participant's display name, when known


@dataclass(frozen=True)
class TranscriptView:
    """A meeting's attributed transcript, ordered by start time."""

    meeting_id: int
    segments: tuple[TranscriptSegment, ...]
    source: str  # "platform" or "asr"


# ---------------------------------------------------------------- scoring ----


@dataclass(frozen=True)
class Evidence:
    """A verbatim quote from one segment, with that segment's times."""

    quote: str
    start: float
    end: float
    segment_id: int


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's score; `score is None` means the scorer abstained."""

    key: str
    skill: str
    score: float | None
    max_score: float
    weight: float
    confidence: float
    rationale: str
    evidence: tuple[Evidence, ...] = ()
    # scored | abstained (too little to judge) | unsupported (evidence not found in the
    # transcript) | not_applicable (the criterion does not belong to this call's stage)
    state: str = "scored"


@dataclass(frozen=True)
class FieldResult:
    """A deal fact: a methodology field (e.g. MEDDIC Economic Buyer) as one call or one deal
    establishes it. `status` is found, ambiguous (hedged, vague or conflicting: never written)
    or absent; `value` is distilled (a name and title, a number and unit), `negative` marks a
    found "none" ("no other vendor")."""

    key: str
    label: str
    value: str | None
    confidence: float
    evidence: tuple[Evidence, ...] = ()
    status: str = ""  # found | ambiguous | absent; empty: from the value (older results)
    negative: bool = False

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "found" if self.value else "absent")

    @property
    def writable(self) -> bool:
        """Whether this value may reach a CRM field at all."""
        return self.status == "found" and bool(self.value)


@dataclass(frozen=True)
class CallScoreResult:
    """Everything a scorer says about one call against one rubric version."""

    rubric_key: str
    rubric_version: str
    scorer: str
    scorer_version: str
    overall: float | None  # 0–100 weighted over scored criteria; None when all abstained
    criteria: tuple[CriterionResult, ...]
    fields: tuple[FieldResult, ...]
    abstain_reason: str | None = None
    model: str | None = None  # the LLM behind an LLM scorer
    prompt_version: str | None = None
    usage: LlmUsage | None = None


@dataclass(frozen=True)
class LlmUsage:
    """What scoring one call with an LLM took."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None when no price is configured for the model
    requests: int = 1
    cached: bool = False  # served from the cache: nothing was sent


# ----------------------------------------------------------------- skills ----


@dataclass(frozen=True)
class SkillObservation:
    """One call's score (0–100) on one skill for one rep."""

    rep_id: int
    skill: str
    meeting_id: int
    at: datetime
    score: float


@dataclass(frozen=True)
class SkillEstimate:
    """A rep's standing on a skill over a window, as of a date."""

    rep_id: int
    skill: str
    window_days: int
    as_of: date
    n_calls: int
    raw_mean: float | None
    shrunk: float | None
    interval_low: float | None
    interval_high: float | None
    percentile: float | None
    slope_per_30d: float | None
    state: str  # "ok" | "insufficient_data"
    meeting_ids: tuple[int, ...] = field(default=())
    # Unrounded Σ score and Σ (score − mean)² of the window's calls: what re-ranking the rep
    # among changed peers needs without reading their calls again.
    score_sum: float = 0.0
    score_ss: float = 0.0
