"""Managing connections from the CLI against the Zoom and Salesforce sandboxes over HTTPS:
live checks, replace on reconnect, disconnect with revocation at the vendor, and the demo's
own connections surviving a second run with new sandboxes."""

from __future__ import annotations

import ssl

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from cli import app
from core.settings import get_settings
from tests.conftest import bearer

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})
    assert "Traceback" not in result.output
    return result


def point_at(boxes, monkeypatch) -> None:
    for key, value in boxes.settings().items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture
def boxes(tmp_path, monkeypatch):
    """Both sandboxes (unseeded: fast), coachloop pointed at them, an org."""
    from sandbox.run import start_sandboxes

    running = start_sandboxes(tmp_path / "sandbox", demo=False)
    point_at(running, monkeypatch)
    assert invoke("init", "--org", "My Team", "--domain", "acme.example").exit_code == 0
    yield running
    running.stop()


def rows(provider: str):
    from core.db import session_scope
    from core.models import Connection

    with session_scope() as session:
        return session.exec(select(Connection).where(Connection.provider == provider)
                            .order_by(Connection.id)).all()


def tokens_of(connection_id: int):
    from core.connections import stored_tokens
    from core.crypto import cipher_from_settings

    return stored_tokens(connection_id, cipher_from_settings(get_settings()))


def health(provider: str):
    from cli import _org_id
    from connectors.oauth_apps import check_connections

    return [h for h in check_connections(_org_id(), get_settings())
            if h.provider == provider and h.status not in ("disconnected", "replaced")]


