"""A seeded fuzzer for the API: forged and malformed webhooks, oversized bodies, odd
encodings, traversal paths, made-up credentials. Used by tests/test_fuzz.py (about 2,000
requests in CI) and bench/fuzz.py (10,000 and more).

Each request says what it is and whether a correct server may accept it: only well-formed
deliveries signed with the right secret may be stored; nothing else may be, no request may
get a 5xx, and no made-up credential may read anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What a fuzzing run saw."""

    requests: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    forgeries_accepted: list[str] = field(default_factory=list)
    credentials_accepted: list[str] = field(default_factory=list)
    signed_accepted: int = 0

    def line(self) -> str:
        return (f"{self.requests} requests: {len(self.server_errors)} 5xx, "
                f"{len(self.forgeries_accepted)} forgeries accepted, "
                f"{len(self.credentials_accepted)} made-up credentials accepted, "
                f"{self.signed_accepted} well-formed signed events accepted; statuses "
                + ", ".join(f"{s}: {n}" for s, n in sorted(self.by_status.items())))


def _sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return {"x-zm-request-timestamp": str(timestamp),
            "x-zm-signature": f"v0={digest.hexdigest()}", "content-type": "application/json"}


def _event(rng: random.Random) -> dict:
    uuid = "".join(rng.choice("ABCDEFabcdef0123456789+/=") for _ in range(rng.randint(8, 30)))
    return {"event": rng.choice(["recording.completed", "recording.transcript_completed",
                                 "meeting.ended"]),
            "event_ts": rng.randint(0, 2**41), "download_token": "dl-" + uuid,
            "payload": {"account_id": rng.choice(["acct-1", "acct-2", None]),
                        "object": {"uuid": uuid, "topic": "Call", "recording_files": [
                            {"id": "f1", "file_type": "TRANSCRIPT",
                             "download_url": rng.choice(["https://zoom.us/rec/f1",
                                                         "https://evil.example/x",
                                                         "http://169.254.169.254/"])}]}}}


def _garbage(rng: random.Random) -> bytes:
    pick = rng.randrange(10)
    if pick == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
    if pick == 1:
        depth = rng.choice([40, 500, 5000, 50_000])
        return b'{"event":"recording.completed","payload":' + b"[" * depth + b"]" * depth + b"}"
    if pick == 2:
        return json.dumps(_event(rng)).encode(rng.choice(["utf-16", "utf-32", "utf-16-le"]))
    if pick == 3:
        event = _event(rng)
        event["payload"]["object"]["uuid"] = "x" * rng.choice([129, 5000, 500_000])
        return json.dumps(event).encode()
    if pick == 4:
        event = _event(rng)
        event["payload"]["object"]["topic"] = "a\u0000b"
        return json.dumps(event).encode()
    if pick == 5:
        return json.dumps(_event(rng)).encode()[: rng.randint(1, 60)]
    if pick == 6:
        return json.dumps(rng.choice([[], 1, "s", None, {"event": 3}, {"event": "x"}])).encode()
    if pick == 7:
        event = _event(rng)
        event["payload"] = rng.choice([[], "x", None, 7])
        return json.dumps(event).encode()
    if pick == 8:
        return json.dumps({"event": "endpoint.url_validation",
                           "payload": {"plainToken": rng.choice([7, None, "x" * 300])}}).encode()
    return b"\xef\xbb\xbf" + json.dumps(_event(rng)).encode()  # a BOM


PATHS = ("/meetings", "/meetings/1", "/reps", "/team/skills", "/connections", "/crm/review",
         "/crm/history", "/auth/me", "/auth/tokens", "/connect/zoom", "/reps/a@b.c/skills",
         "/reps/a@b.c/agenda")
