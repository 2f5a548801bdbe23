"""Who is asking: local accounts, browser sessions and API tokens. No web framework here:
`core.access` turns a principal into what it may see, `api.py` into route policies.

- Local accounts are the fallback to single sign-on: argon2 password hashes, invitation links
  that expire and work once, and a lockout after repeated failures.
- A browser session is a random secret in an HttpOnly cookie; only its hash is stored, so a
  session can be ended here and a database leak signs nobody in. Each session has a CSRF
  secret of its own for state-changing requests.
- An API token is created by an admin, carries scopes, is shown once, stored hashed, can be
  revoked, and records when it was last used.

Every secret is compared by its hash in the database's index, and the few direct comparisons
(the CSRF secret) are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core.errors import InputError, NotFound, Unauthenticated
from core.models import ApiToken, Invitation, Org, User, WebSession, as_utc, utcnow

ROLES = ("rep", "manager", "admin")
# What an API token may do: `read` every GET an admin may make, `review` decide on the CRM
# review queue, `admin` everything an admin may do.
TOKEN_SCOPES = ("read", "review", "admin")
TOKEN_PREFIX = "clt_"
MIN_PASSWORD = 12
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
INVITATION_TTL = timedelta(days=3)
SESSION_TTL = timedelta(hours=12)  # absolute: a session ends after this, used or not
SESSION_IDLE = timedelta(hours=2)
_TOUCH_EVERY = timedelta(seconds=60)  # last-used times are written at most this often


class AuthFailed(Unauthenticated):
    """Sign-in or credentials refused. The message never says which part was wrong."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a signed-in person (`via` session) or a machine (token)."""

    org_id: int
    role: str  # rep | manager | admin; a token acts as admin, limited by its scopes
    via: str  # session | token
    user_id: int | None = None
    email: str | None = None
    scopes: frozenset[str] = frozenset()
    session_id: int | None = None
    token_id: int | None = None

    @property
    def name(self) -> str:
        """How the audit names this principal."""
        return self.email or f"api-token:{self.token_id}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(given: str | None, stored_hash: str) -> bool:
    return given is not None and hmac.compare_digest(digest(given), stored_hash)


# ------------------------------------------------------------------- passwords ----


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def set_password(user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters")
    user.password_hash = _hasher().hash(password)
    user.failed_logins, user.locked_until = 0, None


def _find_users(session: Session, email: str, org: str | None) -> list[User]:
    query = select(User).where(User.email == email.strip().lower())
    if org:
        query = query.join(Org, User.org_id == Org.id).where(Org.name == org)
    return list(session.exec(query))


# One hash to spend time on when the e-mail is unknown, so timing does not tell who exists.
_DUMMY_HASH: list[str] = []


def check_password(session: Session, email: str, password: str, *, org: str | None = None,
                   now: datetime | None = None) -> User:
    """The user whose e-mail and password these are; AuthFailed otherwise. Repeated failures
    lock the account for a while, and a locked account refuses even the right password."""
    from argon2.exceptions import InvalidHashError, VerificationError

    now = now or utcnow()
    candidates = [u for u in _find_users(session, email, org) if u.password_hash]
    if len(candidates) > 1:
        raise AuthFailed("that e-mail has accounts in several orgs: say which org")
    hasher = _hasher()
    if not candidates:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hasher.hash(secrets.token_hex(8)))
        try:
            hasher.verify(_DUMMY_HASH[0], password)
        except VerificationError:
            pass
        raise AuthFailed("wrong e-mail or password")
    user = candidates[0]
    if user.disabled:
        raise AuthFailed("wrong e-mail or password")
    locked = as_utc(user.locked_until)
    if locked and locked > now:
        raise AuthFailed(f"too many failed sign-ins: try again after "
                         f"{locked:%H:%M} UTC, or ask an admin for a new invitation")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
        session.add(user)
        session.commit()
        raise AuthFailed("wrong e-mail or password") from None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    return user


# ----------------------------------------------------------------- invitations ----


def invite(session: Session, org_id: int, email: str, *, name: str | None = None,
           role: str = "rep", by: str | None = None,
           ttl: timedelta = INVITATION_TTL) -> tuple[Invitation, str]:
    """An invitation for `email` (created as a user of the org if the roster lacks them), and
    the link's secret, which is shown once and never stored."""
    if role not in ROLES:
        raise InputError(f"no role {role!r}; roles: {', '.join(ROLES)}")
    email = email.strip().lower()
    if "@" not in email:
        raise InputError(f"{email!r} is not an e-mail address")
    user = session.exec(select(User).where(User.org_id == org_id, User.email == email)).first()
    if user is None:
        user = User(org_id=org_id, email=email, name=name or email.split("@")[0], role=role)
        session.add(user)
        session.flush()
    secret = secrets.token_urlsafe(32)
    invitation = Invitation(org_id=org_id, user_id=user.id, token_hash=digest(secret),
                            created_by=by, expires_at=utcnow() + ttl)
    session.add(invitation)
    session.flush()
    return invitation, secret