def test_connect_check_replace_and_disconnect(boxes):
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(boxes.tls.ca_path)))
    zoom_url, sf_url = boxes.zoom_server.url, boxes.salesforce_server.url
    outputs = []
    for provider in ("zoom", "salesforce"):
        done = invoke("connect", provider, "--follow")
        assert done.exit_code == 0, done.output
    listed = invoke("connections")
    outputs.append(listed.output)
    assert listed.exit_code == 0 and listed.output.count("active") == 2
    (zoom,), (sf,) = health("zoom"), health("salesforce")
    assert zoom.status == "active" and zoom.note == boxes.zoom.owner_email  # GET /users/me
    assert sf.status == "active" and "API calls left today" in sf.note  # GET …/limits
    assert "write-back" not in sf.note
    # Past the quota governor's lines, the admin sees how write-back is paced.
    boxes.salesforce.set_api_usage(int(boxes.salesforce.daily_limit * 0.6))
    assert "(60% used); write-back slowed to once every 30 min" in health("salesforce")[0].note
    boxes.salesforce.set_api_usage(int(boxes.salesforce.daily_limit * 0.85))
    assert "write-back paused until tomorrow" in health("salesforce")[0].note
    boxes.salesforce.set_api_usage(0)
    assert boxes.zoom.requests["GET /v2/users/{userId}"] >= 1

    # Reconnecting asks first; "no" changes nothing, not even at Zoom.
    old = tokens_of(rows("zoom")[0].id)
    kept = invoke("connect", "zoom", "--follow", input="n\n")
    assert kept.exit_code == 1 and "already connected" in kept.output
    assert boxes.zoom.requests["POST /oauth/revoke"] == 0
    # "yes" revokes the old grant at Zoom first, then connects: one active connection.
    replaced = invoke("connect", "zoom", "--follow", input="y\n")
    outputs.append(replaced.output)
    assert replaced.exit_code == 0, replaced.output
    assert "revoked at Zoom" in replaced.output
    assert boxes.zoom.requests["POST /oauth/revoke"] == 1
    gone = http.get(f"{zoom_url}/v2/users/me",
                    headers={"Authorization": f"Bearer {old.access_token}"})
    assert gone.status_code == 401 and gone.json()["code"] == 124
    # The replaced connection keeps its row for the audit; the new grant has its own.
    assert [r.status for r in rows("zoom")] == ["replaced", "active"]
    assert health("zoom")[0].status == "active"  # the new grant survived the revocation

    # Disconnect revokes at Salesforce (the refresh token takes its access tokens along),
    # deletes our tokens, keeps the row.
    sf_id = rows("salesforce")[0].id
    old = tokens_of(sf_id)
    off = invoke("disconnect", "salesforce", "--yes")
    outputs.append(off.output)
    assert off.exit_code == 0 and "revoked at Salesforce" in off.output, off.output
    (row,) = rows("salesforce")
    assert row.status == "disconnected" and row.token_ciphertext is None
    refused = http.post(f"{sf_url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": old.refresh_token,
        "client_id": boxes.settings()["COACHLOOP_SALESFORCE__CLIENT_ID"],
        "client_secret": boxes.settings()["COACHLOOP_SALESFORCE__CLIENT_SECRET"]})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    from core.connections import active_connection_id
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="disconnected: connect again"):
        active_connection_id(None, "salesforce")
    assert invoke("disconnect", "salesforce", "--yes").output.startswith("no salesforce")

    # Salesforce answers 5xx: up but unusable right now, which is not a broken connection.
    assert invoke("connect", "salesforce", "--follow").exit_code == 0  # nothing to replace
    boxes.salesforce.set_faults(error_rate=1.0, seed=1)
    (busy,) = health("salesforce")
    assert busy.status == "unreachable" and "cannot be reached right now (Salesforce is " \
        "unavailable (HTTP 5" in busy.problem
    boxes.salesforce.set_faults(error_rate=0.0)
    assert rows("salesforce")[-1].status == "active"
    # Salesforce revokes every token: the live check sees the refusal and marks it broken.
    boxes.salesforce.revoke_all_tokens()
    checked = invoke("connections")
    outputs.append(checked.output)
    assert "broken: salesforce refused the grant: expired access/refresh token" in \
        checked.output and "coachloop connect salesforce" in checked.output
    assert rows("salesforce")[-1].status == "broken"
    # Revocation refused at the vendor: our tokens go anyway, and we say so.
    off = invoke("disconnect", "salesforce", "--yes")
    assert "not revoked at Salesforce: salesforce refused to revoke the token: this token " \
           "type is not supported" in off.output
    assert "Salesforce did not confirm the revocation" in off.output
    assert rows("salesforce")[-1].token_ciphertext is None

    # Zoom stops answering: its connection is unreachable, said plainly, no traceback.
    boxes.zoom_server.stop()
    down = invoke("connections")
    outputs.append(down.output)
    assert down.exit_code == 0
    assert (f"unreachable: the Zoom connection {rows('zoom')[-1].id} ({zoom_url}/v2) cannot be "
            "reached") in down.output
    assert "check the instance URL or run `coachloop connect zoom` again" in down.output
    old = tokens_of(rows("zoom")[-1].id)
    off = invoke("disconnect", "zoom", "--yes")
    assert f"not revoked at Zoom: zoom ({zoom_url}) cannot be reached" in off.output
    assert rows("zoom")[-1].status == "disconnected" and rows("zoom")[-1].token_ciphertext is None
    for text in outputs + [off.output]:  # no secret ever reaches the terminal
        assert old.access_token not in text and old.refresh_token not in text
        assert boxes.settings()["COACHLOOP_ZOOM__CLIENT_SECRET"] not in text
    http.close()


def test_connecting_through_the_api_revokes_the_other_accounts_grant(boxes, monkeypatch):
    """An admin connects a different Salesforce org through the API: the old org's grant is
    revoked at Salesforce, not only forgotten here, and its row stays for the audit."""
    from fastapi.testclient import TestClient

    from api import create_app
    from core.db import session_scope
    from core.models import Connection

    assert invoke("connect", "salesforce", "--follow").exit_code == 0
    (old_row,) = rows("salesforce")
    old = tokens_of(old_row.id)
    with session_scope() as session:  # the earlier grant belongs to another Salesforce org
        session.get(Connection, old_row.id).account_ref = "https://login.example/id/00Dother"
    monkeypatch.setenv("COACHLOOP_PUBLIC_URL", "https://coachloop.example")
    get_settings.cache_clear()
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(boxes.tls.ca_path)))
    client = TestClient(create_app(), raise_server_exceptions=False, headers=bearer("admin"))
    start = client.get("/connect/salesforce", follow_redirects=False)
    consent = http.get(start.headers["location"])
    back = httpx.URL(consent.headers["location"])
    done = client.get(f"{back.path}?{back.query.decode()}")
    assert done.status_code == 200, done.text
    body = done.json()
    assert [(e["id"], e["revoked"]) for e in body["replaced"]] == [(old_row.id, True)]
    assert boxes.salesforce.requests["POST /services/oauth2/revoke"] == 1
    assert [r.status for r in rows("salesforce")] == ["replaced", "active"]
    refused = http.post(f"{boxes.salesforce_server.url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": old.refresh_token,
        "client_id": boxes.settings()["COACHLOOP_SALESFORCE__CLIENT_ID"],
        "client_secret": boxes.settings()["COACHLOOP_SALESFORCE__CLIENT_SECRET"]})
    assert refused.status_code == 400 and old.refresh_token not in done.text
    # Reconnecting the same org through the API renews its live row: nothing revoked.
    start = client.get("/connect/salesforce", follow_redirects=False)
    back = httpx.URL(http.get(start.headers["location"]).headers["location"])
    again = client.get(f"{back.path}?{back.query.decode()}").json()
    assert again["replaced"] == [] and again["connection"]["id"] == body["connection"]["id"]
    assert boxes.salesforce.requests["POST /services/oauth2/revoke"] == 1
    http.close()


