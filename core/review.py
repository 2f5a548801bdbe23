"""The CRM review queue: values that wait for a person's consent before they reach a CRM field.

Write-back proposes (`propose`) instead of writing when a field's approval mode is `review`;
a person approves, edits or rejects (`decide`); the next write-back writes what was approved
(`consent_for`) and records who approved it. A rejected value is not proposed again for that
record unless new evidence arrives: proposals are keyed by the value and its quotes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from core.errors import InputError, NotFound
from core.access import Scope, as_scope
from core.models import CrmProposal, CrmWrite, Deal, as_utc, utcnow

PENDING, APPROVED, REJECTED, WRITTEN, SUPERSEDED = (
    "pending", "approved", "rejected", "written", "superseded")
ACTIONS = ("approve", "reject", "edit")


def evidence_key(field: str, value: str | None, evidence: tuple[dict[str, Any], ...]) -> str:
    """What makes a proposal the same one again: the field, the value and the quotes."""
    quotes = sorted(str(e.get("quote", "")) for e in evidence)
    raw = json.dumps([field, " ".join((value or "").lower().split()), quotes])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Consent:
    """What the queue says about a value the planner wants to write."""

    state: str  # approved (write `value`, by `actor`) | rejected | pending | new
    proposal_id: int | None = None
    value: str | None = None
    actor: str | None = None
    decided_at: datetime | None = None


def consent_for(session: Session, org_id: int, crm: str, sobject: str, record_id: str,
                field: str, key: str) -> Consent:
    """The queue's answer for this record, field and evidence."""
    rows = session.exec(select(CrmProposal).where(
        CrmProposal.org_id == org_id, CrmProposal.crm == crm, CrmProposal.sobject == sobject,
        CrmProposal.record_id == record_id, CrmProposal.field == field,
        CrmProposal.evidence_key == key).order_by(CrmProposal.id.desc())).all()
    for row in rows:
        if row.status == APPROVED:
            return Consent(APPROVED, row.id, row.final or row.proposed, row.decided_by,
                           as_utc(row.decided_at))
        if row.status in (REJECTED, PENDING, WRITTEN):
            return Consent(row.status, row.id, row.final or row.proposed, row.decided_by,
                           as_utc(row.decided_at))
    return Consent("new")


def approved_waiting(session: Session, org_id: int, crm: str) -> set[str]:
    """Records with approved values not yet written."""
    return set(session.exec(select(CrmProposal.record_id).where(
        CrmProposal.org_id == org_id, CrmProposal.crm == crm,
        CrmProposal.status == APPROVED)).all())


def propose(session: Session, *, org_id: int, crm: str, sobject: str, record_id: str,
            deal_name: str | None, field: str, source: str, meeting_id: int | None,
            call_title: str | None, before: str | None, proposed: str,
            confidence: float | None, evidence: tuple[dict[str, Any], ...], key: str) -> int:
    """Queue a value for review; an older pending value for the same field is superseded."""
    now = utcnow()
    for older in session.exec(select(CrmProposal).where(
            CrmProposal.org_id == org_id, CrmProposal.crm == crm,
            CrmProposal.sobject == sobject, CrmProposal.record_id == record_id,
            CrmProposal.field == field, CrmProposal.status == PENDING)):
        older.status, older.updated_at = SUPERSEDED, now
        session.add(older)
    row = CrmProposal(org_id=org_id, crm=crm, sobject=sobject, record_id=record_id,
                      deal_name=deal_name, field=field, source=source, meeting_id=meeting_id,
                      call_title=call_title, before=before, proposed=proposed,
                      confidence=confidence, evidence=list(evidence), evidence_key=key)
    session.add(row)
    session.flush()
    return row.id


def mark_written(session: Session, proposal_ids: list[int]) -> None:
    now = utcnow()
    for row in session.exec(select(CrmProposal).where(CrmProposal.id.in_(proposal_ids))):
        row.status, row.updated_at = WRITTEN, now
        session.add(row)


@dataclass(frozen=True)
class ProposalView:
    """A queued value as a reviewer sees it."""

    id: int
    crm: str
    record_id: str
    deal_name: str | None
    field: str
    source: str
    current: str | None
    proposed: str
    final: str | None
    confidence: float | None
    quote: str | None
    quote_at: float | None
    meeting_id: int | None
    call_title: str | None
    status: str
    decided_by: str | None
    decided_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return out


def _view(row: CrmProposal) -> ProposalView:
    quote = row.evidence[0] if row.evidence else {}
    return ProposalView(row.id, row.crm, row.record_id, row.deal_name, row.field, row.source,
                        row.before, row.proposed, row.final, row.confidence,
                        quote.get("quote"), quote.get("start"), row.meeting_id, row.call_title,
                        row.status, row.decided_by, as_utc(row.decided_at))


