"""Store what sources describe: meetings, the org's roster and deals. Idempotent throughout.

A meeting is identified by (org, source, external id); its `content_hash` tells whether a
re-ingest changed anything. The same audio arriving under another id is reported as a
duplicate instead of being processed twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlmodel import Session, delete, select

from core.domain import DealRecord, MeetingRecord, Role, TeamMember
from core.models import (CallScore, CriterionScore, Deal, FieldExtraction, MediaAsset, Meeting,
                         MeetingDeal, Org, Participant, Segment, Transcript, User, utcnow)
from core.speakers import role_for


class IngestOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IngestResult:
    """What happened to one meeting record."""

    outcome: IngestOutcome
    meeting_id: int | None
    message: str


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_org(session: Session, name: str, domains: list[str]) -> Org:
    """The org with this name, created if missing; its domains extended with `domains`."""
    org = session.exec(select(Org).where(Org.name == name)).first()
    wanted = sorted({d.lower().lstrip("@") for d in domains})
    if org is None:
        org = Org(name=name, domains=wanted)
        session.add(org)
    elif set(wanted) - set(org.domains):
        org.domains = sorted(set(org.domains) | set(wanted))
        session.add(org)
    session.flush()
    return org


def _user_by_email(session: Session, org_id: int, email: str) -> User | None:
    return session.exec(select(User).where(User.org_id == org_id,
                                           User.email == email.lower())).first()


def apply_team(session: Session, org: Org, members: list[TeamMember]) -> int:
    """Upsert the roster by email, then link managers. Returns the number of users touched."""
    for member in members:
        user = _user_by_email(session, org.id, member.email) or User(
            org_id=org.id, email=member.email.lower(), name=member.name)
        user.name, user.role = member.name, member.role
        session.add(user)
    session.flush()
    for member in members:
        if member.manager_email:
            manager = _user_by_email(session, org.id, member.manager_email)
            user = _user_by_email(session, org.id, member.email)
            if manager and user:
                user.manager_id = manager.id
                session.add(user)
    session.flush()
    return len(members)


def add_crm_users(session: Session, org: Org, members: list[TeamMember]) -> int:
    """Add the CRM's users who are on the org's e-mail domains and not yet known (as reps;
    the roster decides roles), and link managers nobody set. Returns how many were added."""
    domains = {d.lower() for d in org.domains}
    ours = [m for m in members if m.email.rsplit("@", 1)[-1].lower() in domains]
    added = 0
    for member in ours:
        if _user_by_email(session, org.id, member.email) is None:
            session.add(User(org_id=org.id, email=member.email.lower(), name=member.name,
                             role="rep"))
            added += 1
    session.flush()
    for member in ours:
        user = _user_by_email(session, org.id, member.email)
        manager = (_user_by_email(session, org.id, member.manager_email)
                   if member.manager_email else None)
        if user and manager and user.manager_id is None and manager.id != user.id:
            user.manager_id = manager.id
            session.add(user)
    session.flush()
    return added


def apply_deals(session: Session, org: Org, deals: list[DealRecord]) -> int:
    """Upsert deals by (crm, external id) and link meetings that name them."""
    for record in deals:
        deal = session.exec(select(Deal).where(Deal.org_id == org.id, Deal.crm == record.crm,
                                               Deal.external_id == record.external_id)).first()
        deal = deal or Deal(org_id=org.id, crm=record.crm, external_id=record.external_id,
                            name=record.name)
        owner = _user_by_email(session, org.id, record.owner_email) if record.owner_email else None
        deal.name, deal.account, deal.stage = record.name, record.account, record.stage
        deal.amount, deal.close_date = record.amount, record.close_date
        deal.is_closed, deal.is_won = record.is_closed, record.is_won
        deal.owner_id = owner.id if owner else None
        deal.contact_emails = [e.lower() for e in record.contact_emails]
        deal.pulled_at = utcnow()
        session.add(deal)
        session.flush()
        for meeting in session.exec(select(Meeting).where(
                Meeting.org_id == org.id, Meeting.deal_external_id == record.external_id)):
            _link_deal(session, meeting, deal)
    return len(deals)


def _link_deal(session: Session, meeting: Meeting, deal: Deal) -> None:
    exists = session.exec(select(MeetingDeal).where(MeetingDeal.meeting_id == meeting.id,
                                                    MeetingDeal.deal_id == deal.id)).first()
    if not exists:
        session.add(MeetingDeal(org_id=meeting.org_id, meeting_id=meeting.id, deal_id=deal.id,
                                reason=f"named by the source ({meeting.source})"))


def clear_derived(session: Session, meeting_id: int, *, keep_transcript: bool = False) -> None:
    """Delete what the pipeline derived from a meeting (scores, and unless kept, transcript)."""
    score_ids = list(session.exec(select(CallScore.id).where(CallScore.meeting_id == meeting_id)))
    if score_ids:
        session.exec(delete(CriterionScore).where(CriterionScore.call_score_id.in_(score_ids)))
        session.exec(delete(FieldExtraction).where(FieldExtraction.call_score_id.in_(score_ids)))
        session.exec(delete(CallScore).where(CallScore.id.in_(score_ids)))
    if not keep_transcript:
        transcript_ids = list(session.exec(select(Transcript.id).where(
            Transcript.meeting_id == meeting_id)))
        if transcript_ids:
            session.exec(delete(Segment).where(Segment.transcript_id.in_(transcript_ids)))
            session.exec(delete(Transcript).where(Transcript.id.in_(transcript_ids)))
    session.flush()


def ingest_record(session: Session, org: Org, record: MeetingRecord) -> IngestResult:
    """Create or update the meeting `record` describes; unchanged content changes nothing."""
    meeting = session.exec(select(Meeting).where(
        Meeting.org_id == org.id, Meeting.source == record.source,
        Meeting.external_id == record.external_id)).first()
    if meeting is not None and meeting.content_hash == record.content_hash:
        return IngestResult(IngestOutcome.UNCHANGED, meeting.id, "already ingested, unchanged")

    audio_hashes = {track.path: file_sha256(track.path) for track in record.tracks}
    if meeting is None:
        for sha in sorted(set(audio_hashes.values())):
            twin = session.exec(select(MediaAsset).where(
                MediaAsset.org_id == org.id, MediaAsset.kind == "audio",
                MediaAsset.sha256 == sha)).first()
            if twin is not None:
                return IngestResult(IngestOutcome.DUPLICATE, twin.meeting_id,
                                    f"same recording as meeting {twin.meeting_id}; not ingested again")
        meeting = Meeting(org_id=org.id, source=record.source, external_id=record.external_id,
                          title=record.title, started_at=record.started_at)
        outcome = IngestOutcome.CREATED
    else:
        clear_derived(session, meeting.id)
        session.exec(delete(Participant).where(Participant.meeting_id == meeting.id))
        session.exec(delete(MediaAsset).where(MediaAsset.meeting_id == meeting.id))
        session.exec(delete(MeetingDeal).where(MeetingDeal.meeting_id == meeting.id))
        outcome = IngestOutcome.UPDATED

    meeting.title, meeting.started_at = record.title, record.started_at
    meeting.content_hash, meeting.origin = record.content_hash, record.origin
    meeting.deal_external_id = record.deal_external_id
    meeting.stage, meeting.error, meeting.error_stage = "ingested", None, None
    meeting.updated_at = utcnow()
    session.add(meeting)
    session.flush()

    for info in record.participants:
        role = role_for(info.email, info.role, org.domains)
        user = None
        if info.email and role is Role.REP:
            user = _user_by_email(session, org.id, info.email)
            if user is None:  # a colleague on our domain we had not met yet
                user = User(org_id=org.id, email=info.email.lower(), name=info.name, role="rep")
                session.add(user)
                session.flush()
            if meeting.host_id is None:
                meeting.host_id = user.id
        session.add(Participant(org_id=org.id, meeting_id=meeting.id, name=info.name,
                                email=info.email.lower() if info.email else None,
                                role=role.value, user_id=user.id if user else None))
    for track in record.tracks:
        path = Path(track.path)
        session.add(MediaAsset(org_id=org.id, meeting_id=meeting.id, kind="audio",
                               remote_ref=str(path), local_path=str(path),
                               sha256=audio_hashes[track.path], size_bytes=path.stat().st_size,
                               channel=track.channel, speaker_email=track.speaker_email))
    if record.transcript_path:
        path = Path(record.transcript_path)
        session.add(MediaAsset(org_id=org.id, meeting_id=meeting.id, kind="transcript",
                               remote_ref=str(path), local_path=str(path),
                               sha256=file_sha256(path), size_bytes=path.stat().st_size))
    if record.deal_external_id:
        deal = session.exec(select(Deal).where(Deal.org_id == org.id,
                                               Deal.external_id == record.deal_external_id)).first()
        if deal:
            _link_deal(session, meeting, deal)
    session.add(meeting)
    session.flush()
    return IngestResult(outcome, meeting.id, outcome.value)


def current_org(session: Session, name: str | None = None) -> Org:
    """The org to work in: by name, or the only one there is."""
    from core.errors import NotFound

    if name:
        org = session.exec(select(Org).where(Org.name == name)).first()
        if org:
            return org
    orgs = session.exec(select(Org).order_by(Org.id).limit(2)).all()
    if len(orgs) == 1:
        return orgs[0]
    if not orgs:
        raise NotFound("no org yet: run `coachloop init` (or `coachloop demo`) first")
    raise NotFound(f"several orgs exist and none is named {name!r}; set COACHLOOP_ORG__NAME")