def accept_invitation(session: Session, secret: str, password: str) -> User:
    """Set the invited person's password; the link works once and not after it expires."""
    invitation = session.exec(select(Invitation).where(
        Invitation.token_hash == digest(secret))).first()
    if invitation is None or invitation.used_at is not None:
        raise AuthFailed("this invitation link is not valid (used already, or mistyped): "
                         "ask an admin for a new one")
    if as_utc(invitation.expires_at) <= utcnow():
        raise AuthFailed("this invitation link has expired: ask an admin for a new one")
    user = session.get(User, invitation.user_id)
    set_password(user, password)
    user.disabled = False
    invitation.used_at = utcnow()
    session.add_all([user, invitation])
    return user


# -------------------------------------------------------------------- sessions ----


def start_session(session: Session, user: User, *, via: str = "password"
                  ) -> tuple[WebSession, str, str]:
    """A new browser session for `user`: the row, the cookie secret and the CSRF secret."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = WebSession(org_id=user.org_id, user_id=user.id, token_hash=digest(token),
                     csrf_hash=digest(csrf), via=via, expires_at=utcnow() + SESSION_TTL)
    session.add(row)
    session.flush()
    return row, token, csrf


def session_principal(session: Session, token: str, *, now: datetime | None = None
                      ) -> tuple[Principal, WebSession] | None:
    """Whom a session cookie signs in, or None when it is unknown, ended or expired."""
    now = now or utcnow()
    row = session.exec(select(WebSession).where(WebSession.token_hash == digest(token))).first()
    if row is None or row.ended_at is not None or as_utc(row.expires_at) <= now \
            or as_utc(row.last_seen_at) + SESSION_IDLE <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if as_utc(row.last_seen_at) + _TOUCH_EVERY <= now:
        row.last_seen_at = now
        session.add(row)
        session.commit()
    return Principal(org_id=row.org_id, role=user.role, via="session", user_id=user.id,
                     email=user.email, session_id=row.id), row


def end_session(session: Session, session_id: int) -> None:
    row = session.get(WebSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.add(row)


def disable_user(session: Session, org_id: int, email: str) -> int:
    """Stop someone signing in and end their open sessions at once; returns how many."""
    user = session.exec(select(User).where(User.org_id == org_id,
                                           User.email == email.strip().lower())).first()
    if user is None:
        raise NotFound(f"no one with e-mail {email!r} in this org")
    user.disabled = True
    session.add(user)
    ended = 0
    for row in session.exec(select(WebSession).where(WebSession.user_id == user.id,
                                                     WebSession.ended_at.is_(None))):
        row.ended_at = utcnow()
        session.add(row)
        ended += 1
    return ended


# ------------------------------------------------------------------ API tokens ----


def create_token(session: Session, org_id: int, name: str, scopes: list[str], *,
                 by: str | None = None) -> tuple[ApiToken, str]:
    """A new API token and its secret (shown once: only its hash is kept)."""
    unknown = [s for s in scopes if s not in TOKEN_SCOPES]
    if unknown or not scopes:
        raise InputError(f"token scopes must be some of {', '.join(TOKEN_SCOPES)}"
                         + (f" (not {', '.join(unknown)})" if unknown else ""))
    if not name.strip():
        raise InputError("a token needs a name that says what uses it")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(org_id=org_id, name=name.strip(), prefix=secret[:10],
                   token_hash=digest(secret), scopes=sorted(set(scopes)), created_by=by)
    session.add(row)
    session.flush()
    return row, secret


def token_principal(session: Session, secret: str, *, now: datetime | None = None
                    ) -> Principal | None:
    """Whom an API token acts as, or None when it is unknown or revoked."""
    now = now or utcnow()
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(secret))).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.last_used_at is None or as_utc(row.last_used_at) + _TOUCH_EVERY <= now:
        row.last_used_at = now
        session.add(row)
        session.commit()
    return Principal(org_id=row.org_id, role="admin", via="token", scopes=frozenset(row.scopes),
                     token_id=row.id)


def list_tokens(session: Session, org_id: int) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).where(ApiToken.org_id == org_id)
                             .order_by(ApiToken.id)))


def revoke_token(session: Session, org_id: int, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.org_id != org_id:
        raise NotFound(f"no API token {token_id} in this org")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
    return row
