"""A real Celery worker process on Redis, with PostgreSQL, takes meetings through every stage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from celery import Celery
from sqlmodel import Session, select

from core.db import engine_for, migrate, session_scope
from core.ingest import apply_team, ensure_org
from core.models import CallScore, Meeting, Segment, SkillSnapshot, Transcript
from tests.conftest import DEMO_CALLS, REDIS_URL, ROOT, create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(monkeypatch):
    from core.settings import get_settings

    url = create_pg_database()
    monkeypatch.setenv("COACHLOOP_DATABASE_URL", url)
    get_settings.cache_clear()
    migrate(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
def broker():
    """The test Redis, with every key under a prefix of this test's own, so that suites
    running side by side never take each other's tasks."""
    prefix = f"coachloop-test-{uuid.uuid4().hex[:8]}:"
    yield REDIS_URL, prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def celery_client(broker) -> Celery:
    url, prefix = broker
    client = Celery(broker=url)
    client.conf.broker_transport_options = {"global_keyprefix": prefix}
    return client


def start_worker(database_url: str, broker, log_path, extra_env: dict | None = None,
                 **transport_options) -> subprocess.Popen:
    """A real `celery worker` process in its own process group, logging to `log_path`."""
    url, prefix = broker
    options = {"global_keyprefix": prefix, **transport_options}
    env = {**os.environ, "COACHLOOP_DATABASE_URL": database_url, "COACHLOOP_BROKER_URL": url,
           "COACHLOOP_BROKER_TRANSPORT_OPTIONS": json.dumps(options),
           "COACHLOOP_DATA_DIR": str(log_path.parent), "PYTHONPATH": str(ROOT),
           "COACHLOOP_REFRESH_DEBOUNCE_S": "2", **(extra_env or {})}
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", "asr,default,crm",
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@pytest.fixture
def celery_worker(postgres, broker, tmp_path):
    log_path = tmp_path / "worker.log"
    process = start_worker(postgres, broker, log_path)
    yield process, log_path
    stop_worker(process)


def _demo_org() -> int:
    from connectors.files import load_team

    team = load_team(DEMO_CALLS.parent)
    with session_scope() as session:
        org = ensure_org(session, team.org.name, list(team.org.domains))
        apply_team(session, org, team.members())
        return org.id


