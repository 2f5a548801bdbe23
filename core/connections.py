"""Connections to vendor accounts, and the token vault that keeps their access tokens valid.

The vault refreshes ahead of expiry, one refresh at a time per connection across every
process (a lease row-update that only one caller can win), re-reads the stored tokens after
winning (another process may have just refreshed), stores rotated refresh tokens before
handing out the new access token, and marks the connection broken with a plain reason when
the vendor refuses, so an admin sees it instead of a retry storm.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select, update

from core.db import session_scope
from core.errors import CoachloopError, NotFound, Resolution
from core.models import Connection, as_utc, utcnow
from core.webhook_events import forget_accounts
from core.oauth import AuthRefused, OAuthProvider, TokenSet, client_credentials, refresh

REFRESH_MARGIN = timedelta(minutes=15)
LEASE = timedelta(seconds=30)


class ConnectionBroken(CoachloopError):
    """The connection needs an admin to reconnect it; the message says why."""

    resolution = Resolution.TERMINAL


@dataclass(frozen=True)
class ConnectionInfo:
    """A connection as admins see it: never any token."""

    id: int
    provider: str
    account_ref: str
    auth_kind: str
    status: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    last_error: str | None
    instance_url: str | None = None
    last_sync_at: datetime | None = None  # the newest saved sync cursor, if any
    updated_at: datetime | None = None
    org_id: int | None = None


# A connection in one of these states holds no tokens: it is kept for the audit only.
ENDED = ("disconnected", "replaced")


def save_connection(session: Session, *, org_id: int, provider: str, tokens: TokenSet,
                    cipher, auth_kind: str = "oauth", end_others: bool = True) -> Connection:
    """Create the org's connection to this vendor account, or renew its live one (reconnecting
    heals it); an ended connection's row is never reused, so the audit keeps it. With
    `end_others`, any other live connection to the vendor is marked replaced here (without
    revoking it: callers that can revoke pass False and do it themselves)."""
    connection = session.exec(select(Connection).where(
        Connection.org_id == org_id, Connection.provider == provider,
        Connection.account_ref == tokens.account_ref,
        Connection.status.not_in(ENDED))).first()
    connection = connection or Connection(org_id=org_id, provider=provider,
                                          account_ref=tokens.account_ref)
    connection.auth_kind = auth_kind
    connection.token_ciphertext = cipher.encrypt(tokens.to_secret())
    connection.scopes = list(tokens.scopes)
    connection.expires_at = tokens.expires_at
    connection.instance_url = tokens.instance_url
    connection.status, connection.last_error, connection.refreshing_until = "active", None, None
    connection.updated_at = utcnow()
    session.add(connection)
    session.flush()
    forget_accounts()  # webhook events for this account now go to this org
    if not end_others:
        return connection
    # One active connection per org and vendor: any other one is replaced (its tokens
    # dropped, the row kept for the audit).
    for other in session.exec(select(Connection).where(
            Connection.org_id == org_id, Connection.provider == provider,
            Connection.id != connection.id, Connection.status.not_in(ENDED))).all():
        _end(other, "replaced", f"replaced by connection {connection.id}")
        session.add(other)
    return connection


def _end(row: Connection, status: str, note: str) -> None:
    forget_accounts()
    row.status, row.last_error, row.updated_at = status, note, utcnow()
    row.token_ciphertext, row.expires_at, row.refreshing_until = None, None, None


def end_connection(connection_id: int, status: str, note: str) -> None:
    """Delete a connection's tokens and mark it `disconnected` or `replaced` (with `note`:
    what happened at the vendor); the row stays for the audit."""
    if status not in ENDED:
        raise ValueError(f"not an ended status: {status!r}")
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        if row is None:
            raise NotFound(f"connection {connection_id} does not exist")
        _end(row, status, note)
        session.add(row)


def stored_tokens(connection_id: int, cipher) -> TokenSet | None:
    """The tokens a connection holds as stored (even a broken one's, to revoke them); None
    when it holds none."""
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        if row is None or not row.token_ciphertext:
            return None
        secret = cipher.decrypt(row.token_ciphertext)
        return TokenSet(secret["access_token"], secret.get("refresh_token"),
                        as_utc(row.expires_at), tuple(row.scopes), row.instance_url,
                        row.account_ref)


def mark_broken(connection_id: int, reason: str) -> None:
    """The vendor refused this connection's credentials: an admin must reconnect it."""
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        if row is not None and row.status not in ENDED:
            row.status, row.last_error, row.updated_at = "broken", reason, utcnow()
            session.add(row)


def list_connections(session: Session, org_id: int, provider: str | None = None
                     ) -> list[ConnectionInfo]:
    """The org's connections (to one vendor, if given), ended ones included; never a token."""
    from sqlmodel import func

    from core.models import SyncCursor

    query = select(Connection).where(Connection.org_id == org_id)
    if provider is not None:
        query = query.where(Connection.provider == provider)
    rows = session.exec(query.order_by(Connection.provider, Connection.id)).all()
    synced = dict(session.exec(
        select(SyncCursor.connection_id, func.max(SyncCursor.updated_at))
        .where(SyncCursor.connection_id.in_([c.id for c in rows]),
               SyncCursor.stream.not_like("lease:%"))
        .group_by(SyncCursor.connection_id)).all()) if rows else {}
    return [ConnectionInfo(c.id, c.provider, c.account_ref, c.auth_kind, c.status,
                           tuple(c.scopes), as_utc(c.expires_at), c.last_error, c.instance_url,
                           as_utc(synced.get(c.id)), as_utc(c.updated_at), c.org_id)
            for c in rows]


def active_connection_id(org_id: int | None, provider: str,
                         account_ref: str | None = None) -> int:
    """The id of the org's (or, with no org, the account's) usable connection to `provider`."""
    from core.errors import ConfigError

    with session_scope() as session:
        query = select(Connection).where(Connection.provider == provider)
        if org_id is not None:
            query = query.where(Connection.org_id == org_id)
        if account_ref is not None:
            query = query.where(Connection.account_ref == account_ref)
        # Newest first: the connection an admin made last is the one they meant.
        rows = session.exec(query.order_by(Connection.id.desc())).all()
        usable = [c for c in rows if c.status == "active"]
        if usable:
            return usable[0].id
        broken = [c for c in rows if c.status == "broken"]
        if broken:
            raise ConnectionBroken(f"the {provider} connection is broken ({broken[0].last_error});"
                                   f" reconnect it with `coachloop connect {provider}`")
        if rows:
            raise ConfigError(f"the {provider} connection {rows[0].id} is {rows[0].status}: "
                              f"connect again with `coachloop connect {provider}`")
        raise ConfigError(f"no {provider} connection" + (f" for account {account_ref}"
                                                         if account_ref else "")
                          + f": connect one with `coachloop connect {provider}`")


class TokenVault:
    """Valid access tokens for connections; `provider_for(name)` says how to refresh each."""

    def __init__(self, provider_for: Callable[[str], OAuthProvider], cipher, *,
                 margin: timedelta = REFRESH_MARGIN, clock: Callable[[], datetime] = utcnow,
                 wait_s: float = 20.0):
        self._provider_for = provider_for
        self._cipher = cipher
        self._margin = margin
        self._clock = clock
        self._wait_s = wait_s

    def _load(self, connection_id: int) -> tuple[Connection, TokenSet]:
        with session_scope() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise NotFound(f"connection {connection_id} does not exist")
            if connection.status == "broken":
                raise ConnectionBroken(f"the {connection.provider} connection is broken "
                                       f"({connection.last_error}); reconnect it")
            if connection.status in ENDED or not connection.token_ciphertext:
                raise ConnectionBroken(f"the {connection.provider} connection {connection_id} "
                                       f"is {connection.status} and holds no tokens; connect "
                                       f"again with `coachloop connect {connection.provider}`")
            secret = self._cipher.decrypt(connection.token_ciphertext)
            tokens = TokenSet(secret["access_token"], secret.get("refresh_token"),
                              as_utc(connection.expires_at), tuple(connection.scopes),
                              connection.instance_url, connection.account_ref)
            return connection, tokens

    def access_token(self, connection_id: int, *, force_refresh: bool = False,
                     rejected: str | None = None) -> TokenSet:
        """A token valid for at least the margin. After a 401, pass the token the vendor
        `rejected`: it is refreshed only if nobody has replaced it already (so two workers
        that both got a 401 cause one refresh); `force_refresh` refreshes regardless."""
        connection, tokens = self._load(connection_id)
        if rejected is not None and tokens.access_token == rejected:
            force_refresh = True
        if tokens.fresh(self._margin, self._clock()) and not force_refresh:
            return tokens
        stale_token = tokens.access_token
        deadline = time.monotonic() + self._wait_s
        while not self._take_lease(connection_id):
            if time.monotonic() > deadline:
                raise ConnectionBroken(f"the {connection.provider} token refresh did not finish "
                                       f"within {self._wait_s:.0f} s")
            time.sleep(0.1)
        try:
            connection, tokens = self._load(connection_id)
            if tokens.access_token != stale_token and tokens.fresh(self._margin, self._clock()):
                return tokens  # someone refreshed while we waited for the lease
            return self._refresh(connection, tokens)
        finally:
            self._release_lease(connection_id)

    def _take_lease(self, connection_id: int) -> bool:
        now = self._clock()
        with session_scope() as session:
            won = session.exec(update(Connection).where(
                Connection.id == connection_id,
                (Connection.refreshing_until.is_(None)) | (Connection.refreshing_until < now))
                .values(refreshing_until=now + LEASE))
            return won.rowcount == 1

    def _release_lease(self, connection_id: int) -> None:
        with session_scope() as session:
            session.exec(update(Connection).where(Connection.id == connection_id)
                         .values(refreshing_until=None))

    def _refresh(self, connection: Connection, tokens: TokenSet) -> TokenSet:
        provider = self._provider_for(connection.provider)
        try:
            if connection.auth_kind == "app_only":  # a consented tenant: mint a new one
                if provider.app_token is None:
                    raise AuthRefused(f"{connection.provider} mints no app-only tokens")
                fresh = provider.app_token(connection.account_ref)
            elif connection.auth_kind == "server_to_server":
                fresh = client_credentials(provider, {"grant_type": "account_credentials",
                                                      "account_id": connection.account_ref},
                                           self._clock())
            elif tokens.refresh_token:
                fresh = refresh(provider, tokens.refresh_token, self._clock())
            else:
                raise AuthRefused(f"{connection.provider} gave no refresh token")
        except AuthRefused as exc:
            self._mark_broken(connection.id, exc.message)
            raise ConnectionBroken(f"{exc.message}; reconnect {connection.provider}") from None
        # Rotation: keep the new refresh token (or the old one if the vendor sent none).
        fresh = TokenSet(fresh.access_token, fresh.refresh_token or tokens.refresh_token,
                         fresh.expires_at, fresh.scopes or tokens.scopes,
                         fresh.instance_url or tokens.instance_url, tokens.account_ref)
        with session_scope() as session:
            row = session.get(Connection, connection.id)
            if row.status in ENDED:  # disconnected while we refreshed: keep nothing
                raise ConnectionBroken(f"the {connection.provider} connection {connection.id} "
                                       f"was {row.status}")
            row.token_ciphertext = self._cipher.encrypt(fresh.to_secret())
            row.expires_at, row.scopes = fresh.expires_at, list(fresh.scopes)
            row.instance_url, row.updated_at = fresh.instance_url, utcnow()
            session.add(row)
        return fresh

    def _mark_broken(self, connection_id: int, reason: str) -> None:
        mark_broken(connection_id, reason)


def begin_connect(provider: OAuthProvider, *, org_id: int, redirect_uri: str, cipher) -> str:
    """Start a connect flow: the vendor URL the admin's browser goes to."""
    from core.oauth import start_authorization

    with session_scope() as session:
        return start_authorization(session, provider, org_id=org_id, redirect_uri=redirect_uri,
                                   cipher=cipher)


def finish_connect(provider: OAuthProvider, *, code: str | None, state: str, cipher,
                   end_others: Callable[[int, int], object] | None = None,
                   tenant: str | None = None) -> ConnectionInfo:
    """Complete a connect flow from the callback's code and state (an admin-consent flow:
    the consented `tenant` instead of a code); stores the connection.
    `end_others(org_id, new_connection_id)` ends the org's other connections to the vendor
    (revoking them there); without it they are marked replaced here."""
    from core.oauth import consume_state, exchange_code

    with session_scope() as session:
        consumed = consume_state(session, provider, state, cipher)
    if provider.flow == "admin_consent":
        tenant = consented_tenant(provider.name, consumed.org_id, tenant)
        tokens, auth_kind = provider.app_token(tenant), "app_only"
    else:
        if not code:
            from core.errors import InputError

            raise InputError("the callback carries no code: start the connection again")
        tokens, auth_kind = exchange_code(provider, code, consumed), "oauth"
    if not tokens.account_ref and provider.identify is not None:
        from dataclasses import replace

        tokens = replace(tokens, account_ref=provider.identify(tokens.access_token))
    return store_connection(provider.name, consumed.org_id, tokens, cipher, auth_kind,
                            end_others)


def store_connection(provider: str, org_id: int, tokens: TokenSet, cipher, auth_kind: str,
                     end_others: Callable[[int, int], object] | None = None
                     ) -> ConnectionInfo:
    """Save a new connection (from a consent, or made without one: a Google service
    account), end the org's others to the vendor, and run the vendor's follow-up."""
    with session_scope() as session:
        connection = save_connection(session, org_id=org_id, provider=provider,
                                     tokens=tokens, cipher=cipher, auth_kind=auth_kind,
                                     end_others=end_others is None)
        connection_id = connection.id
    if end_others is not None:
        end_others(org_id, connection_id)
    _after_connect(provider, connection_id)
    with session_scope() as session:
        return next(c for c in list_connections(session, org_id) if c.id == connection_id)


def _after_connect(provider: str, connection_id: int) -> None:
    """The vendor's own follow-up to a new connection (Teams: its push subscriptions). Its
    failure is logged and recorded by the vendor, never undoes the connection."""
    import logging

    from core.settings import get_settings
    from core.vendors import vendors

    found = vendors().get(provider)
    if found is None or found.on_connect is None:
        return
    try:
        found.load("on_connect")(connection_id, get_settings())
    except Exception:  # noqa: BLE001 - the connection stands; the poll retries the follow-up
        logging.getLogger("coachloop.connections").warning(
            "%s connection %s: follow-up after connecting failed", provider, connection_id,
            exc_info=True)


TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def consented_tenant(provider: str, org_id: int, tenant: str | None) -> str:
    """The tenant an admin-consent callback names, if this org may have it. The callback's
    `tenant` is not signed by the vendor, so a tenant another org here already connected is
    refused: consenting to the same app elsewhere must not hand one org another's calls."""
    from core.errors import InputError

    tenant = (tenant or "").strip().lower()
    if not TENANT_ID.match(tenant):
        raise InputError("the consent callback names no tenant id: start the connection again",
                         field="tenant")
    with session_scope() as session:
        taken = session.exec(select(Connection.id).where(
            Connection.provider == provider, Connection.account_ref == tenant,
            Connection.org_id != org_id, Connection.status.not_in(ENDED))).first()
    if taken is not None:
        raise InputError(f"tenant {tenant} is already connected to another organization here",
                         field="tenant")
    return tenant


def read_cursor(connection_id: int, stream: str) -> str | None:
    """How far the incremental sync of `stream` over this connection has got (None: never)."""
    from core.models import SyncCursor

    with session_scope() as session:
        row = session.exec(select(SyncCursor).where(SyncCursor.connection_id == connection_id,
                                                    SyncCursor.stream == stream)).first()
        return row.cursor if row else None


def save_cursor(connection_id: int, stream: str, cursor: str) -> None:
    """Remember progress; call it after each page so a crash resumes where it stopped."""
    from core.models import SyncCursor

    with session_scope() as session:
        row = session.exec(select(SyncCursor).where(SyncCursor.connection_id == connection_id,
                                                    SyncCursor.stream == stream)).first()
        row = row or SyncCursor(connection_id=connection_id, stream=stream, cursor=cursor)
        row.cursor, row.updated_at = cursor, utcnow()
        session.add(row)


def take_lease(connection_id: int, name: str, seconds: float) -> bool:
    """Claim a named, expiring lease on a connection (one CRM sync at a time, any process);
    False if someone else holds it."""
    from sqlalchemy.exc import IntegrityError

    from core.models import SyncCursor

    now = utcnow()
    stream, until = f"lease:{name}", (now + timedelta(seconds=seconds)).isoformat()
    with session_scope() as session:
        won = session.exec(update(SyncCursor).where(
            SyncCursor.connection_id == connection_id, SyncCursor.stream == stream,
            SyncCursor.cursor < now.isoformat()).values(cursor=until, updated_at=now))
        if won.rowcount == 1:
            return True
    try:
        with session_scope() as session:
            if session.exec(select(SyncCursor).where(SyncCursor.connection_id == connection_id,
                                                     SyncCursor.stream == stream)).first():
                return False
            session.add(SyncCursor(connection_id=connection_id, stream=stream, cursor=until))
        return True
    except IntegrityError:
        return False


def release_lease(connection_id: int, name: str) -> None:
    from core.models import SyncCursor

    with session_scope() as session:
        session.exec(update(SyncCursor).where(SyncCursor.connection_id == connection_id,
                                              SyncCursor.stream == f"lease:{name}")
                     .values(cursor=""))
