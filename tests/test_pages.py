"""The web app's pages through the API app: sign-in (with its login-CSRF token), role-scoped
pages, HTML errors, and no asset from outside the app."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select


@pytest.fixture
def people(sqlite_database, tmp_path):
    """The scored demo org with passwords for its manager and a rep."""
    from datetime import date

    from core.auth import set_password
    from core.db import session_scope
    from core.models import User
    from tests.conftest import scored_demo_org

    scored_demo_org(tmp_path / "calls", date(2026, 11, 20))
    with session_scope() as session:
        for email in ("priya.nair@acme-analytics.example", "maya.chen@acme-analytics.example",
                      "jordan.brooks@acme-analytics.example"):
            user = session.exec(select(User).where(User.email == email)).one()
            set_password(user, "correct horse battery")
            session.add(user)
    return {"manager": "priya.nair@acme-analytics.example",
            "rep": "maya.chen@acme-analytics.example",
            "other_rep": "jordan.brooks@acme-analytics.example"}


def browser() -> TestClient:
    from api import create_app

    return TestClient(create_app(), base_url="https://testserver", follow_redirects=False)


def sign_in(client: TestClient, email: str, password: str = "correct horse battery",
            next_path: str = "/app"):
    form = client.get(f"/app/sign-in?next={next_path}")
    token = re.search(r'name="form_token" value="([^"]+)"', form.text).group(1)
    return client.post("/app/sign-in", data={"email": email, "password": password,
                                             "form_token": token, "next": next_path})


def test_pages_need_a_sign_in_and_send_you_back_after_it(people):
    client = browser()
    assert client.get("/").headers["location"] == "/app"
    away = client.get("/app/team?window=60")
    assert away.status_code == 303
    assert away.headers["location"] == "/app/sign-in?next=/app/team%3Fwindow%3D60"
    done = sign_in(client, people["manager"], next_path="/app/team?window=60")
    assert done.status_code == 303 and done.headers["location"] == "/app/team?window=60"
    page = client.get("/app/team?window=60")
    assert page.status_code == 200 and "Team skills" in page.text and "60-day window" in page.text
    for name in ("Maya Chen", "Jordan Brooks", "Tyler Reed"):
        assert name in page.text


def test_a_wrong_password_a_forged_form_and_an_open_redirect_are_refused(people):
    client = browser()
    wrong = sign_in(client, people["rep"], password="nope")
    assert wrong.status_code == 401 and "session" not in wrong.headers.get("set-cookie", "")
    assert 'role="alert"' in wrong.text
    forged = client.post("/app/sign-in", data={"email": people["rep"], "form_token": "x",
                                               "password": "correct horse battery"})
    assert forged.status_code == 400 and "expired" in forged.text
    elsewhere = sign_in(client, people["rep"], next_path="https://evil.example/")
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/app"


def test_a_rep_sees_their_own_page_not_the_team_or_a_colleague(people):
    client = browser()
    sign_in(client, people["rep"])
    start = client.get("/app")
    assert start.headers["location"] == f"/app/reps/{people['rep']}"
    mine = client.get(start.headers["location"])
    assert mine.status_code == 200 and "Maya Chen" in mine.text and "Skills" in mine.text
    assert "This week's agenda" in mine.text
    team = client.get("/app/team")
    assert team.status_code == 403 and "Not allowed" in team.text and "<html" in team.text
    colleague = client.get(f"/app/reps/{people['other_rep']}")
    assert colleague.status_code == 404 and "Not found" in colleague.text


def test_every_asset_is_served_by_the_app(people):
    client = browser()
    sign_in(client, people["manager"])
    for path in ("/app/sign-in", "/app/team", f"/app/reps/{people['rep']}"):
        html = client.get(path).text
        for url in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert url.startswith("/"), f"{path} loads {url} from outside the app"
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/nope.js").status_code == 404


def test_a_call_page_links_each_quote_into_the_transcript(people):
    from core.db import session_scope
    from core.models import CallScore, Meeting, User

    with session_scope() as session:
        maya = session.exec(select(User).where(User.email == people["rep"])).one()
        mine = session.exec(select(Meeting.id).join(CallScore, CallScore.meeting_id == Meeting.id)
                            .where(CallScore.rep_id == maya.id)).first()
        jordan = session.exec(select(User).where(User.email == people["other_rep"])).one()
        theirs = session.exec(select(Meeting.id).join(
            CallScore, CallScore.meeting_id == Meeting.id)
            .where(CallScore.rep_id == jordan.id)).first()
    client = browser()
    sign_in(client, people["rep"])
    page = client.get(f"/app/meetings/{mine}?t=30")
    assert page.status_code == 200 and "Transcript" in page.text and "MEDDIC" in page.text
    anchors = set(re.findall(r'href="#(s\d+)"', page.text))
    ids = set(re.findall(r'<p id="(s\d+)"', page.text))
    assert anchors and anchors <= ids  # every quote's link lands on a transcript line
    assert 'class="quoted"' in page.text
    assert client.get(f"/app/meetings/{theirs}").status_code == 404  # not hers to see
    # The agenda's moments link to call pages of this app.
    rep_page = client.get(f"/app/reps/{people['rep']}").text
    for link in re.findall(r'href="(/app/meetings/\d+\?t=\d+)"', rep_page):
        assert client.get(link).status_code == 200


def test_an_admin_connects_zoom_from_the_connections_page(sqlite_database, tmp_path,
                                                          monkeypatch):
    """The Connections page lists every OAuth vendor; its Connect link runs the OAuth flow
    through the sandbox, and the browser comes back to the page with the connection live."""
    import json
    import ssl
    from urllib.parse import urlsplit

    import httpx
    from cryptography.fernet import Fernet

    from core.auth import set_password
    from core.db import session_scope
    from core.ingest import ensure_org
    from core.models import User
    from core.settings import get_settings
    from sandbox.run import start_sandboxes

    boxes = start_sandboxes(tmp_path / "sandbox", demo=False)
    try:
        env = {**boxes.settings(), "COACHLOOP_PUBLIC_URL": "https://testserver",
               "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        with session_scope() as session:
            org = ensure_org(session, "Acme", ["acme.example"])
            admin = User(org_id=org.id, email="admin@acme.example", name="Ada Admin",
                         role="admin")
            set_password(admin, "correct horse battery")
            session.add(admin)
        client = browser()
        sign_in(client, "admin@acme.example")
        page = client.get("/app/connections")
        assert page.status_code == 200
        for label in ("Zoom", "Salesforce", "HubSpot"):
            assert f'href="/connect/{label.lower()}">Connect {label}</a>' in page.text
        assert "https://testserver/webhooks/zoom" in page.text
        assert "COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN" in page.text
        consent = client.get("/connect/zoom").headers["location"]
        http = httpx.Client(verify=ssl.create_default_context(cafile=str(boxes.tls.ca_path)))
        back = urlsplit(http.get(consent).headers["location"])
        done = client.get(f"{back.path}?{back.query}", headers={"Accept": "text/html"})
        assert done.status_code == 303
        assert done.headers["location"] == "/app/connections?connected=zoom"
        after = client.get(done.headers["location"]).text
        assert "Connected zoom." in after and ">active</strong>" in after
        assert boxes.zoom.owner_email in after  # who the connection acts as (GET /users/me)
    finally:
        boxes.stop()


def test_the_connections_page_is_for_admins(people):
    client = browser()
    sign_in(client, people["manager"])
    assert client.get("/app/connections").status_code == 403
