"""Shared fixtures: isolated settings per test, fresh SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "fixtures" / "audio"
DEMO_CALLS = ROOT / "demo" / "calls"
PG_ADMIN_URL = os.environ.get("COACHLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("COACHLOOP_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reset_caches() -> None:
    from core.db import engine_for
    from core.settings import get_settings
    from core.webhook_events import forget_accounts

    get_settings.cache_clear()
    engine_for.cache_clear()
    forget_accounts()


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own data dir and no COACHLOOP_* from the outside world."""
    for key in list(os.environ):
        if key.startswith("COACHLOOP_") and not key.startswith("COACHLOOP_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    _reset_caches()
    yield
    _reset_caches()


class Clock:
    """A settable clock a sandbox reads instead of the wall clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


class EpochClock:
    """A settable clock for the emulators, which read epoch seconds (token, subscription and
    rate-limit windows)."""

    def __init__(self, now: datetime | float = 1_790_000_000.0):
        self.now = now.timestamp() if isinstance(now, datetime) else float(now)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def http(tls):
    """An HTTP client that trusts the sandboxes' local CA (and no other)."""
    import ssl

    import httpx

    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_path)),
                      timeout=10) as client:
        yield client


@pytest.fixture
def no_ca_bundle_env(monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`, so a
    client library's `verify=<CA path>` (msal's, google-auth's) is ignored where they are
    set."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def create_pg_database() -> str:
    """A new, empty PostgreSQL database; returns its SQLAlchemy URL."""
    import psycopg

    name = f"coachloop_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    from core.db import engine_for

    engine_for(url).dispose()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path, monkeypatch):
    """A migrated, empty database of each kind, configured as the app's database."""
    from core.db import migrate
    from core.settings import get_settings

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = create_pg_database()
    monkeypatch.setenv("COACHLOOP_DATABASE_URL", url)
    get_settings.cache_clear()
    migrate(url)
    yield url
    if request.param == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def sqlite_database(tmp_path, monkeypatch):
    """A migrated SQLite database, for tests where the engine kind does not matter."""
    from core.db import migrate
    from core.settings import get_settings

    url = f"sqlite:///{tmp_path / 'test.db'}"
    monkeypatch.setenv("COACHLOOP_DATABASE_URL", url)
    get_settings.cache_clear()
    migrate(url)
    return url


def shared_audio(name: str) -> Path:
    """A third-party fixture from ../shared; the test skips, saying why, where it is absent."""
    path = SHARED_AUDIO / name
    if not path.is_file():
        pytest.skip(f"{path} is not here: ../shared/fixtures holds third-party audio that is "
                    "never copied into the project (a user's own clone lacks it)")
    return path


PLATFORM_CALLS = sorted(p.stem for p in DEMO_CALLS.glob("*.yaml")
                        if (DEMO_CALLS / f"{p.stem}.vtt").exists()
                        or (DEMO_CALLS / f"{p.stem}.srt").exists())


def copy_calls(dest: Path, stems: list[str]) -> Path:
    """Copy demo calls (manifest and the files it names) into a folder of the test's own."""
    dest.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for file in DEMO_CALLS.glob(f"{stem}.*"):
            shutil.copy(file, dest / file.name)
    return dest


def ingest_folder(folder: Path, roster: Path = DEMO_CALLS.parent) -> dict:
    """Ingest a folder with the demo team and deals, as `coachloop ingest` does."""
    from connectors.files import FilesSource, load_deals, load_team
    from core.db import session_scope
    from core.ingest import apply_deals, apply_team, ensure_org, ingest_record

    team = load_team(roster)
    outcomes = {}
    with session_scope() as session:
        org = ensure_org(session, team.org.name, list(team.org.domains))
        apply_team(session, org, team.members())
        for record in FilesSource(folder).list_meetings():
            outcomes[record.external_id] = ingest_record(session, org, record).outcome
        apply_deals(session, org, [d.to_record() for d in load_deals(roster)])
    return outcomes


def run_pending() -> None:
    """Run every pending stage in process."""
    from core.pipeline import pending_meetings, score_meeting, transcribe_meeting

    for meeting_id, stage in pending_meetings():
        if stage == "ingested":
            transcribe_meeting(meeting_id)
        score_meeting(meeting_id)


def scored_demo_org(folder: Path, as_of) -> int:
    """The demo's platform-transcript calls ingested into `folder`'s copy, scored in
    process, and the team's skills refreshed as of `as_of`; returns the org id."""
    from core.db import session_scope
    from core.ingest import current_org
    from core.skill_refresh import refresh_skills

    ingest_folder(copy_calls(folder, PLATFORM_CALLS))
    run_pending()
    with session_scope() as session:
        org_id = current_org(session).id
    refresh_skills(org_id, as_of)
    return org_id


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """One local CA and loopback certificate for every sandbox server in the run."""
    from sandbox.tls import local_tls

    return local_tls(tmp_path_factory.mktemp("tls"))


def api_token(*scopes: str, org_id: int | None = None) -> str:
    """An API token of the org (the only one, when not said), made the way an admin would."""
    from sqlmodel import select

    from core.auth import create_token
    from core.db import session_scope
    from core.models import Org

    with session_scope() as session:
        org_id = org_id or session.exec(select(Org.id).order_by(Org.id)).first()
        _, secret = create_token(session, org_id, "tests", list(scopes or ("admin",)))
    return secret


def bearer(*scopes: str, org_id: int | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(*scopes, org_id=org_id)}"}


def sign_in(client, email: str, *, role: str = "admin", org_id: int | None = None,
            password: str = "correct horse battery staple") -> dict:
    """Give `email` a password (through an invitation, as an admin would) and sign `client`
    in with it; the client then sends the CSRF header on every request."""
    from sqlmodel import select

    from core.auth import accept_invitation, invite
    from core.db import session_scope
    from core.models import Org

    with session_scope() as session:
        org_id = org_id or session.exec(select(Org.id).order_by(Org.id)).first()
        _, secret = invite(session, org_id, email, role=role)
    with session_scope() as session:
        accept_invitation(session, secret, password)
    client.base_url = "https://testserver"  # session cookies are Secure off loopback
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return response.json()
