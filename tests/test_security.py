"""Holes found in the security review, each with the request that found it: oversized and
slow bodies, odd but signed payloads, security headers, huge ids, secrets in the access log.
Every answer is a clear 4xx and nothing is stored half-way."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.settings import get_settings
from tests.test_webhooks_zoom import SECRET, recording_completed, sign


@pytest.fixture
def api(database, monkeypatch):
    monkeypatch.setenv("COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN", SECRET)
    get_settings.cache_clear()
    from api import create_app

    return create_app()


def stored() -> int:
    from core.db import session_scope
    from core.models import WebhookEvent

    with session_scope() as session:
        return len(session.exec(select(WebhookEvent)).all())


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_300_mib_unsigned_body_is_cut_off_while_it_streams(api, tls):
    """Hole 2: the body was read whole before the size check (130 MB → 716 MB)."""
    from sandbox.server import serve

    server = serve(api, tls)
    peak = [rss_mb()]
    before = peak[0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    def chunks():
        block = b"x" * (1 << 20)
        for _ in range(300):
            yield block

    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_path)),
                          timeout=60) as client:
            response = client.post(f"{server.url}/webhooks/zoom", content=chunks(),
                                   headers={"content-type": "application/json"})
            status = response.status_code
    finally:
        done.set()
        sampler.join()
        server.stop()
    assert status == 413
    assert peak[0] - before < 60, f"RSS grew {peak[0] - before:.0f} MB"
    assert stored() == 0


def test_a_declared_oversized_body_is_refused_before_it_is_read(api):
    client = TestClient(api, raise_server_exceptions=False)
    response = client.post("/auth/login", content=b"{}",
                           headers={"content-length": str(10 << 20),
                                    "content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_a_body_that_trickles_in_times_out(api, tls, monkeypatch):
    from core import http_guards
    from sandbox.server import serve

    monkeypatch.setattr(http_guards, "BODY_DEADLINE_S", 1.0)
    from api import create_app

    server = serve(create_app(), tls)
    host, port = server.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(tls.ca_path))
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as conn:
            conn.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 1000\r\n\r\n{\"email\"")
            started = time.monotonic()
            answer = ""
            while "too_slow" not in answer and (chunk := conn.recv(4096)):
                answer += chunk.decode(errors="replace")
            waited = time.monotonic() - started
    finally:
        server.stop()
    assert answer.startswith("HTTP/1.1 408") and "too_slow" in answer
    assert waited < 5


ODD = {
    "deep nesting": lambda: b'{"event": "recording.completed", "payload": ' + b"[" * 100_000
    + b"]" * 100_000 + b"}",
    "UTF-16": lambda: recording_completed().decode().encode("utf-16"),
    "UTF-32": lambda: recording_completed().decode().encode("utf-32"),
    "NUL escaped": lambda: recording_completed(uuid="abc\u0000def"),
    "NUL raw": lambda: recording_completed().replace(b"Discovery", b"Disc\x00overy"),
    "500 KB uuid": lambda: recording_completed(uuid="u" * 500_000),
    "not an object": lambda: b"[1, 2, 3]",
    "event not a string": lambda: b'{"event": {"a": 1}, "payload": {}}',
}


@pytest.mark.parametrize("name", ODD)
def test_signed_but_odd_payloads_are_4xx_and_nothing_is_stored(api, name):
    """Hole 5: each of these was a 500 (RecursionError, UnicodeDecodeError, PostgreSQL)."""
    body = ODD[name]()
    client = TestClient(api, raise_server_exceptions=False)
    response = client.post("/webhooks/zoom", content=body, headers=sign(body, int(time.time())))
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert response.json()["error"]["message"]
    assert stored() == 0


def test_every_response_carries_the_security_headers(api):
    client = TestClient(api, raise_server_exceptions=False)
    for path in ("/health", "/meetings", "/nope", "/docs", "/openapi.json"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in client.get("/docs").headers["content-security-policy"]
    assert client.post("/auth/login", json={"email": "a@b.c", "password": "x"}).headers[
        "cache-control"] == "no-store"


def test_an_absurd_meeting_id_is_422_not_500(api):
    from tests.conftest import bearer

    client = TestClient(api, raise_server_exceptions=False)
    from core.db import session_scope
    from core.ingest import ensure_org

    with session_scope() as session:
        ensure_org(session, "Acme", ["acme.example"])
    response = client.get("/meetings/99999999999999999999999", headers=bearer("read"))
    assert response.status_code == 422


def test_the_access_log_never_holds_oauth_codes_or_states(caplog):
    from core.http_guards import redact_access_log

    redact_access_log()
    logger = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/connect/zoom/callback?code=SECRETCODE&state=SECRETSTATE", "1.1", 200)
    text = caplog.text
    assert "SECRETCODE" not in text and "SECRETSTATE" not in text
    assert "code=[redacted]" in text and "state=[redacted]" in text


def test_the_data_dir_and_database_are_owner_only(tmp_path, monkeypatch):
    """Hole 7: the SQLite database and logs were world-readable."""
    import stat

    from typer.testing import CliRunner

    from cli import app

    data = tmp_path / "data"
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(data))
    monkeypatch.delenv("COACHLOOP_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["init", "--org", "Acme", "--domain", "acme.example"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "coachloop.db").is_file()
    for path in data.rglob("*"):  # the database, its journal, the log, keys: owner-only
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_manifest_files_outside_its_folder_are_refused(tmp_path, monkeypatch, sqlite_database):
    """Hole 8: `../`, absolute paths and symlinks let a manifest read any file."""
    from connectors.base import SourceProblem
    from connectors.files import FilesSource

    secret = tmp_path / "secret.vtt"
    secret.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nprivate\n")
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "link.vtt").symlink_to(secret)
    for name, path in (("dotdot", "../secret.vtt"), ("absolute", str(secret)),
                       ("symlink", "link.vtt")):
        (folder / f"{name}.yaml").write_text(
            f"title: {name}\nstarted_at: '2026-11-20T10:00:00Z'\ntranscript: {path}\n"
            "participants:\n  - {name: Ann, email: ann@acme.example}\n")
    found = list(FilesSource(folder).list_meetings())
    assert len(found) == 3 and all(isinstance(f, SourceProblem) for f in found)
    assert all("outside the manifest's folder" in f.message for f in found)
    monkeypatch.setenv("COACHLOOP_MEDIA_ROOTS", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()
    allowed = list(FilesSource(folder).list_meetings())
    assert not any(isinstance(f, SourceProblem) and "outside" in f.message for f in allowed)


def test_oauth_states_expire_and_are_purged(sqlite_database):
    """Hole 8: every anonymous /connect added a state row that was never purged."""
    from datetime import timedelta

    from core.db import session_scope
    from core.models import OAuthState, utcnow
    from core.ingest import ensure_org
    from core.oauth import STATE_TTL, purge_states

    with session_scope() as session:
        org_id = ensure_org(session, "Acme", ["acme.example"]).id
        for n in range(50):
            session.add(OAuthState(state_hash=f"old{n}", org_id=org_id, provider="zoom",
                                   redirect_uri="x", created_at=utcnow() - STATE_TTL
                                   - timedelta(seconds=1)))
        session.add(OAuthState(state_hash="fresh", org_id=org_id, provider="zoom",
                               redirect_uri="x"))
    with session_scope() as session:
        assert purge_states(session) == 50
    with session_scope() as session:
        assert [s.state_hash for s in session.exec(select(OAuthState))] == ["fresh"]


def test_two_process_runs_at_once_share_the_work_and_never_repeat_it(database, tmp_path):
    """Hole 3: two `coachloop process` at once transcribed and scored the same meetings
    twice, raised IntegrityErrors and left scored meetings marked failed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from connectors.files import load_team
    from core.db import session_scope
    from core.models import CallScore, Meeting, Transcript
    from tests.conftest import DEMO_CALLS, PLATFORM_CALLS, copy_calls, ingest_folder

    ingest_folder(copy_calls(tmp_path / "calls", PLATFORM_CALLS))
    env = {**os.environ, "COACHLOOP_DATABASE_URL": database,
           "COACHLOOP_ORG__NAME": load_team(DEMO_CALLS.parent).org.name, "COLUMNS": "200"}
    command = [str(Path(sys.executable).parent / "coachloop"), "process", "--as-of",
               "2026-11-20"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    done = [int(out.split("processed ")[1].split()[0]) for out in outputs]
    assert sum(done) == len(PLATFORM_CALLS), outputs  # each meeting by exactly one runner
    assert not any("failed" in out or "Traceback" in out for out in outputs), outputs
    with session_scope() as session:
        meetings = session.exec(select(Meeting)).all()
        assert {m.stage for m in meetings} == {"scored"}
        assert all(m.claimed_until is None for m in meetings)
        assert len(session.exec(select(Transcript)).all()) == len(meetings)
        assert len(session.exec(select(CallScore)).all()) == 2 * len(meetings)  # MEDDIC, BANT


def test_oversized_transcripts_are_refused_clearly_and_do_not_block_later_calls(
        sqlite_database, tmp_path):
    """Hole 4: a 250,000-cue transcript was still being scored after ten minutes, and every
    later run waited behind it."""
    from core.errors import InputError
    from core.transcripts import load_platform_transcript

    cues = "".join(f"{n}\n00:00:{n % 60:02d}.000 --> 00:00:{n % 60:02d}.500\nRep: hi\n\n"
                   for n in range(25_000))
    huge = tmp_path / "huge.vtt"
    huge.write_text("WEBVTT\n\n" + cues)
    started = time.monotonic()
    with pytest.raises(InputError, match="25,000 cues, over the limit of 20,000"):
        load_platform_transcript(huge, max_bytes=8 << 20, max_cues=20_000)
    with pytest.raises(InputError, match="over the 1 MB limit"):
        load_platform_transcript(huge, max_bytes=1 << 20, max_cues=20_000)
    assert time.monotonic() - started < 5

    # Through the pipeline: that call fails with the reason, the next one is scored.
    from core.db import session_scope
    from core.models import Meeting
    from core.pipeline import pending_meetings, record_failure, score_meeting, transcribe_meeting
    from tests.conftest import PLATFORM_CALLS, copy_calls, ingest_folder

    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:1])
    (folder / "big.yaml").write_text(
        "title: Endless call\nstarted_at: '2026-11-19T10:00:00Z'\ntranscript: big.vtt\n"
        "participants:\n  - {name: Maya Chen, email: maya.chen@acme-analytics.example}\n")
    (folder / "big.vtt").write_text(huge.read_text())
    ingest_folder(folder)
    for meeting_id, _stage in pending_meetings():
        try:
            transcribe_meeting(meeting_id)
            score_meeting(meeting_id)
        except InputError as exc:
            record_failure(meeting_id, "transcribe", exc)
    with session_scope() as session:
        stages = {m.title: (m.stage, m.error) for m in session.exec(select(Meeting))}
    assert sorted(stage for stage, _ in stages.values()) == ["failed", "scored"]
    assert any("over the limit of 20,000" in (error or "") for _, error in stages.values())
