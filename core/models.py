"""Database tables (SQLModel). Every row belongs to an org; see DESIGN §3.

These rows stay inside `core`: other layers receive the dataclasses in `core.domain`.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: read them as the UTC they were stored as."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


class Org(SQLModel, table=True):
    """A tenant: one revenue team."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # When the next skills refresh and CRM sync for this org is due (one per debounce window
    # whatever the number of calls scored meanwhile); None: none is scheduled.
    refresh_due_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """A person in the org: rep, manager or admin."""

    __table_args__ = (UniqueConstraint("org_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    name: str
    email: str = Field(index=True)  # primary email, lower-case
    other_emails: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    role: str = "rep"  # rep | manager | admin
    manager_id: int | None = Field(default=None, foreign_key="user.id")
    # Local sign-in (the fallback to SSO): argon2 hash, lockout after repeated failures.
    password_hash: str | None = None
    failed_logins: int = 0
    locked_until: datetime | None = None
    disabled: bool = False


class Meeting(SQLModel, table=True):
    """A call from a source; `stage` tracks how far the pipeline got."""

    __table_args__ = (UniqueConstraint("org_id", "source", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    source: str
    external_id: str
    title: str
    started_at: datetime = Field(index=True)
    duration_s: float | None = None
    host_id: int | None = Field(default=None, foreign_key="user.id")
    content_hash: str = ""
    origin: str = ""
    deal_external_id: str | None = None
    stage: str = "ingested"  # ingested | transcribed | scored | failed
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_stage: str | None = None
    call_stage: str | None = None  # discovery | demo | pricing | renewal | other
    conversation: dict[str, Any] = Field(default_factory=dict,
                                         sa_column=Column(JSON, nullable=False))  # metrics
    crm_synced_at: datetime | None = None  # None: its CRM write-back is still to do
    crm_error: str | None = Field(default=None, sa_column=Column(Text))
    # Never written to a CRM, whatever is asked (the demo's synthetic history).
    crm_excluded: bool = False
    # Who is running a stage of it now, until when (a lease: a crashed runner's expires).
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Participant(SQLModel, table=True):
    """A person on a meeting; `user_id` is set for members of the org."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    name: str
    email: str | None = None
    role: str = "unknown"  # rep | buyer | unknown
    user_id: int | None = Field(default=None, foreign_key="user.id")


class MediaAsset(SQLModel, table=True):
    """A recording (or one channel/track of it) or a platform transcript file."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    kind: str  # audio | transcript
    remote_ref: str  # where it came from (path or URL)
    local_path: str | None = None
    sha256: str = Field(default="", index=True)
    size_bytes: int | None = None
    channel: int | None = None
    speaker_email: str | None = None


class Transcript(SQLModel, table=True):
    """The transcript of a meeting: from the platform or from our ASR."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True, unique=True)
    source: str  # platform | asr
    model: str | None = None
    language: str | None = None
    duration_s: float | None = None
    asr_seconds: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Segment(SQLModel, table=True):
    """An attributed stretch of speech."""

    __table_args__ = (Index("ix_segment_transcript_idx", "transcript_id", "idx"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    transcript_id: int = Field(foreign_key="transcript.id")
    idx: int
    start: float
    end: float
    text: str = Field(sa_column=Column(Text, nullable=False))
    speaker_label: str | None = None
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
    role: str = "unknown"
    attribution_confidence: float = 0.0
    words: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Rubric(SQLModel, table=True):
    """A rubric file as scored: `version` is its content hash."""

    __table_args__ = (UniqueConstraint("org_id", "key", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    key: str
    name: str
    version: str
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class CallScore(SQLModel, table=True):
    """One meeting scored against one rubric version by one scorer."""

    __table_args__ = (UniqueConstraint("meeting_id", "rubric_id", "scorer", "scorer_version"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    rubric_id: int = Field(foreign_key="rubric.id")
    rep_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    scorer: str
    scorer_version: str
    overall: float | None = None
    abstain_reason: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class CriterionScore(SQLModel, table=True):
    """One criterion of a call score, with the evidence behind it."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    call_score_id: int = Field(foreign_key="callscore.id", index=True)
    criterion: str
    skill: str
    score: float | None = None  # None: abstained
    max_score: float
    weight: float = 1.0
    confidence: float = 0.0
    rationale: str = Field(default="", sa_column=Column(Text, nullable=False))
    evidence: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = "scored"  # scored | abstained | unsupported | not_applicable


class FieldExtraction(SQLModel, table=True):
    """A methodology field value found in a call (None: not found)."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    call_score_id: int = Field(foreign_key="callscore.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    field: str
    label: str
    value: str | None = Field(default=None, sa_column=Column(Text))
    confidence: float = 0.0
    evidence: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = "absent"  # found | ambiguous | absent (a deal fact; core.deal_facts)
    negative: bool = False  # a found "none" ("no other vendor")


class AgendaFocus(SQLModel, table=True):
    """The skills a rep's coaching agenda focused on in a week (Monday), as it was made: what
    `core.cohorts` compares against the reps whose agendas did not."""

    __table_args__ = (UniqueConstraint("rep_id", "week"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    rep_id: int = Field(foreign_key="user.id", index=True)
    week: date = Field(index=True)
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class SkillSnapshot(SQLModel, table=True):
    """A rep's estimated standing on one skill over a window, as of a date."""

    __table_args__ = (UniqueConstraint("org_id", "rep_id", "skill", "window_days", "as_of"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    rep_id: int = Field(foreign_key="user.id", index=True)
    skill: str
    window_days: int
    as_of: date = Field(index=True)
    n_calls: int
    raw_mean: float | None = None
    shrunk: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    percentile: float | None = None
    slope_per_30d: float | None = None
    state: str = "insufficient_data"
    meeting_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    score_sum: float = 0.0
    score_ss: float = 0.0
    # The rep's scored calls when this row was computed (count, last score id and time): a
    # refresh recomputes only the reps whose fingerprint moved.
    calls_digest: str | None = None
    computed_at: datetime = Field(default_factory=utcnow)


class Deal(SQLModel, table=True):
    """An opportunity/deal as known from the CRM (or a deals file)."""

    __table_args__ = (UniqueConstraint("org_id", "crm", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    crm: str
    external_id: str
    name: str
    account: str | None = None
    owner_id: int | None = Field(default=None, foreign_key="user.id")
    stage: str | None = None
    amount: float | None = None
    close_date: date | None = None
    is_closed: bool = False
    is_won: bool = False
    contact_emails: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pulled_at: datetime = Field(default_factory=utcnow)


class MeetingDeal(SQLModel, table=True):
    """Which deal a meeting belongs to, and why we think so."""

    __table_args__ = (UniqueConstraint("meeting_id", "deal_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    deal_id: int = Field(foreign_key="deal.id", index=True)
    reason: str


_LIVE = "status NOT IN ('disconnected', 'replaced')"


class Connection(SQLModel, table=True):
    """An authorised link to an external account (Zoom, Salesforce, …); tokens encrypted."""

    # One live connection per vendor account; ended ones (disconnected, replaced) stay as
    # rows for the audit, however often the same account is connected again.
    __table_args__ = (Index("uq_connection_live_account", "org_id", "provider", "account_ref",
                            unique=True, sqlite_where=text(_LIVE), postgresql_where=text(_LIVE)),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    provider: str
    account_ref: str = ""  # the vendor's account / org / portal id
    auth_kind: str = "oauth"  # oauth | server_to_server
    token_ciphertext: str | None = Field(default=None, sa_column=Column(Text))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    expires_at: datetime | None = None
    instance_url: str | None = None
    status: str = "active"  # active | broken
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    refreshing_until: datetime | None = None  # a lease: one refresh at a time, any process
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OAuthState(SQLModel, table=True):
    """A started OAuth flow: single-use `state` (stored hashed) and its PKCE verifier."""

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(unique=True)
    org_id: int = Field(foreign_key="org.id")
    provider: str
    redirect_uri: str
    verifier_ciphertext: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None


class SyncCursor(SQLModel, table=True):
    """How far an incremental sync of one stream has got."""

    __table_args__ = (UniqueConstraint("connection_id", "stream"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="connection.id", index=True)
    stream: str
    cursor: str
    updated_at: datetime = Field(default_factory=utcnow)


class PushSubscription(SQLModel, table=True):
    """A subscription we hold at a vendor so it pushes us changes (Graph change
    notifications): its id there, what it watches, until when, and the hash of the secret
    the vendor echoes in every notification (`clientState`)."""

    __table_args__ = (UniqueConstraint("provider", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    connection_id: int = Field(foreign_key="connection.id", index=True)
    provider: str
    external_id: str  # the vendor's subscription id
    resource: str
    secret_hash: str  # sha256 of the clientState; the secret itself is not kept
    expires_at: datetime
    status: str = "active"  # active | reauthorize | removed | ended
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """A verified webhook delivery, stored before we answer 2xx; deduplicated by key."""

    __table_args__ = (UniqueConstraint("provider", "dedupe_key"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: int | None = Field(default=None, foreign_key="org.id", index=True)
    provider: str
    event_type: str
    dedupe_key: str
    # The body as received, less its secrets (Zoom's download_token), which are in `sealed`,
    # encrypted like connection tokens.
    raw_body: str = Field(sa_column=Column(Text, nullable=False))
    sealed: str | None = Field(default=None, sa_column=Column(Text))
    account_ref: str | None = Field(default=None, index=True)  # the vendor account it is for
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    verified: bool = False
    deliveries: int = 1
    received_at: datetime = Field(default_factory=utcnow)
    enqueued_at: datetime | None = None  # handed to the broker (the outbox relay's mark)
    processed_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))


class CrmWrite(SQLModel, table=True):
    """The audit trail of CRM write-back: one row per field (or record) planned or written."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    run_id: str = Field(index=True)  # one plan/apply run
    crm: str
    sobject: str
    record_id: str | None = None  # the CRM's id of the record written
    external_key: str | None = None  # our deterministic key, for records we upsert
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id", index=True)
    field: str | None = None  # None: the whole record (a Task, a skill score row)
    policy: str
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    confidence: float | None = None
    evidence: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str  # planned | written | skipped | unchanged | failed | review | approved | rejected
    reason: str | None = Field(default=None, sa_column=Column(Text))
    actor: str | None = None  # who approved or rejected it (review mode); None: coachloop
    created_at: datetime = Field(default_factory=utcnow)


class CrmProposal(SQLModel, table=True):
    """A value waiting for a person's consent before it reaches a CRM field (review mode).

    One row per (record, field, value, evidence): a rejected value is not proposed again for
    that record unless new evidence arrives; an approved or edited one is written by the next
    write-back, and the audit says who approved it.
    """

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    crm: str
    sobject: str
    record_id: str = Field(index=True)
    deal_name: str | None = None
    field: str  # the CRM field
    source: str  # the methodology field it comes from
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id")
    call_title: str | None = None
    before: str | None = Field(default=None, sa_column=Column(Text))  # CRM value when proposed
    proposed: str = Field(sa_column=Column(Text, nullable=False))
    final: str | None = Field(default=None, sa_column=Column(Text))  # edited by the reviewer
    confidence: float | None = None
    evidence: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    evidence_key: str = Field(index=True)  # hash of value + quotes: "new evidence" test
    status: str = Field(default="pending", index=True)  # pending|approved|rejected|written|superseded
    decided_by: str | None = None
    decided_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LlmCache(SQLModel, table=True):
    """An LLM's answer for (transcript hash, rubric version, model, prompt version): the same
    call scored again costs nothing and gives the same result."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # sha256 over the four parts
    model: str
    prompt_version: str
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Invitation(SQLModel, table=True):
    """A link that lets a person set their password once, before it expires."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(unique=True)  # sha256 of the link's secret; the secret is not kept
    created_by: str | None = None
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a secret whose hash is here, so a session can be
    ended server-side; `csrf_hash` guards its state-changing requests."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(unique=True)
    csrf_hash: str
    via: str = "password"  # password | oidc
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ended_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    """A machine's credential: created by an admin, scoped, stored hashed, shown once,
    revocable, with when it was last used."""

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True)
    name: str
    prefix: str  # the first characters, so people can tell tokens apart
    token_hash: str = Field(unique=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class SignInState(SQLModel, table=True):
    """A started single sign-on: its state (hashed), the nonce the ID token must carry
    (hashed) and the PKCE verifier (encrypted). Used once, within minutes."""

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(unique=True)
    nonce_hash: str
    verifier_ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    used_at: datetime | None = None