def test_unknown_provider_is_one_clear_line(boxes):
    result = invoke("disconnect", "myspace", "--yes")
    assert result.exit_code == 1 and "no OAuth provider 'myspace'" in result.output


def test_demo_connections_twice_with_fresh_sandboxes(tmp_path, monkeypatch):
    """What a second `coachloop demo` does: new sandboxes on new ports, the earlier run's
    connections pointing at stopped ones. Every call must reach this run's sandboxes."""
    from cli import _demo_connect
    from connectors.salesforce import writer_for_org
    from connectors.zoom.source import ZoomSource
    from core.db import migrate, session_scope
    from core.ingest import ensure_org
    from sandbox.run import start_sandboxes

    migrate()
    with session_scope() as session:
        org_id = ensure_org(session, "Demo", ["acme.example"]).id
    for run in (1, 2):
        boxes = start_sandboxes(tmp_path / f"sandbox-{run}", demo=False)
        try:
            point_at(boxes, monkeypatch)
            replaced = _demo_connect(org_id, get_settings(), ["zoom"], "salesforce")
            assert replaced == (set() if run == 1 else {"zoom", "salesforce"})
            writer = writer_for_org(org_id, get_settings())
            try:
                writer.check()
            finally:
                writer.close()
            source = ZoomSource.for_org(org_id)
            try:
                assert source.api.me()["email"] == boxes.zoom.owner_email
            finally:
                source.close()
            assert boxes.salesforce.requests["GET /limits"] == 1
        finally:
            boxes.stop()
    for provider in ("zoom", "salesforce"):
        assert [r.status for r in rows(provider)].count("active") == 1
    first, second = rows("salesforce")  # its identity URL names the sandbox: a new account
    assert first.status == "replaced" and first.token_ciphertext is None
    # Revoked best-effort at this run's sandbox, which never issued that token: it says no.
    assert first.last_error.startswith("not revoked at Salesforce")
    # `coachloop demo --crm hubspot` next: an org writes to one CRM, so Salesforce's ends.
    boxes = start_sandboxes(tmp_path / "sandbox-3", demo=False)
    try:
        point_at(boxes, monkeypatch)
        assert _demo_connect(org_id, get_settings(), ["zoom"], "hubspot") == {"zoom",
                                                                             "salesforce"}
    finally:
        boxes.stop()
    assert [r.status for r in rows("salesforce")].count("active") == 0
    assert [r.status for r in rows("hubspot")] == ["active"]


def test_connecting_hubspot_offers_its_setup_and_connections_say_where_scores_go(boxes):
    declined = invoke("connect", "hubspot", "--follow", input="n\n")
    assert declined.exit_code == 0, declined.output
    assert "to create" in declined.output and "coachloop_meeting_key" in declined.output
    assert boxes.hubspot.get_property("calls", "coachloop_meeting_key") is None
    (hub,) = health("hubspot")
    assert hub.status == "active" and "run `coachloop crm setup`" in hub.note

    applied = invoke("crm", "setup", "--apply", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "created" in applied.output and "skill scores: custom object" in applied.output
    assert boxes.hubspot.get_property("calls", "coachloop_meeting_key")["hasUniqueValue"]
    (hub,) = health("hubspot")
    assert "skill scores: custom object" in hub.note
    again = invoke("crm", "setup")
    assert again.exit_code == 0 and "has everything write-back needs" in again.output