def _wait_for(predicate, timeout: float, log_path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out; worker log:\n{log_path.read_text()[-4000:]}")


def test_a_real_worker_runs_every_stage(celery_worker, broker, postgres):
    process, log_path = celery_worker
    org_id = _demo_org()
    manifests = sorted(DEMO_CALLS.glob("*.yaml"))
    stereo = next(m for m in manifests if "channels:" in m.read_text())  # ASR in the worker
    platform = next(m for m in manifests if "transcript:" in m.read_text())  # platform VTT/SRT

    client = celery_client(broker)
    for manifest in (stereo, platform):
        client.send_task("coachloop.ingest", args=[org_id, "files", str(manifest)], queue="default")

    def all_scored() -> bool:
        with Session(engine_for(postgres)) as session:
            stages = session.exec(select(Meeting.stage)).all()
            skills = session.exec(select(SkillSnapshot)).first()
        return len(stages) == 2 and set(stages) == {"scored"} and skills is not None

    _wait_for(all_scored, 240, log_path)
    assert process.poll() is None, "the worker is still alive"
    with Session(engine_for(postgres)) as session:
        sources = {t.source for t in session.exec(select(Transcript))}
        assert sources == {"asr", "platform"}
        roles = {s.role for s in session.exec(select(Segment))}
        assert {"rep", "buyer"} <= roles
        assert len(session.exec(select(CallScore)).all()) == 4  # 2 meetings × MEDDIC, BANT
    log = log_path.read_text()
    for task in ("coachloop.ingest", "coachloop.transcribe", "coachloop.score", "coachloop.skills"):
        assert f"Task {task}[" in log and "succeeded" in log, f"{task} ran in the worker"

    # Delivered again (at-least-once): nothing is duplicated.
    client.send_task("coachloop.ingest", args=[org_id, "files", str(stereo)], queue="default")
    _wait_for(lambda: len(re.findall(r"Task coachloop\.ingest\[\S+\] succeeded",
                                     log_path.read_text())) == 3, 60, log_path)
    with Session(engine_for(postgres)) as session:
        assert len(session.exec(select(Meeting)).all()) == 2
        assert len(session.exec(select(CallScore)).all()) == 4
        transcripts = {t.id for t in session.exec(select(Transcript))}
        meeting_ids = list(session.exec(select(Meeting.id)))

    # A transcribe or score message for a scored meeting (a redelivery after a lost ack) is
    # done work: no second Whisper pass, the scores stay as they are.
    asr_runs = log_path.read_text().count("Processing audio")
    for meeting_id in meeting_ids:
        client.send_task("coachloop.transcribe", args=[meeting_id], queue="asr")
        client.send_task("coachloop.score", args=[meeting_id], queue="default")
    _wait_for(lambda: all(len(re.findall(rf"Task coachloop\.{task}\[\S+\] succeeded",
                                         log_path.read_text())) >= 4
                          for task in ("transcribe", "score")), 60, log_path)
    assert log_path.read_text().count("Processing audio") == asr_runs
    with Session(engine_for(postgres)) as session:
        assert {t.id for t in session.exec(select(Transcript))} == transcripts
        assert set(session.exec(select(Meeting.stage))) == {"scored"}


def test_a_worker_killed_mid_transcription_loses_nothing(postgres, broker, tmp_path):
    """SIGKILL the worker while it transcribes; a new worker gets the task again and the
    meeting ends up scored exactly once."""
    org_id = _demo_org()
    log_path = tmp_path / "worker.log"
    # Redeliver within seconds rather than hours, and sweep for abandoned tasks every second.
    fast_redelivery = {"visibility_timeout": 5, "unacked_restore_interval": 1,
                       "unacked_restore_throttle": 1}
    first = start_worker(postgres, broker, log_path, **fast_redelivery)
    try:
        stereo = next(m for m in sorted(DEMO_CALLS.glob("*.yaml")) if "channels:" in m.read_text())
        client = celery_client(broker)
        client.send_task("coachloop.ingest", args=[org_id, "files", str(stereo)], queue="default")
        _wait_for(lambda: "Task coachloop.transcribe[" in log_path.read_text(), 60, log_path)
        time.sleep(1.0)  # inside the ASR now (it takes several seconds)
        stop_worker(first, signal.SIGKILL)
        with Session(engine_for(postgres)) as session:
            assert session.exec(select(Meeting.stage)).one() == "ingested", "killed mid-task"
    finally:
        stop_worker(first, signal.SIGKILL)

    second = start_worker(postgres, broker, log_path, **fast_redelivery)
    try:
        def scored() -> bool:
            with Session(engine_for(postgres)) as session:
                return session.exec(select(Meeting.stage)).one() == "scored"

        _wait_for(scored, 180, log_path)
        with Session(engine_for(postgres)) as session:
            assert len(session.exec(select(Transcript)).all()) == 1
            assert len(session.exec(select(CallScore)).all()) == 2
    finally:
        stop_worker(second)


def test_cli_process_hands_pending_meetings_to_workers(celery_worker, broker, postgres, tmp_path):
    """`coachloop ingest` then `coachloop process` with a broker: the CLI enqueues, the worker
    transcribes and scores, the CLI waits with a progress bar and refreshes skills."""
    from tests.conftest import PLATFORM_CALLS, copy_calls

    _, log_path = celery_worker
    url, prefix = broker
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:2])
    for name in ("team.yaml", "deals.yaml"):
        (folder / name).write_text((DEMO_CALLS.parent / name).read_text())
    env = {**os.environ, "COACHLOOP_DATABASE_URL": postgres, "COACHLOOP_BROKER_URL": url,
           "COACHLOOP_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": prefix}),
           "COACHLOOP_DATA_DIR": str(tmp_path / "cli"), "PYTHONPATH": str(ROOT),
           "COLUMNS": "200"}
    ingest = subprocess.run([sys.executable, "-m", "cli", "ingest", str(folder)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    process = subprocess.run([sys.executable, "-m", "cli", "process", "--as-of", "2026-11-20"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert process.returncode == 0, process.stdout + process.stderr + log_path.read_text()[-3000:]
    assert "skills refreshed as of 2026-11-20" in process.stdout
    with Session(engine_for(postgres)) as session:
        assert set(session.exec(select(Meeting.stage)).all()) == {"scored"}
        assert len(session.exec(select(CallScore)).all()) == 4
    assert log_path.read_text().count("Task coachloop.transcribe[") >= 2, "workers did the work"


def test_a_backfill_refreshes_skills_once_per_debounce_window(postgres, broker, tmp_path):
    """Eight calls scored in quick succession: one skills refresh (and CRM sync) per
    debounce window, carrying all of them, not one per call."""
    from tests.conftest import PLATFORM_CALLS

    org_id = _demo_org()
    log_path = tmp_path / "worker.log"
    process = start_worker(postgres, broker, log_path,
                           extra_env={"COACHLOOP_REFRESH_DEBOUNCE_S": "6"})
    try:
        client = celery_client(broker)
        for stem in PLATFORM_CALLS:
            client.send_task("coachloop.ingest", args=[org_id, "files",
                                                       str(DEMO_CALLS / f"{stem}.yaml")],
                             queue="default")

        def refreshed_after_all_scored() -> bool:
            with Session(engine_for(postgres)) as session:
                stages = session.exec(select(Meeting.stage)).all()
                snapshots = session.exec(select(SkillSnapshot)).all()
            seen = {m for s in snapshots for m in s.meeting_ids}
            return (len(stages) == len(PLATFORM_CALLS) and set(stages) == {"scored"}
                    and len(seen) == len(PLATFORM_CALLS))

        _wait_for(refreshed_after_all_scored, 240, log_path)
        time.sleep(7)  # a refresh scheduled by the last call would have run by now
        log = log_path.read_text()
        scored = len(re.findall(r"Task coachloop\.score\[\S+\] succeeded", log))
        refreshes = len(re.findall(r"Task coachloop\.skills\[\S+\] succeeded", log))
        assert scored == len(PLATFORM_CALLS)
        assert 1 <= refreshes <= 3 < scored, (scored, refreshes)  # a few windows, not per call
    finally:
        stop_worker(process)
