"""The web app in a real browser: Debian's headless Chromium driven by Playwright, against the
app served on loopback with the vendor sandboxes behind it. Admin, manager and rep sign in and
see what their role allows; the admin connects Zoom and Salesforce by clicking through the
OAuth flow, approves a proposed CRM value and finds it in the Salesforce emulator; a quote's
play button starts the recording at its moment; and no request leaves the machine.

A screenshot of every page (desktop and phone width) is written to `screenshots/` (ignored
by git; `COACHLOOP_SCREENSHOTS` moves it) for a reviewer to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import select

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("COACHLOOP_SCREENSHOTS", ROOT / "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ADMIN, MANAGER, REP = ("ana.admin@acme-analytics.example", "priya.nair@acme-analytics.example",
                       "maya.chen@acme-analytics.example")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The scored demo org, its people with passwords, every sandbox, and the app on plain
    HTTP loopback (the embedded default: SQLite, in-process jobs)."""
    from cryptography.fernet import Fernet

    from core.auth import set_password
    from core.db import migrate, session_scope
    from core.models import User
    from core.settings import get_settings
    from sandbox.run import start_sandboxes
    from sandbox.server import serve
    from tests.conftest import scored_demo_org

    work = tmp_path_factory.mktemp("browser")
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("COACHLOOP_")]:
        del os.environ[key]
    boxes = start_sandboxes(work / "sandbox")
    url = f"sqlite:///{work / 'app.db'}"
    os.environ.update({**boxes.settings(), "COACHLOOP_DATABASE_URL": url,
                       "COACHLOOP_DATA_DIR": str(work / "data"),
                       "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])})
    get_settings.cache_clear()
    migrate(url)
    org_id = scored_demo_org(work / "calls", date(2026, 11, 20))
    with session_scope() as session:
        session.add(User(org_id=org_id, email=ADMIN, name="Ana Admin", role="admin"))
        session.flush()
        for user in session.exec(select(User).where(User.email.in_((ADMIN, MANAGER, REP)))):
            set_password(user, PASSWORD)
            session.add(user)
    from api import create_app

    server = serve(create_app(), None)
    os.environ["COACHLOOP_PUBLIC_URL"] = server.url
    get_settings.cache_clear()
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k.startswith("COACHLOOP_")}
    try:
        yield {"url": server.url, "boxes": boxes, "org_id": org_id, "env": env}
    finally:
        server.stop()
        boxes.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def site_settings(site, monkeypatch):
    """Each test starts with its own settings (conftest); these tests share the site's."""
    from core.settings import get_settings

    for key, value in site["env"].items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


class Visit:
    """A browser context for one person: every request it makes is recorded."""

    def __init__(self, chromium, site, *, width: int = 1280, height: int = 900):
        # The sandboxes' certificates come from the test's own CA, unknown to Chromium.
        self.context = chromium.new_context(viewport={"width": width, "height": height},
                                            ignore_https_errors=True)
        self.requests: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.site = site

    def go(self, path: str):
        response = self.page.goto(self.site["url"] + path)
        return response

    def sign_in(self, email: str):
        self.go("/app")
        assert "/app/sign-in" in self.page.url
        self.page.get_by_label("E-mail").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        assert "/app/sign-in" not in self.page.url, self.page.content()[:400]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def outside(self) -> list[str]:
        """Requests to anything but this machine (a CDN, a web font, a tracker)."""
        return [u for u in self.requests
                if urlsplit(u).scheme not in ("data", "blob", "about")
                and urlsplit(u).hostname not in LOOPBACK]

    def close(self) -> None:
        self.context.close()


def unlabelled(page) -> list[str]:
    """Form controls a screen reader could not name."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        'input:not([type=hidden]), select, textarea, button')).filter(el => {
          const named = el.getAttribute('aria-label') || (el.labels && el.labels.length)
            || (el.tagName === 'BUTTON' && el.textContent.trim());
          return !named; }).map(el => el.outerHTML.slice(0, 80))""")


