"""OAuth connect and the token vault, against the Zoom sandbox over HTTPS (real httpx)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from core.connections import ConnectionBroken, TokenVault, list_connections, save_connection
from core.crypto import TokenCipher, generate_key
from core.db import session_scope
from core.errors import InputError
from core.ingest import ensure_org
from core.models import Connection
from core.oauth import (OAuthProvider, client_credentials, consume_state, exchange_code,
                        start_authorization, tls_verify)
from sandbox.tls import local_tls
from sandbox.zoom import ZoomSandbox

REDIRECT = "https://coachloop.example/connect/zoom/callback"


class Clock:
    """One clock for the vendor and for us, moved by the test."""

    def __init__(self):
        self.now = datetime.now(timezone.utc).timestamp()

    def epoch(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)


@pytest.fixture
def zoom(tmp_path_factory):
    clock = Clock()
    tls = local_tls(tmp_path_factory.mktemp("tls"))
    sandbox = ZoomSandbox(clock=clock.epoch)
    running = sandbox.start(tls)
    provider = OAuthProvider(name="zoom", authorize_url=f"{running.url}/oauth/authorize",
                             token_url=f"{running.url}/oauth/token",
                             client_id=sandbox.client_id, client_secret=sandbox.client_secret,
                             client_auth="basic", verify=str(tls.ca_path))
    yield sandbox, provider, clock
    running.stop()


@pytest.fixture
def cipher():
    return TokenCipher([generate_key()])


def connect(provider: OAuthProvider, cipher, clock: Clock) -> int:
    """The whole connect flow: our authorize URL → vendor consent → callback → Connection."""
    with session_scope() as session:
        org_id = ensure_org(session, "Acme", ["acme.example"]).id
        url = start_authorization(session, provider, org_id=org_id, redirect_uri=REDIRECT,
                                  cipher=cipher)
    assert "code_challenge=" in url and "code_challenge_method=S256" in url
    consent = httpx.get(url, verify=tls_verify(provider.verify))
    assert consent.status_code == 302
    callback = parse_qs(urlparse(consent.headers["location"]).query)
    with session_scope() as session:
        consumed = consume_state(session, provider, callback["state"][0], cipher)
    tokens = exchange_code(provider, callback["code"][0], consumed, clock.utc())
    with session_scope() as session:
        connection = save_connection(session, org_id=consumed.org_id, provider="zoom",
                                     tokens=tokens, cipher=cipher)
        connection_id = connection.id
    with pytest.raises(InputError, match="already used"):
        with session_scope() as session:
            consume_state(session, provider, callback["state"][0], cipher)
    return connection_id


def test_connect_flow_stores_tokens_encrypted(sqlite_database, zoom, cipher):
    sandbox, provider, clock = zoom
    connection_id = connect(provider, cipher, clock)
    vault = TokenVault(lambda name: provider, cipher)
    tokens = vault.access_token(connection_id)
    with session_scope() as session:
        row = session.get(Connection, connection_id)
        assert tokens.access_token not in row.token_ciphertext
        assert tokens.refresh_token not in row.token_ciphertext
    assert "access_token" not in repr(tokens) and tokens.access_token not in repr(tokens)
    me = httpx.get(f"{sandbox.base_url}/v2/users/me/recordings",
                   headers={"Authorization": f"Bearer {tokens.access_token}"},
                   verify=tls_verify(provider.verify))
    assert me.status_code == 200


def test_forged_or_foreign_state_is_refused(sqlite_database, zoom, cipher):
    _, provider, _ = zoom
    with pytest.raises(InputError, match="unknown OAuth state"):
        with session_scope() as session:
            consume_state(session, provider, "forged-state", cipher)


def test_refresh_ahead_of_expiry_rotates_and_stores_the_new_refresh_token(
        sqlite_database, zoom, cipher):
    sandbox, provider, clock = zoom
    connection_id = connect(provider, cipher, clock)
    vault = TokenVault(lambda name: provider, cipher, clock=clock.utc)
    first = vault.access_token(connection_id)
    assert vault.access_token(connection_id).access_token == first.access_token, "still fresh"
    clock.now += 3600 - 60  # within the refresh margin of the 1 h expiry
    refreshes = sandbox.requests["POST /oauth/token"]
    second = vault.access_token(connection_id)
    assert sandbox.requests["POST /oauth/token"] == refreshes + 1
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    # The rotated-away refresh token is dead at the vendor; the stored one works.
    old = httpx.post(provider.token_url, data={"grant_type": "refresh_token",
                                               "refresh_token": first.refresh_token},
                     auth=(provider.client_id, provider.client_secret), verify=tls_verify(provider.verify))
    assert old.status_code == 400
    clock.now += 3600 - 60
    assert vault.access_token(connection_id).access_token not in (first.access_token,
                                                                  second.access_token)


def test_two_workers_expiring_together_refresh_once(sqlite_database, zoom, cipher):
    sandbox, provider, clock = zoom
    connection_id = connect(provider, cipher, clock)
    clock.now += 3600 - 60
    before = sandbox.requests["POST /oauth/token"]
    results, errors = [], []

    def worker():
        try:
            results.append(TokenVault(lambda name: provider, cipher,
                                      clock=clock.utc).access_token(connection_id).access_token)
        except Exception as exc:  # collected: a failure shows up in the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sandbox.requests["POST /oauth/token"] == before + 1, "one refresh for all four"
    assert len(set(results)) == 1


def test_refused_refresh_marks_the_connection_broken_with_a_reason(sqlite_database, zoom, cipher):
    sandbox, provider, clock = zoom
    connection_id = connect(provider, cipher, clock)
    sandbox.revoke_tokens()
    clock.now += 3600
    vault = TokenVault(lambda name: provider, cipher, clock=clock.utc)
    with pytest.raises(ConnectionBroken, match="reconnect zoom"):
        vault.access_token(connection_id)
    calls = sandbox.requests["POST /oauth/token"]
    with pytest.raises(ConnectionBroken, match="broken"):
        vault.access_token(connection_id)
    assert sandbox.requests["POST /oauth/token"] == calls, "no retry storm once broken"
    with session_scope() as session:
        [info] = list_connections(session, session.exec(select(Connection.org_id)).first())
    assert info.status == "broken" and "refused" in info.last_error


def test_server_to_server_tokens_are_minted_anew(sqlite_database, zoom, cipher):
    sandbox, provider, clock = zoom
    tokens = client_credentials(provider, {"grant_type": "account_credentials",
                                           "account_id": sandbox.account_id}, clock.utc())
    assert tokens.refresh_token is None and tokens.expires_at is not None
    with session_scope() as session:
        org_id = ensure_org(session, "Acme", ["acme.example"]).id
        tokens = type(tokens)(tokens.access_token, None, tokens.expires_at, tokens.scopes, None,
                              sandbox.account_id)
        connection_id = save_connection(session, org_id=org_id, provider="zoom", tokens=tokens,
                                        cipher=cipher, auth_kind="server_to_server").id
    clock.now += 3600
    fresh = TokenVault(lambda name: provider, cipher, clock=clock.utc).access_token(connection_id)
    assert fresh.access_token != tokens.access_token
