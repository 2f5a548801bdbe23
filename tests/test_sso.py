"""Single sign-on end to end: our API, Authlib and joserfc against the OpenID Connect
emulator over HTTPS (discovery, PKCE, nonce, JWKS with key rotation). Bad ID tokens (another
audience, expired, a key the issuer does not publish, a replayed nonce), an unverified
e-mail, a stranger, a callback from another browser: each refused, no session."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from core.oauth import tls_verify
from core.settings import get_settings
from sandbox.oidc import OidcSandbox

PUBLIC = "https://coachloop.example"


@pytest.fixture
def idp(database, tls, monkeypatch):
    from core.db import session_scope
    from core.ingest import ensure_org
    from core.models import User

    box = OidcSandbox()
    server = box.start(tls, [f"{PUBLIC}/auth/oidc/callback"])
    for key, value in {"OIDC__ISSUER": box.issuer, "OIDC__CLIENT_ID": box.client_id,
                       "OIDC__CLIENT_SECRET": box.client_secret, "PUBLIC_URL": PUBLIC,
                       "CA_BUNDLE": str(tls.ca_path)}.items():
        monkeypatch.setenv(f"COACHLOOP_{key}", value)
    get_settings.cache_clear()
    from core import sso

    sso._discovered.clear()
    sso._key_sets.clear()
    with session_scope() as session:
        org = ensure_org(session, "Acme", ["acme.example"])
        session.add(User(org_id=org.id, name="Maya Chen", email="maya@acme.example",
                         role="manager"))
    box.add_person("maya@acme.example", "Maya Chen")
    box.sign_in_as = "maya@acme.example"
    yield box, tls
    server.stop()


def sign_in(box, tls, client=None):
    """Start at our /auth/oidc/login, let the issuer answer, come back to our callback."""
    from api import create_app

    client = client or TestClient(create_app(), raise_server_exceptions=False,
                                  base_url=PUBLIC)
    start = client.get("/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    at_idp = httpx.get(start.headers["location"], verify=tls_verify(str(tls.ca_path)))
    back = urlparse(at_idp.headers["location"])
    return client, client.get(f"{back.path}?{back.query}"), start


def test_sign_in_with_the_identity_provider(idp):
    box, tls = idp
    client, done, start = sign_in(box, tls)
    assert done.status_code == 200, done.text
    assert done.json()["email"] == "maya@acme.example" and done.json()["via"] == "oidc"
    client.headers["X-CSRF-Token"] = done.json()["csrf_token"]
    assert client.get("/auth/me").json()["role"] == "manager"
    asked = parse_qs(urlparse(start.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["nonce"] and asked["state"]
    assert "openid" in asked["scope"][0].split()
    # The issuer rotates its signing key: the next sign-in fetches the new key set.
    box.rotate_keys()
    box.drop_old_keys()
    _, again, _ = sign_in(box, tls)
    assert again.status_code == 200, again.text
    assert box.requests["GET /jwks"] == 2


@pytest.mark.parametrize("tamper, reason", [
    ({"audience": "someone-else"}, "aud"),
    ({"expired": True}, "exp"),
    ({"foreign_key": True}, "signature does not verify"),
    ({"replay_nonce": True}, "nonce"),
])
def test_bad_id_tokens_are_refused(idp, tamper, reason):
    box, tls = idp
    if tamper.get("replay_nonce"):
        assert sign_in(box, tls)[1].status_code == 200  # an earlier sign-in's nonce
    box.tamper_next(**tamper)
    client, done, _ = sign_in(box, tls)
    assert done.status_code == 401, done.text
    assert reason in done.json()["error"]["message"]
    assert "coachloop_session" not in done.headers.get("set-cookie", "")
    assert client.get("/auth/me").status_code == 401


def test_unverified_emails_strangers_and_other_browsers_are_refused(idp):
    from api import create_app

    box, tls = idp
    box.add_person("maya@acme.example", "Maya Chen", verified=False)
    assert "not verified" in sign_in(box, tls)[1].json()["error"]["message"]
    box.add_person("eve@evil.example", "Eve")
    box.sign_in_as = "eve@evil.example"
    assert "not in any team" in sign_in(box, tls)[1].json()["error"]["message"]
    # Login CSRF: a callback URL carried to another browser (without our cookie) fails.
    box.sign_in_as = "maya@acme.example"
    box.add_person("maya@acme.example", "Maya Chen")
    client = TestClient(create_app(), raise_server_exceptions=False, base_url=PUBLIC)
    start = client.get("/auth/oidc/login", follow_redirects=False)
    at_idp = httpx.get(start.headers["location"], verify=tls_verify(str(tls.ca_path)))
    back = urlparse(at_idp.headers["location"])
    victim = TestClient(create_app(), raise_server_exceptions=False, base_url=PUBLIC)
    refused = victim.get(f"{back.path}?{back.query}")
    assert refused.status_code == 401 and "not started in this browser" in refused.text
    # And the same callback twice: the second is refused.
    assert client.get(f"{back.path}?{back.query}").status_code == 200
    replay = client.get(f"{back.path}?{back.query}")
    assert replay.status_code == 401


def test_without_sso_configured_the_routes_say_so(sqlite_database):
    from api import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    answer = client.get("/auth/oidc/login", follow_redirects=False)
    assert answer.status_code == 404 and "POST /auth/login" in answer.json()["error"]["message"]
