"""The running emulators and a configured org, shared by the contract suites."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from core.settings import get_settings


@pytest.fixture
def boxes(sqlite_database, tmp_path, monkeypatch):
    """Every vendor emulator over HTTPS on loopback, coachloop's settings pointing at them,
    and an org to connect; yields (sandboxes, org id)."""
    from core.db import session_scope
    from core.ingest import ensure_org
    from sandbox.run import start_sandboxes

    running = start_sandboxes(tmp_path / "sandbox")
    env = {**running.settings(), "COACHLOOP_PUBLIC_URL": "https://coachloop.example",
           "COACHLOOP_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()])}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with session_scope() as session:
        org_id = ensure_org(session, "Acme", ["acme-analytics.example"]).id
    yield running, org_id
    running.stop()
