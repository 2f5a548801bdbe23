"""Skill recompute at team scale on PostgreSQL: the SQL roll-up against the previous
Python roll-up (every criterion row loaded as an ORM object), in one run.

    python bench/skills.py [--calls 20000] [--reps 50]

Generates `--calls` scored calls (two rubrics of 25 criteria each: 1,000,000 criterion
rows at the default), then times a full `refresh_skills` with each roll-up and
reports peak RSS for each (measured in a fresh child process apiece), then the incremental
refresh after one new scored call. Prints seconds, MB and the ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("COACHLOOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SKILLS = ("discovery_depth", "business_impact", "multi_threading", "decision_process",
          "budget_qualification", "urgency_timeline", "competitive_positioning")

CHILD = r'''
import resource, sys, time
from datetime import date, datetime, timezone
sys.path.insert(0, {root!r})
import core.skill_refresh as skill_refresh
AS_OF = date(2026, 11, 20)
if {mode!r} == "python":  # the previous roll-up, kept as the oracle of tests/test_skill_rollup.py
    from tests.test_skill_rollup import python_rollup
    skill_refresh.skill_observations = lambda session, org_id, since=None, rep_ids=None: \
        python_rollup(session, org_id)
if {mode!r} == "incremental":  # one more scored call for one rep, then a refresh, twice:
    import random  # the second as in a worker, whose process has run one already
    from core.db import session_scope
    from core.models import Rubric, User
    from sqlmodel import select
    from tests.test_skill_rollup import add_call
    skill_refresh.refresh_skills({org_id}, AS_OF)  # today's snapshots exist
    times = []
    for rep_index in range(2):
        with session_scope() as session:
            rep = session.exec(select(User.id).where(User.org_id == {org_id})).all()[rep_index]
            rubrics = session.exec(select(Rubric.id).where(Rubric.org_id == {org_id})).all()
            add_call(session, random.Random(), {org_id}, rep, rubrics,
                     datetime(2026, 11, 19, 15, tzinfo=timezone.utc), f"new-{{rep_index}}")
        started = time.perf_counter()
        n = skill_refresh.refresh_skills({org_id}, AS_OF)
        times.append(time.perf_counter() - started)
    print(times[1], times[0], n)
else:
    started = time.perf_counter()
    n = skill_refresh.refresh_skills({org_id}, AS_OF, full=True)
    print(time.perf_counter() - started,
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, n)
'''


def populate(url: str, calls: int, reps: int) -> int:
    import psycopg

    from core.db import migrate

    migrate(url.replace("postgresql://", "postgresql+psycopg://"))
    rng = random.Random(1)
    with psycopg.connect(url) as conn:
        org_id = conn.execute("INSERT INTO org (name, domains, created_at) VALUES "
                              "('Bench', '[]', now()) RETURNING id").fetchone()[0]
        rep_ids = [conn.execute("INSERT INTO \"user\" (org_id, name, email, other_emails, role,"
                                " failed_logins, disabled) VALUES (%s, %s, %s, '[]', 'rep', 0,"
                                " false) RETURNING id", (org_id, f"rep {n}",
                                                         f"rep{n}@bench.example")).fetchone()[0]
                   for n in range(reps)]
        rubric_ids = [conn.execute("INSERT INTO rubric (org_id, key, name, version, content, "
                                   "created_at) VALUES (%s, %s, %s, '1', '{}', now()) "
                                   "RETURNING id", (org_id, k, k)).fetchone()[0]
                      for k in ("meddic", "bant")]
        meetings = io.StringIO()
        base = datetime(2026, 8, 23, tzinfo=timezone.utc)
        for m in range(calls):
            at = base + timedelta(days=rng.randrange(89), minutes=rng.randrange(600))
            meetings.write(f"{org_id}\tfiles\tm{m}\tcall {m}\t{at.isoformat()}\t\t\t"
                           f"scored\t{{}}\t{base.isoformat()}\t{base.isoformat()}\n")
        with conn.cursor().copy("COPY meeting (org_id, source, external_id, title, started_at,"
                                " content_hash, origin, stage, conversation, created_at, "
                                "updated_at) FROM STDIN") as cp:
            cp.write(meetings.getvalue())
        meeting_ids = [r[0] for r in conn.execute("SELECT id FROM meeting ORDER BY id")]
        scores = io.StringIO()
        for meeting_id in meeting_ids:
            rep = rng.choice(rep_ids)
            for rubric_id in rubric_ids:
                scores.write(f"{org_id}\t{meeting_id}\t{rubric_id}\t{rep}\tbuiltin\t1\t"
                             "2026-08-23\n")
        with conn.cursor().copy("COPY callscore (org_id, meeting_id, rubric_id, rep_id, scorer,"
                                " scorer_version, created_at) FROM STDIN") as cp:
            cp.write(scores.getvalue())
        call_ids = [r[0] for r in conn.execute("SELECT id FROM callscore ORDER BY id")]
        with conn.cursor().copy("COPY criterionscore (org_id, call_score_id, criterion, skill, "
                                "score, max_score, weight, confidence, rationale, state, "
                                "evidence) FROM STDIN") as cp:
            evidence = ('[{"quote": "We spend about forty hours a month reconciling reports, '
                        'and last quarter a pricing mistake cost us 120,000 dollars.", '
                        '"start": 61.2, "end": 67.9, "segment_id": 12}]')
            rationale = ("The rep asked about Metrics and the buyer answered concretely, and "
                         "the rep played it back to confirm.")
            for call_id in call_ids:
                rows = []
                for c in range(25):  # 25 criteria per rubric, two rubrics a call
                    score = "\\N" if rng.random() < 0.1 else f"{rng.randrange(5)}.0"
                    rows.append(f"{org_id}\t{call_id}\tc{c}\t{rng.choice(SKILLS)}\t{score}\t"
                                f"4.0\t1.0\t0.7\t{rationale}\tscored\t{evidence}\n")
                cp.write("".join(rows))
        conn.commit()
        count = conn.execute("SELECT count(*) FROM criterionscore").fetchone()[0]
    print(f"{calls:,} calls, {reps} reps, {count:,} criterion rows", flush=True)
    return org_id


def run(url: str, org_id: int, mode: str) -> tuple[float, float]:
    code = CHILD.format(root=str(ROOT), mode=mode, org_id=org_id)
    env = {**os.environ, "COACHLOOP_DATABASE_URL": url.replace("postgresql://",
                                                                "postgresql+psycopg://")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    import psycopg

    name = f"bench_skills_{os.getpid()}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0] + f"/{name}"
    try:
        started = time.perf_counter()
        org_id = populate(url, args.calls, args.reps)
        print(f"(generated in {time.perf_counter() - started:.0f} s)")
        new_s, new_mb = run(url, org_id, "sql")
        old_s, old_mb = run(url, org_id, "python")
        inc_s, inc_cold_s = run(url, org_id, "incremental")
        print(f"full recompute, SQL roll-up:    {new_s:6.1f} s, peak RSS {new_mb:6.0f} MB")
        print(f"full recompute, Python roll-up: {old_s:6.1f} s, peak RSS {old_mb:6.0f} MB")
        print(f"after one new call, incremental: {inc_s * 1000:5.0f} ms in a warm process "
              f"(a worker's), {inc_cold_s * 1000:.0f} ms in a fresh one")
        print(f"ratio SQL / Python: time {new_s / old_s:.2f}, memory {new_mb / old_mb:.2f}")
        print(f"ratio incremental / full SQL: {inc_s / new_s:.3f}")
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
