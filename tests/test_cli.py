"""The command line: clear errors, idempotent ingest, reports; and the demo end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from typer.testing import CliRunner

from cli import app
from tests.conftest import DEMO_CALLS, PLATFORM_CALLS, copy_calls

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_ingest_process_report(tmp_path):
    folder = copy_calls(tmp_path / "calls", PLATFORM_CALLS[:4])
    for name in ("team.yaml", "deals.yaml"):
        (folder / name).write_text((DEMO_CALLS.parent / name).read_text())
    (folder / "broken.yaml").write_text("title: [unclosed\n")
    result = invoke("ingest", str(folder))
    assert result.exit_code == 1, result.output
    assert "broken.yaml" in result.output and "4 were" in result.output
    again = invoke("ingest", str(folder))
    assert again.output.count("already ingested, unchanged") == 4
    processed = invoke("process", "--as-of", "2026-11-20")
    assert processed.exit_code == 0, processed.output
    assert "skills refreshed as of 2026-11-20" in processed.output
    team = invoke("report", "team")
    assert team.exit_code == 0 and "Maya Chen" in team.output
    rep = invoke("report", "rep", "maya.chen@acme-analytics.example")
    assert rep.exit_code == 0 and "Scorecard" in rep.output
    assert "Not measured" in rep.output and "Objection handling" in rep.output


def test_errors_are_one_clear_line(tmp_path):
    missing = invoke("ingest", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "not a folder" in missing.output
    assert "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    no_org = invoke("ingest", str(tmp_path / "empty"))
    assert no_org.exit_code == 1 and "coachloop init" in no_org.output
    bad_date = invoke("process", "--as-of", "yesterday")
    assert bad_date.exit_code == 1 and "YYYY-MM-DD" in bad_date.output


def test_ingest_problem_lines_keep_file_line_and_field(tmp_path):
    """`[started_at]` is user data, not Rich markup: it must reach the terminal."""
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "team.yaml").write_text((DEMO_CALLS.parent / "team.yaml").read_text())
    (folder / "late.yaml").write_text('title: "Intro [draft]"\nstarted_at: "not a date"\n'
                                      "transcript: late.vtt\n")
    result = runner.invoke(app, ["ingest", str(folder)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "late.yaml:2 [started_at]: not an ISO 8601 date" in result.output


def test_calls_not_scored_say_why(tmp_path):
    """Ingested calls that count toward no rep say why, in `process` and in both reports."""
    folder = copy_calls(tmp_path / "calls", ["demo-call-03"])
    for name in ("team.yaml", "deals.yaml"):
        (folder / name).write_text((DEMO_CALLS.parent / name).read_text())
    manifest = (folder / "demo-call-03.yaml").read_text()
    vtt = (folder / "demo-call-03.vtt").read_text()
    for stem, day in (("buyer-only", "11"), ("garbled", "12")):
        (folder / f"{stem}.vtt").write_text(vtt.replace("<v Tyler Reed>", "<v Brian Walker>"))
        (folder / f"{stem}.yaml").write_text(
            manifest.replace("demo-call-03.vtt", f"{stem}.vtt")
            .replace("external_id: demo-call-03", f"external_id: {stem}")
            .replace("2026-09-10T14", f"2026-09-{day}T14").replace("recording: demo-call-03.ogg\n", ""))
    assert invoke("ingest", str(folder)).exit_code == 0
    (folder / "garbled.vtt").write_bytes(b"WEBVTT\n\n1\n00:00:00.600 --> 00:00:03.318\n\xff\xfe\n")
    processed = invoke("process", "--as-of", "2026-11-20")
    assert processed.exit_code == 0, processed.output
    expected = ("2 calls not scored: 1 no speech in this call is attributed to the rep, "
                "1 transcription failed: ")
    assert expected in processed.output and "not UTF-8" in processed.output
    team = invoke("report", "team", "--as-of", "2026-11-20")
    assert expected in team.output
    rep = invoke("report", "rep", "tyler.reed@acme-analytics.example", "--as-of", "2026-11-20")
    assert expected in rep.output
    maya = invoke("report", "rep", "maya.chen@acme-analytics.example", "--as-of", "2026-11-20")
    assert "not scored" not in maya.output  # not her calls


def test_demo_runs_end_to_end(tmp_path):
    """What `make demo` runs, as a user would: a fresh process, the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLOOP_")}
    env.update(COLUMNS="200", COACHLOOP_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "cli", "demo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900,
                            )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "connected zoom" in out and "connected salesforce" in out
    assert "15 Zoom, Microsoft Teams and Google Meet calls" in out and "connected teams" in out
    assert "connected meet through a service account" in out
    assert "Zoom validated the webhook endpoint" in out
    assert "7 accepted, 7 duplicate" in out  # every webhook delivered twice, kept once
    # Teams: six calls, a transcript and a recording each, notified once each.
    assert "Graph validated" in out and "holds 2 subscriptions" in out
    assert "Teams: 6 meetings transcribed" in out and "12 accepted" in out
    # Meet: two calls, their transcripts and recordings pushed by Pub/Sub with Google's token.
    assert "Google Meet: 2 conferences transcribed" in out and "(HTTP 200: 4)" in out
    for rep in ("Maya Chen", "Jordan Brooks", "Tyler Reed"):
        assert rep in out
    assert "Scorecard" in out and "Strengths" in out and '"' in out  # quotes as evidence
    assert "Coaching agenda" in out and "Tyler Reed" in out and "what good looks like" in out
    assert "fields written (audit trail" in out and "shadow" in out
    assert "Waiting for a person's approval" in out and "wait in `coachloop crm review`" in out
    assert "Salesforce now holds 15 call Task(s)" in out
    assert "added a synthetic year of history" in out
    assert "Most associated with winning: Discovery depth" in out  # the history's truth
    assert "Association, not proof" in out
    assert "History Rep" not in out.split("Skills against won and lost deals")[0]
    assert "coachloop users invite" in out and "/auth/oidc/login" in out  # how to sign in
    assert "Open the web app" in out and "http://127.0.0.1:8000/app" in out
    assert "admin@acme-analytics.example" in out and "priya.nair@acme-analytics.example" in out
    assert re.search(r"/app/meetings/\d+\?t=\d+", out)  # the agenda links to the call page
    assert "failed" not in out
    # Again, as `make demo` twice: this run's sandboxes are new (other ports, empty
    # Salesforce); the earlier run's connections point at stopped ones and must not be used.
    again = subprocess.run([sys.executable, "-m", "cli", "demo"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "an earlier run's sandbox has stopped" in again.stdout
    assert "Salesforce now holds 15 call Task(s)" in again.stdout
    assert "failed" not in again.stdout and "cannot reach" not in again.stdout
    # The same org into HubSpot: it writes to one CRM, so every call is due there again.
    hubspot = subprocess.run([sys.executable, "-m", "cli", "demo", "--crm", "hubspot"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = hubspot.stdout
    assert hubspot.returncode == 0, out[-3000:] + hubspot.stderr[-3000:]
    assert "connected hubspot" in out and "skill scores: custom object" in out
    assert "HubSpot now holds 15 call engagement(s)" in out and "fields written" in out
    assert "0 skill-score record(s)" not in out
    assert "pulled 7 deal(s) from hubspot" in out
    assert "coachloop verified it and pulled the deal: won" in out
    assert "failed" not in out and "cannot reach" not in out


def test_serve_puts_the_app_on_the_public_url(tmp_path):
    """`coachloop serve`: the pages and the API on the public URL's loopback port."""
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLOOP_")}
    env.update(COACHLOOP_DATA_DIR=str(tmp_path / "data"),
               COACHLOOP_PUBLIC_URL=f"http://127.0.0.1:{port}")
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/app/sign-in", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    server.stdout.read() if server.poll() is not None else "no answer"
                time.sleep(0.3)
        assert page.status_code == 200 and "Sign in" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    taken = subprocess.run([sys.executable, "-m", "cli", "serve"], cwd=tmp_path, env={
        **env, "COACHLOOP_PUBLIC_URL": "https://coachloop.example"}, capture_output=True,
        text=True, timeout=120)
    assert taken.returncode == 1 and "TLS proxy" in taken.stdout + taken.stderr