def _in_scope(query, session: Session, scope: Scope, model):
    """Only the deals whose owner is in scope (a rep: their own deals)."""
    records = scope.deal_record_ids(session)
    query = query.where(model.org_id == scope.org_id)
    return query if records is None else query.where(model.record_id.in_(records))


def queue(session: Session, org: int | Scope, *, status: str = PENDING,
          deal: str | None = None) -> list[ProposalView]:
    """Queued values on deals in scope, per deal then field (`status="all"` for every
    state)."""
    query = _in_scope(select(CrmProposal), session, as_scope(org), CrmProposal)
    if status != "all":
        query = query.where(CrmProposal.status == status)
    if deal:
        query = query.where((CrmProposal.record_id == deal) | (CrmProposal.deal_name == deal))
    rows = session.exec(query.order_by(CrmProposal.record_id, CrmProposal.field,
                                       CrmProposal.id)).all()
    return [_view(row) for row in rows]


def decide(session: Session, org: int | Scope, proposal_ids: list[int] | None, action: str,
           *, by: str, value: str | None = None, deal: str | None = None
           ) -> list[ProposalView]:
    """Approve, edit (approve with `value`) or reject pending proposals on deals in scope:
    the ids given, or every pending one (of `deal`, when given) when `proposal_ids` is
    None."""
    scope = as_scope(org)
    org_id = scope.org_id
    if action not in ACTIONS:
        raise InputError(f"unknown review action {action!r} (use {', '.join(ACTIONS)})")
    if action == "edit" and (value is None or not value.strip()):
        raise InputError("edit needs the value to write instead")
    if not by.strip():
        raise InputError("say who decides (a name or e-mail): the audit records it")
    query = _in_scope(select(CrmProposal), session, scope, CrmProposal).where(
        CrmProposal.status == PENDING)
    if proposal_ids is not None:
        if action == "edit" and len(proposal_ids) != 1:
            raise InputError("edit one proposal at a time")
        query = query.where(CrmProposal.id.in_(proposal_ids))
    elif deal:
        query = query.where((CrmProposal.record_id == deal) | (CrmProposal.deal_name == deal))
    rows = session.exec(query.order_by(CrmProposal.id)).all()
    if proposal_ids is not None:
        missing = sorted(set(proposal_ids) - {r.id for r in rows})
        if missing:
            raise NotFound(f"no pending proposal {', '.join(map(str, missing))} in this org "
                           "(see `coachloop crm review`)")
    now = utcnow()
    audit_rows = []
    for row in rows:
        row.status = REJECTED if action == "reject" else APPROVED
        row.final = " ".join(value.split()) if action == "edit" else None
        row.decided_by, row.decided_at, row.updated_at = by.strip(), now, now
        session.add(row)
        audit_rows.append(CrmWrite(
            org_id=org_id, run_id=f"review-{row.id}", crm=row.crm, sobject=row.sobject,
            record_id=row.record_id, meeting_id=row.meeting_id, field=row.field,
            policy="review", before=row.before, after=row.final or row.proposed,
            confidence=row.confidence, evidence=row.evidence,
            status="rejected" if action == "reject" else "approved",
            reason="edited by the reviewer" if action == "edit" else None, actor=by.strip()))
    for audit_row in audit_rows:
        session.add(audit_row)
    session.flush()
    return [_view(row) for row in rows]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of `coachloop crm history`: what happened to a field, when, by whom."""

    at: datetime
    record_id: str | None
    field: str | None
    status: str
    before: str | None
    after: str | None
    actor: str | None
    reason: str | None
    meeting_id: int | None
    deal_name: str | None = None


def history(session: Session, org: int | Scope, *, deal: str | None = None,
            limit: int = 200) -> list[HistoryEntry]:
    """Approvals, rejections and field writes on deals in scope, newest first."""
    scope = as_scope(org)
    org_id = scope.org_id
    query = _in_scope(select(CrmWrite), session, scope, CrmWrite).where(
        CrmWrite.field.is_not(None),
                                   CrmWrite.status.in_(("written", "approved", "rejected",
                                                        "failed", "review")))
    if deal:
        query = query.where(CrmWrite.record_id == deal)
    rows = session.exec(query.order_by(CrmWrite.id.desc()).limit(limit)).all()
    ids = {r.record_id for r in rows if r.record_id}
    names = {d.external_id: d.name for d in session.exec(select(Deal).where(
        Deal.org_id == org_id, Deal.external_id.in_(ids)))} if ids else {}
    return [HistoryEntry(as_utc(r.created_at), r.record_id, r.field, r.status, r.before,
                         r.after, r.actor, r.reason, r.meeting_id, names.get(r.record_id))
            for r in rows]