def test_an_admin_connects_approves_and_plays_a_quote(site, chromium):
    from core.review import queue
    from core.db import session_scope

    visit = Visit(chromium, site)
    try:
        visit.sign_in(ADMIN)
        assert visit.page.url.endswith("/app/team")
        visit.go("/app/connections")
        visit.shot("connections-before")
        for vendor, label in (("zoom", "Zoom"), ("salesforce", "Salesforce")):
            visit.page.get_by_role("link", name=f"Connect {label}").click()
            visit.page.wait_for_url(f"**/app/connections?connected={vendor}")
            assert f"Connected {vendor}." in visit.page.get_by_role("status").inner_text()
            row = visit.page.get_by_role("row").filter(has_text=label)
            assert "active" in row.inner_text()
        visit.shot("connections")
        # A backfill from the page: a call recorded two days ago arrives and is scored while
        # the page shows its progress (it refreshes itself until done).
        from datetime import datetime, timedelta, timezone
        site["boxes"].zoom.add_meeting(
            "Intro call - Northwind", datetime.now(timezone.utc) - timedelta(days=2),
            "tyler.reed@acme-analytics.example",
            [("Tyler Reed", "tyler.reed@acme-analytics.example"),
             ("Brian Walker", "brian.walker@summitmfg.example")],
            transcript_vtt=ROOT / "demo" / "calls" / "demo-call-03.vtt")
        zoom = visit.page.get_by_role("row").filter(has_text="Zoom")
        zoom.get_by_label("How far back to fetch Zoom recordings").select_option("7")
        zoom.get_by_role("button", name="Backfill Zoom").click()
        visit.page.wait_for_url("**/app/connections?backfill=zoom**")
        progress = visit.page.locator("#backfill")
        progress.get_by_text("Done.").wait_for(timeout=120_000)
        assert "1 new recording(s) so far — 1 scored, 0 failed" in progress.inner_text()
        visit.shot("connections-backfill")
        # The mapping sends Salesforce's MEDDIC fields for review: write-back proposes them.
        from connectors.crm_sync import sync_configured
        report = sync_configured(site["org_id"])
        assert not report.failed
        with session_scope() as session:
            pending = [p for p in queue(session, site["org_id"])
                       if p.field != "Identify_Pain__c" and p.quote]
        target = pending[0]
        visit.go("/app/review")
        visit.shot("review")
        assert visit.page.get_by_role("button", name="Approve selected").is_visible()
        assert not unlabelled(visit.page)
        row = visit.page.locator(f"tr#p{target.id}")
        assert target.proposed in row.inner_text()
        # Play the quote: the player starts at its moment.
        play = row.get_by_role("button", name=re.compile("Play the call"))
        play.click()
        player = visit.page.locator("#player")
        visit.page.wait_for_function("() => document.getElementById('player').currentTime > 0")
        at = player.evaluate("p => p.currentTime")
        assert target.quote_at - 0.5 <= at <= target.quote_at + 5, (at, target.quote_at)
        row.get_by_role("button", name="Approve").click()
        visit.page.wait_for_load_state()
        notice = visit.page.get_by_role("status").inner_text()
        assert "Approved 1 value(s). Written to the CRM." in notice, notice
        record = site["boxes"].salesforce.get("Opportunity", target.record_id)
        assert record[target.field] == target.proposed
        assert visit.page.locator(f"tr#p{target.id}").count() == 0
        history = visit.page.get_by_role("table").last.inner_text()
        assert ADMIN in history and target.proposed[:20] in history
        visit.go("/app/settings")
        visit.shot("settings")
        assert not unlabelled(visit.page)
        visit.go("/app/outcomes")
        visit.shot("outcomes")
        assert visit.outside() == [], visit.outside()
    finally:
        visit.close()


def test_a_manager_coaches_from_the_team_and_a_call(site, chromium):
    from core.models import CallScore, User
    from core.db import session_scope

    visit = Visit(chromium, site)
    try:
        visit.sign_in(MANAGER)
        heatmap = visit.page.locator("table.heatmap")
        assert heatmap.is_visible() and "Maya Chen" in heatmap.inner_text()
        assert visit.page.locator("td.heat").count() > 10
        visit.shot("team")
        assert not unlabelled(visit.page)
        visit.page.get_by_label("Window").select_option("30")
        visit.page.get_by_role("button", name="Show").click()
        visit.page.wait_for_url("**/app/team?window=30**")
        assert "30-day window" in visit.page.content()
        visit.page.get_by_role("link", name="Maya Chen").click()
        visit.page.wait_for_url("**/app/reps/maya.chen@acme-analytics.example**")
        visit.page.wait_for_selector("figure.chart canvas")  # uPlot drew the trends
        assert visit.page.locator("figure.chart canvas").count() >= 3
        visit.shot("rep")
        with session_scope() as session:
            maya = session.exec(select(User).where(User.email == REP)).one()
            meeting = session.exec(select(CallScore.meeting_id).where(
                CallScore.rep_id == maya.id)).first()
        visit.go(f"/app/meetings/{meeting}?t=20")
        visit.page.wait_for_function(
            "() => document.getElementById('player').readyState >= 1")
        assert abs(visit.page.locator("#player").evaluate("p => p.currentTime") - 20) < 1
        visit.page.locator("td button.play").first.click()
        visit.page.wait_for_function("() => !document.getElementById('player').paused")
        visit.shot("call")
        assert visit.outside() == [], visit.outside()
    finally:
        visit.close()


def test_a_rep_sees_their_own_skills_and_nothing_else(site, chromium):
    visit = Visit(chromium, site)
    try:
        visit.sign_in(REP)
        assert visit.page.url.endswith(f"/app/reps/{REP}")
        nav = visit.page.get_by_role("navigation", name="Main").inner_text()
        assert "My skills" in nav and "Team" not in nav and "Settings" not in nav
        for path in ("/app/team", "/app/settings", "/app/connections", "/app/outcomes",
                     "/app/reps/jordan.brooks@acme-analytics.example"):
            response = visit.go(path)
            assert response.status in (403, 404), path
            assert "Not allowed" in visit.page.content() or "Not found" in visit.page.content()
        # Keyboard only: from the page's top, Tab reaches the first link of the menu.
        visit.go(f"/app/reps/{REP}")
        visit.page.keyboard.press("Tab")
        focused = visit.page.evaluate("() => document.activeElement.textContent")
        assert focused.strip() == "coachloop"
        assert visit.outside() == [], visit.outside()
    finally:
        visit.close()
    phone = Visit(chromium, site, width=390, height=844)
    try:
        phone.sign_in(REP)
        wide = phone.page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 392, f"the rep page is {wide}px wide on a 390px phone"
        phone.shot("rep-phone")
        phone.go("/app/review")
        phone.shot("review-phone")
    finally:
        phone.close()
