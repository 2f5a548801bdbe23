"""What CRM write-back reads from and records in our database (CRM-agnostic).

Connectors decide how to write; this module says which calls are due, what was found in them,
which deal each belongs to, and keeps the append-only `CrmWrite` audit trail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from core.domain import CallForCrm, Evidence, FieldResult, Role
from core.models import (CallScore, CrmWrite, Deal, FieldExtraction, Meeting, MeetingDeal,
                         Participant, Rubric, SkillSnapshot, User, utcnow)


def calls_due(session: Session, org_id: int, crm: str, *, meeting_ids: list[int] | None = None,
              include_synced: bool = False) -> list[CallForCrm]:
    """Scored calls whose write-back is still to do (or the ones named), oldest first."""
    query = select(Meeting).where(Meeting.org_id == org_id, Meeting.stage == "scored",
                                  Meeting.crm_excluded.is_(False))
    if meeting_ids is not None:
        query = query.where(Meeting.id.in_(meeting_ids))
    elif not include_synced:
        query = query.where(Meeting.crm_synced_at.is_(None))
    meetings = session.exec(query.order_by(Meeting.started_at, Meeting.id)).all()
    ids = [m.id for m in meetings]
    if not ids:
        return []
    people: dict[int, list[Participant]] = defaultdict(list)
    for p in session.exec(select(Participant).where(Participant.meeting_id.in_(ids))):
        people[p.meeting_id].append(p)
    reps = {u.id: u for u in session.exec(select(User).where(User.org_id == org_id))}
    deals = {}
    linked = (select(MeetingDeal, Deal).join(Deal, MeetingDeal.deal_id == Deal.id)
              .where(MeetingDeal.meeting_id.in_(ids), Deal.crm == crm))
    for link, deal in session.exec(linked):
        deals[link.meeting_id] = deal.external_id
    overall: dict[int, list[tuple[str, float | None]]] = defaultdict(list)
    rep_of: dict[int, int | None] = {}
    for call, rubric_key in session.exec(select(CallScore, Rubric.key)
                                         .join(Rubric, CallScore.rubric_id == Rubric.id)
                                         .where(CallScore.meeting_id.in_(ids))
                                         .order_by(Rubric.key)):
        overall[call.meeting_id].append((rubric_key, call.overall))
        rep_of[call.meeting_id] = rep_of.get(call.meeting_id) or call.rep_id
    found: dict[int, list[tuple[str, FieldResult]]] = defaultdict(list)
    extracted = (select(FieldExtraction, Rubric.key)
                 .join(CallScore, FieldExtraction.call_score_id == CallScore.id)
                 .join(Rubric, CallScore.rubric_id == Rubric.id)
                 .where(FieldExtraction.meeting_id.in_(ids)).order_by(FieldExtraction.id))
    for row, rubric_key in session.exec(extracted):
        found[row.meeting_id].append((rubric_key, FieldResult(
            row.field, row.label, row.value, row.confidence,
            tuple(Evidence(**e) for e in row.evidence), row.status, row.negative)))
    out = []
    for meeting in meetings:
        rep = reps.get(rep_of.get(meeting.id) or meeting.host_id)
        buyers = tuple(sorted({p.email for p in people[meeting.id]
                               if p.email and p.role == Role.BUYER.value}))
        unnamed = tuple(sorted({p.name.strip() for p in people[meeting.id]
                                if not p.email and p.user_id is None
                                and p.role != Role.REP.value and p.name.strip()}))
        out.append(CallForCrm(meeting.id, f"{meeting.source}:{meeting.external_id}", meeting.title,
                              meeting.started_at, rep.email if rep else None, buyers,
                              deals.get(meeting.id), tuple(overall[meeting.id]),
                              tuple(found[meeting.id]), unnamed))
    return out


def link_deal(session: Session, org_id: int, meeting_id: int, crm: str, record_id: str,
              reason: str, name: str | None = None) -> None:
    """Link a call to the CRM deal `record_id` (creating a stub Deal, named when the CRM's
    name is known, that the outcome pull fills)."""
    deal = session.exec(select(Deal).where(Deal.org_id == org_id, Deal.crm == crm,
                                           Deal.external_id == record_id)).first()
    if deal is None:
        deal = Deal(org_id=org_id, crm=crm, external_id=record_id, name=name or record_id)
        session.add(deal)
        session.flush()
    elif name and deal.name == record_id:
        deal.name = name
        session.add(deal)
    exists = session.exec(select(MeetingDeal).where(MeetingDeal.meeting_id == meeting_id,
                                                    MeetingDeal.deal_id == deal.id)).first()
    if exists is None:
        session.add(MeetingDeal(org_id=org_id, meeting_id=meeting_id, deal_id=deal.id,
                                reason=reason))


def mark_synced(session: Session, meeting_ids: list[int]) -> None:
    now = utcnow()
    for meeting in session.exec(select(Meeting).where(Meeting.id.in_(meeting_ids))):
        meeting.crm_synced_at, meeting.crm_error = now, None
        session.add(meeting)


def mark_sync_failed(session: Session, meeting_id: int, message: str) -> None:
    meeting = session.get(Meeting, meeting_id)
    if meeting is not None:
        meeting.crm_error = message
        session.add(meeting)


@dataclass(frozen=True)
class SkillRow:
    """A rep's latest skill snapshot, as CRM write-back sends it."""

    rep_email: str
    skill: str
    window_days: int
    as_of: date
    n_calls: int
    score: float | None
    interval_low: float | None
    interval_high: float | None
    percentile: float | None
    state: str


def latest_skill_rows(session: Session, org_id: int) -> list[SkillRow]:
    """Every rep's snapshots from the org's most recent skills refresh (whatever date it was
    computed as of: a backfill's refresh as of its last call counts as the latest)."""
    latest = session.exec(select(SkillSnapshot).where(SkillSnapshot.org_id == org_id)
                          .order_by(SkillSnapshot.computed_at.desc(), SkillSnapshot.id.desc())
                          .limit(1)).first()
    if latest is None:
        return []
    as_of = latest.as_of
    rows = session.exec(select(SkillSnapshot, User.email)
                        .join(User, SkillSnapshot.rep_id == User.id)
                        .where(SkillSnapshot.org_id == org_id, SkillSnapshot.as_of == as_of)
                        .order_by(User.email, SkillSnapshot.skill, SkillSnapshot.window_days))
    return [SkillRow(email, s.skill, s.window_days, s.as_of, s.n_calls, s.shrunk,
                     s.interval_low, s.interval_high, s.percentile, s.state)
            for s, email in rows]


def audit(session: Session, rows: list[CrmWrite]) -> None:
    """Append to the write-back audit trail (never updated, never deleted)."""
    for row in rows:
        session.add(row)
    session.flush()
