"""CRM write-back for any `CrmWriter`: plan (diff against the CRM), then apply in batches.

One run takes the calls due, finds each one's deal, reads the deals' current values, lets the
mapping's planner decide field by field, and adds a logged activity per call and the reps'
latest skill scores. `apply=False` stops there (what `coachloop crm plan` shows);
`apply=True` writes every record idempotently (by id, or upserted by our external key), then
appends every decision and result to the `CrmWrite` audit trail.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import asdict, astuple, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from connectors.base import CrmWriter, DealMatch, RecordWrite, WriteResult
from core.connections import read_cursor, save_cursor
from core.db import session_scope
from core.deal_facts import CallFact, merge_deal
from core.domain import CallForCrm
from core.errors import TransientError
from core.models import CrmWrite, Deal, utcnow
from core.review import APPROVED, approved_waiting, consent_for, evidence_key, mark_written, propose
from core.vendors import Vendor, with_a
from core.writeback import (
    SkillRow,
    audit,
    calls_due,
    latest_skill_rows,
    link_deal,
    mark_sync_failed,
    mark_synced,
)
from mappings import (
    CallFindings,
    FieldDecision,
    FoundValue,
    Mapping,
    MappingError,
    ObjectInfo,
    Policy,
    check_against,
    plan_record,
)

PULL_OVERLAP = timedelta(seconds=60)
SKILLS_STREAM = "skill-scores"
SYNC_LEASE_S = 600  # longer than any run; a crashed run's lease simply expires
AT_CLOSE_WINDOW = 90  # the skill window a closed deal's at-close scores use
@dataclass
class SyncReport:
    """What a run found, decided and (when applied) wrote."""

    run_id: str
    org_id: int
    applied: bool
    calls: list[CallForCrm] = field(default_factory=list)
    deals: dict[int, DealMatch] = field(default_factory=dict)
    decisions: list[tuple[str, FieldDecision]] = field(default_factory=list)  # (record, …)
    writes: list[RecordWrite] = field(default_factory=list)
    results: list[WriteResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    skills_stamp: str | None = None  # which skills refresh the skill rows come from
    deal_names: dict[str, str] = field(default_factory=dict)  # record id → the deal's name
    # (record, field) → (proposal id, reviewer) of approved values this run writes
    approvals: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)

    @property
    def failed(self) -> list[tuple[RecordWrite, WriteResult]]:
        return [(w, r) for w, r in zip(self.writes, self.results, strict=True) if not r.ok]


def _deal_findings(calls: list[CallForCrm], methodology: str,
                   single: set[str]) -> CallFindings:
    """A deal's facts from all its calls (core.deal_facts.merge_deal), as the planner reads
    them: each field carries the call whose statement won."""
    per_field: dict[str, list[CallFact]] = defaultdict(list)
    for call in calls:
        for rubric, found in call.fields:
            if rubric == methodology:
                per_field[found.key].append(CallFact(call.meeting_id, call.started_at,
                                                     call.title, found))
    titles = {c.meeting_id: c.title for c in calls}
    values = {}
    for key, facts in per_field.items():
        fact, meeting_id = merge_deal(facts, single_valued=key in single)
        values[key] = FoundValue(fact.value, fact.confidence,
                                 tuple(asdict(e) for e in fact.evidence), fact.status,
                                 meeting_id, titles.get(meeting_id))
    newest = max(calls, key=lambda c: (c.started_at, c.meeting_id))
    return CallFindings(newest.meeting_id, newest.title, newest.started_at.date(), values)


def _single_valued_fields(methodology: str) -> set[str]:
    from core.rubrics import find_rubric, rubric_search
    from core.settings import get_settings

    rubric = find_rubric(methodology, rubric_search(get_settings()))
    return {f.key for f in rubric.fields if f.single_valued}


def _activity_values(call: CallForCrm, deal_id: str | None, mapping: Mapping,
                     info: ObjectInfo, public_url: str, users: dict[str, str]) -> dict:
    """The call's activity record, from the mapping's templates."""
    scores = ", ".join(f"{m.upper()} {o:.0f}/100" if o is not None else f"{m.upper()} abstained"
                       for m, o in call.overall)
    url = f"{public_url.rstrip('/')}/meetings/{call.meeting_id}"
    lines = [f"Scored by coachloop ({scores})."]
    for rubric, found in call.fields:
        if rubric == mapping.methodology and found.writable:
            lines.append(f"{found.label}: {found.value}")
    lines.append(f"Call in coachloop: {url}")
    rule = mapping.activity
    started = call.started_at if call.started_at.tzinfo else call.started_at.replace(tzinfo=UTC)
    values = rule.render({"title": call.title, "date": call.started_at.date().isoformat(),
                          "started_at": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "summary": "\n".join(lines), "meeting_id": call.meeting_id, "url": url,
                          "rep_email": call.rep_email,
                          "rep_user": users.get((call.rep_email or "").lower())}, info)
    if deal_id and rule.link_field:
        values[rule.link_field] = deal_id
    return values


def _links(rule, match: DealMatch) -> tuple[tuple[str, str], ...]:
    """What the record is associated with, where the CRM links by association."""
    links = []
    if match.record_id and "deal" in rule.associate:
        links.append((rule.associate["deal"], match.record_id))
    if "contacts" in rule.associate:
        links += [(rule.associate["contacts"], c) for c in match.contact_ids]
    return tuple(links)


def _skills_changed(report: SyncReport, writer: CrmWriter, rows: list) -> bool:
    """Stamp the rows' content (not when they were computed: a refresh that changed nothing
    is not sent again); False when this content is already in the CRM."""
    content = repr(sorted(astuple(r) for r in rows))
    report.skills_stamp = hashlib.sha256(content.encode()).hexdigest()
    return writer.connection_id is None or read_cursor(
        writer.connection_id, SKILLS_STREAM) != report.skills_stamp


def _skill_record(rule, info: ObjectInfo, row: SkillRow, user_id: str, key: str,
                  deal_id: str | None = None) -> RecordWrite:
    """One skill-score record from the mapping's templates, linked to the rep's CRM user
    (and, for a closed deal's at-close scores, to the deal)."""
    values = rule.render({
        "rep_email": row.rep_email, "rep_handle": row.rep_email.split("@")[0],
        "skill": row.skill, "window_days": row.window_days, "as_of": row.as_of.isoformat(),
        "score": row.score, "interval_low": row.interval_low,
        "interval_high": row.interval_high, "percentile": row.percentile,
        "n_calls": row.n_calls, "state": row.state}, info)
    if rule.link_field:
        values[rule.link_field] = user_id
    links: tuple[tuple[str, str], ...] = ()
    if deal_id and rule.deal_field:
        values[info.field(rule.deal_field).name] = deal_id
    if deal_id and "deal" in rule.associate:
        links = ((rule.associate["deal"], deal_id),)
    return RecordWrite(rule.object, values, key_field=rule.external_id, key=key, links=links)


def _skill_writes(writer: CrmWriter, mapping: Mapping, describe: dict[str, ObjectInfo],
                  report: SyncReport) -> list[RecordWrite]:
    rule = mapping.skill_scores
    if rule is None or not rule.enabled:
        return []
    with session_scope() as session:
        rows = latest_skill_rows(session, report.org_id)
    if not rows or not _skills_changed(report, writer, rows):
        return []
    info = describe[rule.object.lower()]
    users = writer.find_users([r.rep_email for r in rows])
    writes = []
    for row in rows:
        user_id = users.get(row.rep_email.lower())
        if user_id is None:
            report.skipped.append(f"skill scores of {row.rep_email}: no active CRM user has "
                                  "this e-mail")
            continue
        key = f"{user_id}:{row.skill}:{row.window_days}d:{row.as_of.isoformat()}"
        writes.append(_skill_record(rule, info, row, user_id, key))
    return writes


def _at_close_writes(writer: CrmWriter, mapping: Mapping, describe: dict[str, ObjectInfo],
                     report: SyncReport) -> list[RecordWrite]:
    """Each closed deal's owner's skill estimates as of its close date (`core.outcomes`),
    linked to the deal, so a CRM report joins skills with won and lost. Written once per
    deal: a deal whose rows are in the audit trail as written is not read again."""
    from core.outcomes import deal_profiles

    rule = mapping.skill_scores
    if rule is None or not rule.enabled or not (rule.deal_field or "deal" in rule.associate):
        return []
    with session_scope() as session:
        closed = dict(session.exec(select(Deal.id, Deal.external_id).where(
            Deal.org_id == report.org_id, Deal.crm == writer.name, Deal.is_closed,
            Deal.close_date.is_not(None))).all())
        done = {key.split(":")[1] for key in session.exec(select(CrmWrite.external_key).where(
            CrmWrite.org_id == report.org_id, CrmWrite.crm == writer.name,
            CrmWrite.external_key.like("close:%"),
            CrmWrite.status.in_(("written", "created"))))}
        pending = [i for i, external in closed.items() if external not in done]
        profiles = deal_profiles(session, report.org_id, window_days=AT_CLOSE_WINDOW,
                                 deal_ids=pending) if pending else []
    profiles = [p for p in profiles if p.estimates and p.owner_email]
    if not profiles:
        return []
    info = describe[rule.object.lower()]
    users = writer.find_users(sorted({p.owner_email for p in profiles}))
    writes = []
    for profile in profiles:
        user_id = users.get(profile.owner_email.lower())
        if user_id is None:
            report.skipped.append(f"at-close skill scores of {profile.name}: no active CRM "
                                  f"user has {profile.owner_email}")
            continue
        for skill, e in sorted(profile.estimates.items()):
            row = SkillRow(profile.owner_email, skill, e.window_days, profile.close_date,
                           e.n_calls, e.shrunk, e.interval_low, e.interval_high, e.percentile,
                           e.state)
            writes.append(_skill_record(rule, info, row, user_id,
                                        f"close:{profile.crm_id}:{skill}:{e.window_days}d",
                                        profile.crm_id))
    return writes


def _deal_skill_writes(writer: CrmWriter, mapping: Mapping, info: ObjectInfo,
                       report: SyncReport) -> list[RecordWrite]:
    """Skill scores where the CRM has no object for them: each open deal gets its owner's
    scores (the rep of its latest call); a closed deal keeps those it closed with."""
    rule = mapping.skill_scores_on_deals
    if rule is None:
        return []
    with session_scope() as session:
        rows = [r for r in latest_skill_rows(session, report.org_id)
                if r.window_days == rule.window_days]
    if not rows or not _skills_changed(report, writer, rows):
        return []
    pull_outcomes(report.org_id, writer)  # which deals closed since the last pull
    with session_scope() as session:
        closed = set(session.exec(select(Deal.external_id).where(
            Deal.org_id == report.org_id, Deal.crm == writer.name, Deal.is_closed)))
        calls = calls_due(session, report.org_id, writer.name, include_synced=True)
    latest: dict[str, CallForCrm] = {}
    for call in calls + [replace(c, deal_record_id=report.deals[c.meeting_id].record_id)
                         for c in report.calls]:
        deal = call.deal_record_id
        if deal and call.rep_email and deal not in closed and (
                deal not in latest or call.started_at > latest[deal].started_at):
            latest[deal] = call
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.score is not None:
            scores[row.rep_email.lower()][row.skill] = row.score
    writes = []
    for deal_id, call in sorted(latest.items()):
        values: dict = {}
        for skill, score in sorted(scores.get(call.rep_email.lower(), {}).items()):
            target = info.field(rule.property.format(skill=skill))
            if target is not None and target.updateable:
                values[target.name] = round(score)
        as_of = info.field(rule.as_of) if rule.as_of else None
        if values and as_of is not None:
            values[as_of.name] = rows[0].as_of.isoformat()
        if values:
            writes.append(RecordWrite(mapping.object, values, record_id=deal_id,
                                      key=f"skills:{deal_id}"))
    return writes


def _apply_consent(report: SyncReport, mapping: Mapping, crm: str, deal_id: str,
                   plan) -> None:
    """Values in review mode are written only once a person approved them; a rejected one
    stays out unless new evidence arrives."""
    with session_scope() as session:
        for index, decision in enumerate(plan.decisions):
            if decision.status != "review":
                continue
            key = evidence_key(decision.field, decision.after, decision.evidence)
            consent = consent_for(session, report.org_id, crm, mapping.object, deal_id,
                                  decision.field, key)
            if consent.state == APPROVED:
                value = consent.value or decision.after
                plan.decisions[index] = replace(decision, status="write", after=value,
                                                reason=f"approved by {consent.actor}")
                plan.values[decision.field] = value
                report.approvals[(deal_id, decision.field)] = (consent.proposal_id,
                                                               consent.actor)
            elif consent.state in ("rejected", "written"):
                when = consent.decided_at.date().isoformat() if consent.decided_at else ""
                plan.decisions[index] = replace(
                    decision, status="skip",
                    reason=f"rejected by {consent.actor} {when}; proposed again only with new "
                           "evidence" if consent.state == "rejected"
                    else "this value was approved and written before")
            elif consent.state == "pending":
                plan.decisions[index] = replace(
                    decision, reason=f"{decision.reason} (waiting: proposal {consent.proposal_id})")


def sync(org_id: int, writer: CrmWriter, mapping: Mapping, *, apply: bool,
         meeting_ids: list[int] | None = None, include_synced: bool = False,
         public_url: str = "") -> SyncReport:
    """Plan (and with `apply`, perform) the write-back of the org's due calls."""
    report = SyncReport(run_id=uuid.uuid4().hex, org_id=org_id, applied=apply)
    with session_scope() as session:
        report.calls = calls_due(session, org_id, writer.name, meeting_ids=meeting_ids,
                                 include_synced=include_synced)
    skills_on_deals = writer.skill_scores_as() == "deal_properties"
    if skills_on_deals:  # the skill-score object is not there: the mapping's fallback is
        mapping = mapping.model_copy(update={"skill_scores": None})
    objects = [mapping.object] + [r.object for r in (mapping.activity, mapping.skill_scores)
                                  if r is not None and r.enabled]
    describe = writer.describe(objects)
    check_against(mapping, describe)
    for section in ("activity", "skill_scores"):
        rule = getattr(mapping, section)
        if rule is not None and rule.associate and not writer.associates:
            raise MappingError(f"{writer.name} links records by field, not by association: "
                               f"use link_field instead of associate", file=mapping.source,
                               line=mapping.lines.get(f"{section}.object"))

    unlinked = [c for c in report.calls if c.deal_record_id is None]
    matches = writer.find_deals(unlinked) if unlinked else {}
    deal_of: dict[int, str | None] = {}
    for call in report.calls:
        if call.deal_record_id:
            report.deals[call.meeting_id] = DealMatch(call.deal_record_id, "linked earlier")
        else:
            report.deals[call.meeting_id] = matches[call.meeting_id]
        deal_of[call.meeting_id] = report.deals[call.meeting_id].record_id

    by_deal: dict[str, list[CallForCrm]] = defaultdict(list)
    for call in report.calls:
        if deal_of[call.meeting_id]:
            by_deal[deal_of[call.meeting_id]].append(call)
    with session_scope() as session:
        waiting = approved_waiting(session, org_id, writer.name)
        # A deal's facts come from all its calls, not only the ones due now.
        for earlier in calls_due(session, org_id, writer.name, include_synced=True):
            record = earlier.deal_record_id
            if record and (record in by_deal or record in waiting) and earlier.meeting_id not in {
                    c.meeting_id for c in by_deal[record]}:
                by_deal[record].append(earlier)
        report.deal_names = {d.external_id: d.name for d in session.exec(
            select(Deal).where(Deal.org_id == org_id, Deal.crm == writer.name,
                               Deal.external_id.in_(list(by_deal))))} if by_deal else {}
    info = describe[mapping.object.lower()]
    targets = sorted({info.field(r.target).name for r in mapping.fields
                      if r.policy is not Policy.NEVER})
    # The record's name too, so the review queue and history name deals the CRM knows.
    named = [info.field("Name").name] if info.field("Name") is not None else []
    current = writer.read(mapping.object, list(by_deal), targets + named) if by_deal else {}
    for deal_id, values in current.items():
        if named and values.get(named[0]) and report.deal_names.get(deal_id) in (None, deal_id):
            report.deal_names[deal_id] = values[named[0]]
    single = _single_valued_fields(mapping.methodology)
    for deal_id, calls in sorted(by_deal.items()):
        if deal_id not in current:
            report.skipped.append(f"{mapping.object} {deal_id} is gone or not visible to the "
                                  "integration user")
            continue
        plan = plan_record(mapping, info, deal_id, current[deal_id],
                           [_deal_findings(calls, mapping.methodology, single)])
        _apply_consent(report, mapping, writer.name, deal_id, plan)
        report.decisions += [(deal_id, d) for d in plan.decisions]
        if plan.values:
            report.writes.append(RecordWrite(mapping.object, plan.values, record_id=deal_id))
    if mapping.activity is not None and mapping.activity.enabled:
        users = writer.find_users(sorted({c.rep_email for c in report.calls if c.rep_email})) \
            if "rep_user" in mapping.activity.names_used() and report.calls else {}
        for call in report.calls:
            report.writes.append(RecordWrite(
                mapping.activity.object,
                _activity_values(call, deal_of[call.meeting_id], mapping,
                                 describe[mapping.activity.object.lower()], public_url, users),
                key_field=mapping.activity.external_id, key=call.key,
                links=_links(mapping.activity, report.deals[call.meeting_id])))
    if skills_on_deals:
        report.writes += _deal_skill_writes(writer, mapping, info, report)
    else:
        report.writes += _skill_writes(writer, mapping, describe, report)
        report.writes += _at_close_writes(writer, mapping, describe, report)
    if not apply:
        return report

    report.results = writer.write(report.writes)
    _record(org_id, writer.name, mapping, report)
    connection_id = writer.connection_id
    if connection_id is not None and report.skills_stamp and all(
            r.ok for w, r in zip(report.writes, report.results, strict=True)
            if _is_skill_write(w, mapping)):
        save_cursor(connection_id, SKILLS_STREAM, report.skills_stamp)
    return report


def _is_skill_write(write: RecordWrite, mapping: Mapping) -> bool:
    return (mapping.skill_scores is not None and write.sobject == mapping.skill_scores.object) \
        or (write.key or "").startswith("skills:")


def _record(org_id: int, crm: str, mapping: Mapping, report: SyncReport) -> None:
    """Links, audit rows and per-call sync state, in one transaction."""
    result_of = {(w.sobject, w.ref): r for w, r in zip(report.writes, report.results, strict=True)}
    rows: list[CrmWrite] = []
    failed_calls: dict[int, str] = {}
    written_proposals: list[int] = []
    to_propose = []
    for record_id, decision in report.decisions:
        result = result_of.get((mapping.object, record_id))
        status, reason = decision.status, decision.reason
        approval = report.approvals.get((record_id, decision.field))
        if decision.status == "write":
            status = "written" if result and result.ok else "failed"
            if result and not result.ok:
                reason = result.error
                failed_calls[decision.meeting_id] = f"{mapping.object} {record_id}: {result.error}"
            elif approval:
                written_proposals.append(approval[0])
        elif decision.status == "review" and "(waiting: proposal" not in decision.reason:
            to_propose.append((record_id, decision))
        rows.append(CrmWrite(org_id=org_id, run_id=report.run_id, crm=crm,
                             sobject=mapping.object, record_id=record_id,
                             meeting_id=decision.meeting_id, field=decision.field,
                             policy=decision.policy.value, before=decision.before,
                             after=decision.after if decision.status != "review" else
                             decision.before, confidence=decision.confidence,
                             evidence=list(decision.evidence), status=status, reason=reason,
                             actor=approval[1] if approval and status == "written" else None))
    meeting_of_key = {c.key: c.meeting_id for c in report.calls}
    for write, result in zip(report.writes, report.results, strict=True):
        if write.record_id is not None and write.key is None:
            continue  # field-level rows above
        meeting_id = meeting_of_key.get(write.key) if write.sobject == (
            mapping.activity.object if mapping.activity else None) else None
        if not result.ok and meeting_id is not None:
            failed_calls[meeting_id] = f"{write.sobject} {write.key}: {result.error}"
        rows.append(CrmWrite(org_id=org_id, run_id=report.run_id, crm=crm, sobject=write.sobject,
                             record_id=result.record_id, external_key=write.key,
                             meeting_id=meeting_id, policy="upsert",
                             after=_compact(write.values),
                             status=("created" if result.created else "written") if result.ok
                             else "failed", reason=result.error))
    for call in report.calls:
        match = report.deals[call.meeting_id]
        if match.record_id is None:
            rows.append(CrmWrite(org_id=org_id, run_id=report.run_id, crm=crm,
                                 sobject=mapping.object, meeting_id=call.meeting_id,
                                 policy="link", status="skipped", reason=match.reason))
    with session_scope() as session:
        for call in report.calls:
            match = report.deals[call.meeting_id]
            if match.record_id and call.deal_record_id is None:
                link_deal(session, org_id, call.meeting_id, crm, match.record_id, match.reason,
                          report.deal_names.get(match.record_id))
        audit(session, rows)
        mark_written(session, written_proposals)
        for record_id, decision in to_propose:
            propose(session, org_id=org_id, crm=crm, sobject=mapping.object,
                    record_id=record_id, deal_name=report.deal_names.get(record_id),
                    field=decision.field, source=decision.source,
                    meeting_id=decision.meeting_id, call_title=decision.call_title,
                    before=decision.before, proposed=decision.after or "",
                    confidence=decision.confidence, evidence=decision.evidence,
                    key=evidence_key(decision.field, decision.after, decision.evidence))
        mark_synced(session, [c.meeting_id for c in report.calls
                              if c.meeting_id not in failed_calls])
        for meeting_id, message in failed_calls.items():
            mark_sync_failed(session, meeting_id, message)


def _compact(values: dict) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def pull_outcomes(org_id: int, writer: CrmWriter, *, full: bool = False) -> int:
    """Pull deals changed since the last pull into `Deal` rows (stage, amount, won/lost);
    returns how many were pulled. The high-water mark is kept per connection."""
    from datetime import datetime

    from core.ingest import apply_deals
    from core.models import Org

    connection_id = writer.connection_id
    cursor = None if full or connection_id is None else read_cursor(connection_id, "deals")
    # Overlap the last pull a little: a deal edited in the second we read must not be missed,
    # and pulling one twice is harmless (deals are upserted by CRM id).
    since = datetime.fromisoformat(cursor) - PULL_OVERLAP if cursor else None
    deals, high = writer.pull_deals(since)
    with session_scope() as session:
        apply_deals(session, session.get(Org, org_id), deals)
    if connection_id is not None and high is not None:
        save_cursor(connection_id, "deals", high.isoformat())
    return len(deals)


class SyncBusy(TransientError):
    """Another process is writing back for this CRM connection right now; try again soon."""


def connected_crm(org_id: int) -> Vendor | None:
    """The CRM the org has a usable connection to (the first, if several)."""
    from core.connections import active_connection_id
    from core.errors import CoachloopError

    for vendor in with_a("writer"):
        try:
            active_connection_id(org_id, vendor.name)
            return vendor
        except CoachloopError:
            continue
    return None


def crm_connected(org_id: int) -> bool:
    """Whether the org has a usable CRM connection to write back to."""
    return connected_crm(org_id) is not None


def crm_writer(org_id: int, settings) -> tuple[Vendor, CrmWriter]:
    """The org's CRM and a writer on its connection; ConfigError says what to connect."""
    from core.errors import ConfigError

    crms = with_a("writer")
    vendor = connected_crm(org_id) or (crms[0] if len(crms) == 1 else None)
    if vendor is None:  # (with one CRM registered, its writer says what to connect)
        raise ConfigError("no CRM is connected: run `coachloop connect` with one of "
                          + ", ".join(v.name for v in crms))
    return vendor, vendor.load("writer")(org_id, settings)


def sync_configured(org_id: int, *, apply: bool = True, include_synced: bool = False,
                    meeting_ids: list[int] | None = None) -> SyncReport:
    """Write-back with the org's CRM and its configured mapping, one run per connection at
    a time."""
    from core.connections import release_lease, take_lease
    from core.settings import get_settings
    from mappings import configured_mapping

    settings = get_settings()
    vendor, writer = crm_writer(org_id, settings)
    mapping = configured_mapping(vendor.name, settings)
    leased = apply and writer.connection_id is not None
    try:
        if apply and writer.connection_id is not None:
            govern_quota(writer.connection_id, vendor.settings_of(settings))
        if leased and not take_lease(writer.connection_id, "crm-sync", SYNC_LEASE_S):
            leased = False
            raise SyncBusy("another CRM write-back is running for this connection",
                           retry_after=15)
        try:
            return sync(org_id, writer, mapping, apply=apply, include_synced=include_synced,
                        meeting_ids=meeting_ids, public_url=settings.public_url)
        except MappingError as exc:
            if vendor.setup is not None:  # what is missing can be created for the admin
                exc.message += "\n(`coachloop crm setup` shows what is missing and creates it)"
                exc.args = (exc.message,)
            raise
    finally:
        if leased:
            release_lease(writer.connection_id, "crm-sync")
        if writer.connection_id is not None and getattr(writer, "api_usage", None):
            used, limit = writer.api_usage
            save_cursor(writer.connection_id, "api-usage",
                        f"{used}/{limit}@{utcnow().isoformat()}")
        writer.close()


class QuotaPaused(TransientError):
    """Write-back waits: the CRM's daily API calls are past the share we may use."""


def api_usage(connection_id: int) -> tuple[int, int, datetime] | None:
    """The connection's last seen (used, daily limit, when), from the CRM's own headers."""
    raw = read_cursor(connection_id, "api-usage")
    if not raw:
        return None
    counts, _, at = raw.partition("@")
    used, _, limit = counts.partition("/")
    return int(used), int(limit), datetime.fromisoformat(at)


def quota_note(usage: tuple[int, int] | None, settings) -> str:
    """"N of M API calls left today (x% used)", and how the governor paces write-back at
    that share (`settings`: the CRM's own section, with the quota_* shares)."""
    if not usage or not usage[1]:
        return ""
    used, limit = usage
    share = used / limit
    pace = ("; write-back paused until tomorrow (UTC)" if share >= settings.quota_stop_share
            else f"; write-back slowed to once every {settings.quota_slow_minutes:g} min"
            if share >= settings.quota_slow_share else "")
    return f"{limit - used:,} of {limit:,} API calls left today ({share:.0%} used){pace}"


def govern_quota(connection_id: int, settings) -> None:
    """Before a write-back: past `quota_stop_share` of the daily limit, wait for the next UTC
    day; past `quota_slow_share`, at most one run every `quota_slow_minutes`. A paused run is
    a TransientError: the worker retries it then, and nothing it would have written is lost
    (those calls stay due)."""
    seen = api_usage(connection_id)
    if seen is None:
        return
    used, limit, at = seen
    now = utcnow()
    if not limit or at.date() != now.date():  # a new day: the counts are stale
        return
    share = used / limit
    if share >= settings.quota_stop_share:
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                    now.tzinfo)
        raise QuotaPaused(f"CRM write-back paused: {used:,} of {limit:,} daily API calls used "
                          f"({share:.0%}, the stop line is {settings.quota_stop_share:.0%}); "
                          "it resumes tomorrow (UTC)",
                          retry_after=(tomorrow - now).total_seconds())
    if share >= settings.quota_slow_share:
        wait = at + timedelta(minutes=settings.quota_slow_minutes) - now
        if wait > timedelta(0):
            raise QuotaPaused(f"CRM write-back slowed: {used:,} of {limit:,} daily API calls "
                              f"used ({share:.0%}); next run in {wait.seconds // 60 + 1} min",
                              retry_after=wait.total_seconds())
