"""Webhook intake under load: signed, distinct Zoom `recording.completed` deliveries from an
async client at several concurrencies, against the API on PostgreSQL with a Redis broker.

    python bench/webhooks.py [--seconds 20] [--concurrency 1 8 32 128] [--workers 2]

Starts `uvicorn api:app` (plain HTTP on loopback, `--workers N`) on a fresh PostgreSQL
database, sends for `--seconds` at each concurrency, then counts: stored rows must equal the
accepted deliveries (each distinct key once) and the broker must hold exactly one task per
stored event (nothing lost, nothing twice). Prints accepted/s, p50 and p99 latency, the
ratio of accepted/s to the 1,000/s goal, and the CPU each accepted event cost the API, the
client and the rest of the machine (what bounds the rate on a small machine). No worker runs: the tasks stay queued to be counted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-webhook-secret"
PG = os.environ.get("COACHLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("COACHLOOP_TEST_REDIS", "redis://127.0.0.1:6379")


def signed(n: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": "recording.completed", "event_ts": int(time.time() * 1000),
                       "payload": {"account_id": "acct-bench", "object": {
                           "uuid": f"{uuid.uuid4()}-{n}", "topic": "Bench call",
                           "recording_files": []}}}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return body, {"content-type": "application/json", "x-zm-request-timestamp": stamp,
                  "x-zm-signature": f"v0={digest.hexdigest()}"}


async def load(port: int, concurrency: int, seconds: float, offset: int
               ) -> tuple[int, list[float]]:
    """Each sender keeps one connection and writes each request in one piece, as a vendor's
    sender with TCP_NODELAY does (a client that writes headers and body separately adds
    Nagle's 40 ms to every request, which would measure the client, not us)."""
    latencies: list[float] = []
    accepted = 0
    deadline = time.perf_counter() + seconds
    counter = [offset]

    async def sender() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while time.perf_counter() < deadline:
                counter[0] += 1
                body, headers = signed(counter[0])
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                request = (f"POST /webhooks/zoom HTTP/1.1\r\nHost: bench\r\n{head}"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if b" 200 " in status_line and b'"accepted"' in answer:
                    accepted += 1
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return accepted, latencies


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in a process group (the uvicorn workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, …
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf(
        "SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import psycopg
    import redis

    name = f"bench_webhooks_{os.getpid()}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    prefix = f"bench-{os.getpid()}-"
    env = {**os.environ, "COACHLOOP_DATABASE_URL": url, "COACHLOOP_BROKER_URL": f"{REDIS}/0",
           "COACHLOOP_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": prefix}),
           "COACHLOOP_ZOOM__WEBHOOK_SECRET_TOKEN": SECRET,
           "COACHLOOP_DATA_DIR": f"/tmp/{name}", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", "from core.db import migrate; migrate()"], env=env,
                   check=True, cwd=ROOT)
    # The account is connected, as in steady state: each event is matched to its org.
    with psycopg.connect(PG.rsplit("/", 1)[0] + f"/{name}") as conn:
        org_id = conn.execute("INSERT INTO org (name, domains, created_at) VALUES ('Bench', "
                              "'[]', now()) RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO connection (org_id, provider, account_ref, auth_kind, scopes,"
                     " status, created_at, updated_at) VALUES (%s, 'zoom', 'acct-bench', "
                     "'oauth', '[]', 'active', now(), now())", (org_id,))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "api:app", "--port", str(port),
                               "--workers", str(args.workers), "--log-level", "warning",
                               "--no-access-log"], env=env, cwd=ROOT, start_new_session=True)
    try:
        import httpx

        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        total = 0
        print(f"uvicorn --workers {args.workers}, PostgreSQL, Redis broker; "
              f"{args.seconds:g} s per level")
        for level in args.concurrency:
            server_cpu, client_cpu = group_cpu_seconds(server.pid), time.process_time()
            busy, elapsed = machine_cpu_seconds()
            accepted, latencies = asyncio.run(load(port, level, args.seconds,
                                                   (total + 1) * 1000))
            server_cpu = group_cpu_seconds(server.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            busy, elapsed = (a - b for a, b in zip(machine_cpu_seconds(), (busy, elapsed)))
            total += accepted
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            rate = accepted / args.seconds
            print(f"concurrency {level:>4}: {rate:8.0f} accepted/s  p50 {p50:6.1f} ms  "
                  f"p99 {p99:7.1f} ms  ratio to 1,000/s goal {rate / 1000:.2f}", flush=True)
            per = 1000 / max(accepted, 1)
            print(f"{'':>18}CPU per accepted event: API {server_cpu * per:.2f} ms, this "
                  f"client {client_cpu * per:.2f} ms, everything else (PostgreSQL, Redis) "
                  f"{(busy - server_cpu - client_cpu) * per:.2f} ms; machine "
                  f"{busy / elapsed:.0%} busy", flush=True)
        queued, rows, keys, settle = -1, 0, 0, time.monotonic() + 30
        while time.monotonic() < settle:  # the relay publishes what is stored, then stops
            with psycopg.connect(PG.rsplit("/", 1)[0] + f"/{name}") as conn:
                rows, keys = conn.execute("SELECT count(*), count(DISTINCT dedupe_key) "
                                          "FROM webhookevent").fetchone()
            now_queued = redis.Redis.from_url(f"{REDIS}/0").llen(f"{prefix}default")
            if now_queued == queued and queued >= rows:
                break
            queued = now_queued
            time.sleep(1)
        print(f"accepted {total}, stored {rows} ({keys} distinct keys), queued tasks {queued}: "
              + ("nothing lost, nothing twice" if total == rows == keys == queued
                 else "MISMATCH"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        r = redis.Redis.from_url(f"{REDIS}/0")
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
