"""The OAuth contract, run against every vendor that connects with OAuth, through its
emulator: consent → tokens stored encrypted; an expired token refreshed (or, app-only,
minted anew) once (rotation honoured where the descriptor says the vendor rotates);
revocation ends the grant at the vendor, or where it offers none the admin is told how; a
grant the vendor ended marks the connection broken, with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import update

from connectors.oauth_apps import (
    connect_following_consent,
    end_connections,
    oauth_provider,
)
from core.connections import ConnectionBroken, TokenVault, stored_tokens
from core.crypto import cipher_from_settings
from core.db import session_scope
from core.models import Connection, utcnow
from core.oauth import AuthRefused, refresh
from core.settings import get_settings
from core.vendors import vendor as vendor_of
from core.vendors import with_a
from tests.contracts.kits import OAUTH

VENDORS = [vendor.name for vendor in with_a("oauth")]


def expire(connection_id: int) -> None:
    with session_scope() as session:
        session.exec(update(Connection).where(Connection.id == connection_id)
                     .values(expires_at=utcnow() - timedelta(minutes=1)))


def vault() -> TokenVault:
    settings = get_settings()
    return TokenVault(lambda name: oauth_provider(name, settings), cipher_from_settings(settings))


@pytest.mark.parametrize("vendor", VENDORS)
def test_consent_refresh_and_revocation(boxes, vendor):
    running, org_id = boxes
    settings = get_settings()
    info = connect_following_consent(vendor, org_id, settings)
    assert info.status == "active"
    with session_scope() as session:
        stored = session.get(Connection, info.id).token_ciphertext
    first = stored_tokens(info.id, cipher_from_settings(settings))
    assert first.access_token not in stored
    descriptor = vendor_of(vendor).oauth
    app_only = descriptor.flow == "admin_consent"  # the app mints its own tokens
    assert (first.refresh_token is None) == app_only
    if first.refresh_token:
        assert first.refresh_token not in stored

    expire(info.id)
    fresh = vault().access_token(info.id)
    assert fresh.access_token != first.access_token
    assert vault().access_token(info.id).access_token == fresh.access_token  # once
    spec = oauth_provider(vendor, settings)
    if descriptor.refresh_rotates:
        with pytest.raises(AuthRefused):  # the vendor rotated it away
            refresh(spec, first.refresh_token)

    latest = stored_tokens(info.id, cipher_from_settings(settings))
    [ended] = end_connections(org_id, vendor, settings)
    assert stored_tokens(info.id, cipher_from_settings(settings)) is None  # gone here too
    if descriptor.revoke_url is None:  # no revocation call: the note says what to do there
        assert not ended.revoked and descriptor.revoke_hint in ended.note
        return
    assert ended.revoked, ended.note
    with pytest.raises(AuthRefused):  # and the grant is over at the vendor
        refresh(spec, latest.refresh_token)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_grant_the_vendor_ended_marks_the_connection_broken(boxes, vendor):
    running, org_id = boxes
    info = connect_following_consent(vendor, org_id, get_settings())
    OAUTH[vendor].revoke_everything(running)
    expire(info.id)
    with pytest.raises(ConnectionBroken, match="reconnect"):
        vault().access_token(info.id)
    with session_scope() as session:
        row = session.get(Connection, info.id)
        assert row.status == "broken" and row.last_error
