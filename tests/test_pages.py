"""The web app's pages through the API app: sign-in (with its login-CSRF token), role-scoped
pages, HTML errors, and no asset from outside the app."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.rubrics import builtin_rubric


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
    assert client.get("/static/../api.py").status_code == 404
    # The charting library is the npm release pinned in vendor.json, licence beside it.
    from web.vendor import mismatches
    assert mismatches() == []
    chart = client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert chart.status_code == 200 and "javascript" in chart.headers["content-type"]
    assert "MIT" in client.get("/static/vendor/uplot/LICENSE").text
    # Pages run only their own scripts and post forms only to the app.
    policy = client.get("/app/team").headers["content-security-policy"]
    assert "script-src 'self';" in policy and "form-action 'self'" in policy
    assert "unsafe-inline" not in policy.split("style-src-attr")[0]


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
    # Each score says what its level means on the rubric's scale.
    meddic_levels = builtin_rubric("meddic").scale.levels
    said = re.findall(r'>(\d+(?:\.\d+)?)/4<br><small class="muted">([^<]+)</small>', page.text)
    assert said
    for score, words in said:
        assert html.unescape(words) == meddic_levels[round(float(score))]
    assert "Rep&#39;s share of the talking" in page.text or "Rep's share of the talking" in page.text
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


@pytest.fixture
def crm(sqlite_database, tls, tmp_path, monkeypatch):
    from tests.test_crm_writeback import make_crm, sync

    made = make_crm(tmp_path / "calls", tls, monkeypatch)
    sync(made.org_id)  # the mapping's review-mode values now wait for a person
    yield made
    made.server.stop()


def page_client(email: str, role: str) -> TestClient:
    """Signed in like a browser: cookies only, no CSRF header (forms carry the token)."""
    from tests.conftest import sign_in as sign_in_api

    client = browser()
    sign_in_api(client, email, role=role)
    del client.headers["X-CSRF-Token"]
    return client


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_an_approved_value_on_the_review_page_lands_in_salesforce(crm):
    client = page_client("ana@acme-analytics.example", "admin")
    page = client.get("/app/review")
    assert page.status_code == 200, page.text
    ids = re.findall(r'name="ids" value="(\d+)"', page.text)
    assert ids and "Approve selected" in page.text and "History" in page.text
    from core.db import session_scope
    from core.review import queue
    with session_scope() as session:
        pending = {p.id: p for p in queue(session, crm.org_id)}
    target = next(p for p in pending.values() if p.field != "Identify_Pain__c")
    assert target.proposed in page.text and (target.quote or "") in page.text
    hidden = form_fields(page.text)
    forged = client.post("/app/review", data={"one": f"approve:{target.id}"})
    assert forged.status_code == 403 and "CSRF" in forged.text  # no token: refused
    done = client.post("/app/review", data={**hidden, "one": f"edit:{target.id}",
                                            f"value_{target.id}": "Dana Ruiz, COO"})
    assert done.status_code == 303 and "Written%20to%20the%20CRM" in done.headers["location"]
    assert crm.box.get("Opportunity", target.record_id)[target.field] == "Dana Ruiz, COO"
    after = client.get(done.headers["location"])
    assert "Edited and approved 1 value(s)" in after.text
    assert f'value="{target.id}"' not in after.text  # no longer pending
    assert "ana@acme-analytics.example" in after.text and "Dana Ruiz, COO" in after.text
    rest = [i for i in map(int, re.findall(r'name="ids" value="(\d+)"', after.text))][:2]
    bulk = client.post("/app/review", data={**form_fields(after.text), "bulk": "reject",
                                            "ids": [str(i) for i in rest]})
    assert bulk.status_code == 303 and "Rejected%202%20value" in bulk.headers["location"]
    again = client.post("/app/review", data={**hidden, "one": f"approve:{target.id}"})
    assert again.status_code == 404 and "no pending proposal" in again.text


def test_a_rep_reviews_only_their_own_deals(crm):
    from connectors.crm_sync import pull_outcomes
    from connectors.salesforce import writer_for_org
    from core.db import session_scope
    from core.settings import get_settings

    writer = writer_for_org(crm.org_id, get_settings())
    try:
        pull_outcomes(crm.org_id, writer)  # who owns which deal comes from the CRM
    finally:
        writer.close()
    from core.models import Deal, User
    from core.review import queue

    with session_scope() as session:
        owners = {p.record_id: session.exec(select(User.email).join(
            Deal, Deal.owner_id == User.id).where(Deal.external_id == p.record_id)).first()
            for p in queue(session, crm.org_id)}
        theirs = {p.id for p in queue(session, crm.org_id)
                  if owners[p.record_id] == "maya.chen@acme-analytics.example"}
        others = {p.id for p in queue(session, crm.org_id)} - theirs
    assert theirs and others, owners
    client = page_client("maya.chen@acme-analytics.example", "rep")
    page = client.get("/app/review")
    shown = set(map(int, re.findall(r'name="ids" value="(\d+)"', page.text)))
    assert shown == theirs
    stolen = client.post("/app/review", data={**form_fields(page.text),
                                              "one": f"approve:{min(others)}"})
    assert stolen.status_code == 404


def test_the_recording_plays_in_ranges_for_those_who_may_see_the_call(people):
    from core.db import session_scope
    from core.models import CallScore, MediaAsset, User

    with session_scope() as session:
        maya = session.exec(select(User).where(User.email == people["rep"])).one()
        mine = session.exec(select(CallScore.meeting_id).where(
            CallScore.rep_id == maya.id)).all()
        audio = session.exec(select(MediaAsset).where(MediaAsset.kind == "audio")).all()
        ours = next(a for a in audio if a.meeting_id in mine)
        theirs = next(a for a in audio if a.meeting_id not in mine)
        size = Path(ours.local_path).stat().st_size
    client = browser()
    assert client.get(f"/app/meetings/{ours.meeting_id}/audio").status_code == 303
    sign_in(client, people["rep"])
    whole = client.get(f"/app/meetings/{ours.meeting_id}/audio")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/ogg" and len(whole.content) == size
    part = client.get(f"/app/meetings/{ours.meeting_id}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert client.get(f"/app/meetings/{theirs.meeting_id}/audio").status_code == 404
    page = client.get(f"/app/meetings/{ours.meeting_id}?t=30")
    assert f'src="/app/meetings/{ours.meeting_id}/audio"' in page.text
    assert 'data-start="30"' in page.text and 'class="play' in page.text


def test_settings_validate_a_rubric_by_line_and_keep_a_good_one(people, tmp_path, monkeypatch):
    from core.settings import get_settings

    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    client = page_client("ana@acme-analytics.example", "admin")
    page = client.get("/app/settings")
    assert page.status_code == 200
    for text in ("meddic", "BANT", "Opportunity", "review", "priya.nair@acme-analytics.example",
                 "New token"):
        assert text in page.text
    token = form_fields(page.text)["csrf_token"]
    broken = "key: broken\nname: Broken\ndescription: x\ncriteria:\n  - key: a\n    name: A\n" \
             "    skill: no_such_skill\n    weight: 1\n"
    bad = client.post("/app/settings/rubrics", data={"csrf_token": token},
                      files={"file": ("broken.yaml", broken.encode(), "text/yaml")})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    error = re.search(r'id="rubric-error">([^<]+)<', bad.text).group(1)
    assert "broken.yaml:5 [criteria[0].good]: Field required" in error, error  # its line
    good = "extends: bant\nkey: bant_lite\nname: BANT lite\n"
    saved = client.post("/app/settings/rubrics", data={"csrf_token": token, "text": good})
    assert saved.status_code == 303, saved.text
    listed = client.get(saved.headers["location"]).text
    assert "Rubric bant_lite (BANT lite) saved" in listed and "uploaded here" in listed
    assert (tmp_path / "data" / "rubrics" / "bant_lite.yaml").read_text() == good


def test_settings_invite_once_and_tokens_shown_once(people):
    client = page_client("ana@acme-analytics.example", "admin")
    token = form_fields(client.get("/app/settings").text)["csrf_token"]
    invited = client.post("/app/settings/people", data={
        "csrf_token": token, "email": "new.rep@acme-analytics.example", "role": "rep",
        "action": "invite"})
    assert invited.status_code == 200 and "/auth/accept#" in invited.text
    made = client.post("/app/settings/tokens", data={"csrf_token": token, "name": "BI export",
                                                     "scopes": ["read"]})
    secret = re.search(r'id="new-token">([^<]+)<', made.text).group(1)
    reader = TestClient(browser().app, base_url="https://testserver")
    assert reader.get("/meetings", headers={"Authorization": f"Bearer {secret}"}
                      ).status_code == 200
    again = client.get("/app/settings").text
    assert secret not in again and "BI export" in again  # shown once, then only its prefix
    row = re.search(r'name="revoke" value="(\d+)"', again).group(1)
    revoked = client.post("/app/settings/tokens", data={"csrf_token": token, "revoke": row})
    assert revoked.status_code == 303
    assert reader.get("/meetings", headers={"Authorization": f"Bearer {secret}"}
                      ).status_code == 401
    bad = client.post("/app/settings/tokens", data={"csrf_token": token, "name": "x"})
    assert bad.status_code == 400 and "scopes" in bad.text
    gone = client.post("/app/settings/people", data={
        "csrf_token": token, "email": "new.rep@acme-analytics.example", "action": "disable"})
    assert gone.status_code == 303
    manager = browser()
    sign_in(manager, people["manager"])
    assert manager.get("/app/settings").status_code == 403


def test_a_trend_ends_at_the_scorecards_estimate_and_moves_with_the_window(people):
    """Each point is the snapshot estimator as of that week: the last is the scorecard's."""
    from core import reports
    from core.db import session_scope

    with session_scope() as session:
        for window in (30, 90):
            card = reports.rep_scorecard(session, 1, people["rep"], window_days=window)
            trend = reports.skill_trend(session, 1, people["rep"], as_of=card.as_of,
                                        window_days=window)
            assert trend
            for s in card.skills:
                if s.skill not in trend:
                    assert not s.n_calls
                    continue
                last = trend[s.skill][-1]
                assert (last.shrunk, last.interval_low, last.interval_high, last.n_calls,
                        last.state) == (s.shrunk, s.interval_low, s.interval_high,
                                        s.n_calls, s.state), s.skill
            points = next(iter(trend.values()))
            assert len(points) == 12 and points[-1].as_of == card.as_of
            assert [p.as_of for p in points] == sorted(p.as_of for p in points)
