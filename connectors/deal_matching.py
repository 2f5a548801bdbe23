"""Which deal a call belongs to, decided the same way for every CRM.

A CRM writer reads its contacts, the deals they take part in and the deals on their accounts
into the plain records below; `match_call` then decides, and says why. A buyer the meeting
platform names without an e-mail counts only when `by_name` resolved them to exactly one
contact on an account where the call's rep had a deal open at the time (never guessed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from connectors.base import DealMatch
from core.domain import CallForCrm


@dataclass(frozen=True)
class CrmContact:
    id: str
    name: str
    email: str | None
    account_id: str | None
    by_name: str | None = None  # the call's guest name it was resolved from (no e-mail)


@dataclass(frozen=True)
class CrmDeal:
    id: str
    name: str
    account_id: str | None
    is_closed: bool
    close_date: str | None  # YYYY-MM-DD
    owner_id: str | None = None


def open_at(deal: CrmDeal, when: datetime) -> bool:
    """Was the deal open when the call happened (closed later still counts)?"""
    if not deal.is_closed:
        return True
    return bool(deal.close_date) and deal.close_date >= when.date().isoformat()


def name_key(meeting_id: int, name: str) -> str:
    return f"name:{meeting_id}:{name.lower()}"


def by_name(calls: list[CallForCrm], owner_of: dict[str, str], owned: Iterable[CrmDeal],
            named: Iterable[CrmContact]) -> dict[int, list[CrmContact]]:
    """Each call's guests without an e-mail, resolved to a contact when exactly one contact
    of that name (`named`, looked up by the guests' names) is on an account where the call's
    rep (`owner_of`: e-mail → CRM user id) owned a deal (`owned`) open at the time of the
    call; no such contact, or two, stays unresolved."""
    deals_of: dict[str, list[CrmDeal]] = defaultdict(list)
    for deal in owned:
        if deal.account_id and deal.owner_id:
            deals_of[deal.owner_id].append(deal)
    found: dict[str, list[CrmContact]] = defaultdict(list)
    for contact in named:
        found[contact.name.lower()].append(contact)
    out: dict[int, list[CrmContact]] = {}
    for call in calls:
        if not call.rep_email:
            continue
        mine = {d.account_id for d in deals_of.get(owner_of.get(call.rep_email.lower(), ""), ())
                if open_at(d, call.started_at)}
        for name in call.unnamed_buyers:
            matches = [c for c in found.get(name.lower(), ()) if c.account_id in mine]
            if len(matches) == 1:
                out.setdefault(call.meeting_id, []).append(replace(matches[0], by_name=name))
    return out


def _who(contact: CrmContact) -> str:
    if contact.by_name:
        return (f"{contact.by_name} (no e-mail on the call; the only contact of that name "
                "on the accounts the rep had open deals on)")
    return contact.email or contact.name


def match_call(call: CallForCrm, contacts: dict[str, list[CrmContact]],
               roles: dict[str, set[str]], deals: dict[str, CrmDeal], crm: str,
               deal_word: str = "deal") -> DealMatch:
    """The deal of one call. `contacts`: by lower-cased e-mail, and by `name_key` for guests
    resolved by name; `roles`: contact id → ids of the deals they take part in; `deals`: the
    deals of those roles and of the contacts' accounts. Votes from contacts with a part in
    an open deal decide; else the only deal open on their account; else none, and why."""
    known = [c for e in call.buyer_emails for c in contacts.get(e.lower(), [])] + [
        c for n in call.unnamed_buyers for c in contacts.get(name_key(call.meeting_id, n), [])]
    ids = tuple(sorted({c.id for c in known}))
    if not call.buyer_emails and not known:
        return DealMatch(None, "no buyer e-mail on the call to look up" + (
            f"; no single contact named {', '.join(call.unnamed_buyers)} on the accounts the "
            "rep had open deals on" if call.unnamed_buyers else ""))
    if not known:
        return DealMatch(None, f"no {crm} contact has the buyers' e-mails ("
                         + ", ".join(sorted(call.buyer_emails)) + ")")
    votes: dict[str, int] = defaultdict(int)
    for contact in known:
        for deal_id in roles.get(contact.id, ()):
            if deal_id in deals and open_at(deals[deal_id], call.started_at):
                votes[deal_id] += 1
    if votes:
        best = max(votes.values())
        top = sorted(d for d, v in votes.items() if v == best)
        if len(top) == 1:
            names = sorted({_who(c) for c in known if top[0] in roles.get(c.id, ())})
            return DealMatch(top[0], f"{', '.join(names)} has a contact role on "
                             f"{deals[top[0]].name!r}", ids)
        return DealMatch(None, "ambiguous: the buyers have contact roles on "
                         + ", ".join(repr(deals[d].name) for d in top) + "; link it by hand",
                         ids)
    accounts = {c.account_id for c in known if c.account_id}
    candidates = sorted(d.id for d in deals.values()
                        if d.account_id in accounts and open_at(d, call.started_at))
    if len(candidates) == 1:
        deal = deals[candidates[0]]
        return DealMatch(deal.id, f"the only {deal_word} open at the time on the buyers' account "
                         f"({deal.name!r})", ids)
    if candidates:
        return DealMatch(None, f"ambiguous: {len(candidates)} open {deal_word}s on the buyers' "
                         "account; link it by hand", ids)
    return DealMatch(None, f"no open {deal_word} on the buyers' account", ids)