ODD_PATHS = ("/docs/assets/..%2f..%2fapi.py", "/docs/assets/%2e%2e/%2e%2e/etc/passwd",
             "/meetings/99999999999999999999999", "/meetings/-1", "/meetings/1e9",
             "/meetings/%00", "/reps/%2e%2e%2f/skills", "/webhooks/..%2f..%2fhealth",
             "/webhooks/zoom%00", "/connect/../../etc/passwd", "/connect/zoom/callback?code=&state=",
             "/connect/zoom/callback?code=x&state=" + "s" * 5000, "/%ff%fe", "/meetings?limit=-5",
             "/meetings?limit=" + "9" * 50, "/crm/review?status=" + "a" * 3000)


def run(client, secret: str, *, requests: int, seed: int, stored) -> Outcome:
    """Send `requests` fuzzed requests through `client` (a TestClient of the API, with the
    Zoom webhook secret `secret`); `stored()` counts stored webhook events."""
    rng = random.Random(seed)
    out = Outcome()
    for n in range(requests):
        kind = rng.choice(("forged", "forged", "signed-garbage", "signed-garbage", "signed-good",
                           "oversized", "odd-path", "made-up-credentials", "odd-method"))
        before = stored()
        now = int(time.time())
        headers: dict[str, str] = {}
        method, path, body = "POST", "/webhooks/zoom", b""
        if kind == "forged":
            body = json.dumps(_event(rng)).encode() if rng.random() < 0.7 else _garbage(rng)
            how = rng.randrange(5)
            if how == 0:
                headers = {"content-type": "application/json"}
            elif how == 1:
                headers = _sign("wrong-secret", body, now)
            elif how == 2:
                headers = _sign(secret, body, now - rng.choice([301, 3600, 86400 * 30]))
            elif how == 3:
                headers = _sign(secret, body, now)
                body = body + b" "  # signed, then changed
            else:
                headers = _sign(secret, body, now)
                last = headers["x-zm-signature"][-1]
                headers["x-zm-signature"] = headers["x-zm-signature"][:-1] + (
                    "1" if last == "0" else "0")  # one hex digit off
        elif kind == "signed-garbage":
            body = _garbage(rng)
            headers = _sign(secret, body, now)
        elif kind == "signed-good":
            body = json.dumps(_event(rng)).encode()
            headers = _sign(secret, body, now)
        elif kind == "oversized":
            body = b"{" + b" " * rng.choice([(1 << 20) + 1, 3 << 20]) + b"}"
            headers = _sign(secret, body, now) if rng.random() < 0.5 else {}
            path = rng.choice(["/webhooks/zoom", "/auth/login", "/crm/review"])
        elif kind == "odd-path":
            method, path = rng.choice(["GET", "POST", "DELETE"]), rng.choice(ODD_PATHS)
        elif kind == "made-up-credentials":
            method, path = "GET", rng.choice(PATHS)
            token = rng.choice(["clt_" + "A" * 43, "Bearer", "", "x" * 5000, "clt_\u00e9",
                                "' OR 1=1 --"])
            if rng.random() < 0.5:
                headers = {"authorization": f"Bearer {token}"}
            else:
                headers = {"cookie": f"coachloop_session={token}"}
        else:
            method, path = rng.choice(["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]), \
                rng.choice(PATHS + ("/webhooks/zoom",))
        try:
            response = client.request(method, path, content=body or None, headers=headers)
            status = response.status_code
        except Exception as exc:  # a client-side refusal (e.g. an unencodable header)
            out.by_kind[f"{kind} (not sent: {type(exc).__name__})"] += 1
            continue
        out.requests += 1
        out.by_kind[kind] += 1
        out.by_status[status] += 1
        label = f"#{n} {kind} {method} {path[:60]}"
        if status >= 500:
            out.server_errors.append(f"{label}: {status} {response.text[:120]}")
        grew = stored() > before
        if kind != "signed-good" and (grew or (200 <= status < 300 and kind != "odd-path")):
            if kind in ("forged", "signed-garbage", "oversized"):
                out.forgeries_accepted.append(f"{label}: {status}, stored {grew}")
        if kind == "made-up-credentials" and status < 400:
            out.credentials_accepted.append(f"{label}: {status}")
        if kind == "signed-good" and 200 <= status < 300:
            out.signed_accepted += 1
    return out
