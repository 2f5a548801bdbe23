"""Connecting Zoom through the API and the CLI, against the Zoom sandbox over HTTPS."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from core.oauth import tls_verify
from core.settings import get_settings
from sandbox.tls import local_tls
from sandbox.zoom import ZoomSandbox
from tests.conftest import bearer


@pytest.fixture
def zoom_configured(sqlite_database, tmp_path_factory, monkeypatch):
    tls = local_tls(tmp_path_factory.mktemp("tls"))
    sandbox = ZoomSandbox()
    running = sandbox.start(tls)
    for key, value in {"ZOOM__CLIENT_ID": sandbox.client_id,
                       "ZOOM__CLIENT_SECRET": sandbox.client_secret,
                       "ZOOM__OAUTH_BASE": running.url, "ZOOM__API_BASE": f"{running.url}/v2",
                       "CA_BUNDLE": str(tls.ca_path),
                       "PUBLIC_URL": "https://coachloop.example"}.items():
        monkeypatch.setenv(f"COACHLOOP_{key}", value)
    get_settings.cache_clear()
    from core.db import session_scope
    from core.ingest import ensure_org

    with session_scope() as session:
        ensure_org(session, "Acme", ["acme.example"])
    yield sandbox, tls
    running.stop()


def test_connect_zoom_through_the_api(zoom_configured):
    sandbox, tls = zoom_configured
    from api import create_app

    # Re-binding the org's Zoom account is an admin's act: anonymous and read-only are refused.
    anonymous = TestClient(create_app(), raise_server_exceptions=False)
    assert anonymous.get("/connect/zoom", follow_redirects=False).status_code == 401
    reader = anonymous.get("/connect/zoom", follow_redirects=False, headers=bearer("read"))
    assert reader.status_code == 403
    client = TestClient(create_app(), raise_server_exceptions=False, headers=bearer("admin"))
    start = client.get("/connect/zoom", follow_redirects=False)
    assert start.status_code == 302
    consent = httpx.get(start.headers["location"], verify=tls_verify(str(tls.ca_path)))
    back = urlparse(consent.headers["location"])
    assert back.netloc == "coachloop.example" and back.path == "/connect/zoom/callback"
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 200, done.text
    assert done.json()["connection"]["status"] == "active"
    assert "access_token" not in done.text
    replay = client.get(f"{back.path}?{back.query}")
    assert replay.status_code == 422 and "already used" in replay.json()["error"]["message"]
    listed = client.get("/connections").json()
    assert [c["provider"] for c in listed] == ["zoom"]
    # Zoom's token response names no account: GET /users/me does, so webhooks (which name
    # the account) find this connection even beside others.
    assert listed[0]["account_ref"] == sandbox.account_id
    # A bogus code with a valid state: the vendor refuses it, and so do we, with a 4xx.
    again = urlparse(httpx.get(client.get("/connect/zoom", follow_redirects=False)
                               .headers["location"], verify=tls_verify(str(tls.ca_path)))
                     .headers["location"])
    state = dict(p.split("=", 1) for p in again.query.split("&"))["state"]
    bogus = client.get(f"{again.path}?code=not-a-real-code&state={state}")
    assert bogus.status_code == 422 and "start the connection again" in bogus.text
    denied = client.get("/connect/zoom/callback?error=access_denied&error_description=User+denied")
    assert denied.status_code == 422 and "User denied" in denied.json()["error"]["message"]


def test_unconfigured_and_unknown_providers_say_what_is_missing(sqlite_database, monkeypatch):
    from core.db import session_scope
    from core.ingest import ensure_org

    with session_scope() as session:
        ensure_org(session, "Acme", ["acme.example"])
    from api import create_app

    client = TestClient(create_app(), raise_server_exceptions=False, headers=bearer("admin"))
    salesforce = client.get("/connect/salesforce", follow_redirects=False)
    assert salesforce.status_code == 503
    assert "COACHLOOP_SALESFORCE__CLIENT_ID" in salesforce.json()["error"]["message"]
    assert client.get("/connect/myspace", follow_redirects=False).status_code == 404


def test_connect_zoom_from_the_cli(zoom_configured):
    from cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["connect", "zoom", "--follow"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "connected zoom" in result.output
    listed = runner.invoke(app, ["connections"], env={"COLUMNS": "200"})
    assert "zoom" in listed.output and "active" in listed.output
