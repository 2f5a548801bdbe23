"""What a principal may see, decided in one place.

Every route declares a `Policy` (api.py turns it into its one dependency); what the route then
reads is narrowed by the principal's `Scope`: an admin (or an API token) sees the whole org, a
manager the reps they manage (all the way down) and themselves, a rep only themselves. The
read models in `core.reports` and `core.review` take the scope and apply the clauses below,
so no handler filters on its own. Another org's rows are never visible: they read as absent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import false, or_
from sqlmodel import Session, select

from core.auth import ROLES, Principal
from core.models import CallScore, Deal, Meeting, User

EVERYONE = frozenset(ROLES)


@dataclass(frozen=True)
class Policy:
    """Who may call a route. A public route says why it is safe to leave open (what verifies
    the caller instead); any other names the roles a person needs and the scope a token
    needs (None: no token may; "any": every token)."""

    name: str
    roles: frozenset[str] = frozenset()
    token_scope: str | None = None
    public_because: str | None = None

    @property
    def public(self) -> bool:
        return self.public_because is not None

    def allows(self, principal: Principal) -> bool:
        if principal.via == "token":
            if self.token_scope == "any":
                return True
            return self.token_scope is not None and bool(
                {self.token_scope, "admin"} & principal.scopes)
        return principal.role in self.roles


# The policies routes use (a route picks one; tests/test_access.py checks every route has one).
HEALTH = Policy("health", public_because="liveness only: no data")
WEBHOOK = Policy("webhook", public_because="the vendor's signature over the raw body")
OAUTH_CALLBACK = Policy("oauth-callback",
                        public_because="single-use state bound to the admin's org, with PKCE")
SIGN_IN = Policy("sign-in", public_because="it checks the credentials it is given")
DOCS = Policy("docs", public_because="the API's own description: no data")
SIGNED_IN = Policy("signed-in", EVERYONE, token_scope="any")
MEMBER_READ = Policy("member-read", EVERYONE, token_scope="read")
TEAM_READ = Policy("team-read", frozenset({"manager", "admin"}), token_scope="read")
REVIEW = Policy("crm-review", EVERYONE, token_scope="review")
ADMIN_READ = Policy("admin-read", frozenset({"admin"}), token_scope="read")
ADMIN = Policy("admin", frozenset({"admin"}), token_scope="admin")


@dataclass(frozen=True)
class Scope:
    """The part of an org a principal sees: `rep_ids` None is all of it."""

    org_id: int
    rep_ids: frozenset[int] | None

    def sees_user(self, user: User | None) -> bool:
        return user is not None and user.org_id == self.org_id and (
            self.rep_ids is None or user.id in self.rep_ids)

    def user_clause(self):
        clause = User.org_id == self.org_id
        return clause if self.rep_ids is None else clause & User.id.in_(self.rep_ids)

    def meeting_clause(self):
        """Meetings hosted by, or scored for, someone in scope."""
        clause = Meeting.org_id == self.org_id
        if self.rep_ids is None:
            return clause
        if not self.rep_ids:
            return false()
        scored = select(CallScore.meeting_id).where(CallScore.rep_id.in_(self.rep_ids))
        return clause & or_(Meeting.host_id.in_(self.rep_ids), Meeting.id.in_(scored))

    def deal_record_ids(self, session: Session) -> set[str] | None:
        """CRM record ids of the deals owned by someone in scope (None: every deal)."""
        if self.rep_ids is None:
            return None
        return set(session.exec(select(Deal.external_id).where(
            Deal.org_id == self.org_id, Deal.owner_id.in_(self.rep_ids))))


def as_scope(org: int | Scope) -> Scope:
    """An org id (the local operator: the CLI, the workers) sees all of it."""
    return org if isinstance(org, Scope) else Scope(org, None)


def scope_for(session: Session, principal: Principal) -> Scope:
    if principal.via == "token" or principal.role == "admin":
        return Scope(principal.org_id, None)
    seen = {principal.user_id}
    if principal.role == "manager":
        frontier = {principal.user_id}
        while frontier:
            reports = set(session.exec(select(User.id).where(
                User.org_id == principal.org_id, User.manager_id.in_(frontier))))
            frontier = reports - seen
            seen |= reports
    return Scope(principal.org_id, frozenset(seen))
