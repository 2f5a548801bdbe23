"""How scoring time grows with transcript length, in one run.

    python bench/scoring_scale.py [--sizes 1000 2000 4000 8000 16000]

Builds calls of N cues (alternating rep and buyer, sentences that touch every MEDDIC
criterion and field) and times the built-in scorer, deal facts included, on each. Prints
seconds per size and, for each doubling, the ratio of times: 2.0 is linear, 4.0 quadratic.
A transcript over `COACHLOOP_MAX_SEGMENTS` (20,000 cues) is refused before scoring.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LINES = ("So who signs off on a purchase like this?",
         "Our CFO, Dana Ruiz, has the final say on anything over fifty thousand.",
         "What does that cost you today?",
         "About 40 hours a month and roughly $120,000 a year in pricing mistakes.",
         "Are you looking at anyone else?",
         "We also looked at Gong, and maybe an in-house build.",
         "What happens after you approve?",
         "Legal reviews it, then procurement issues the purchase order by March.",
         "Great, thanks.", "Sounds good to me.")


def call(n: int):
    from core.domain import Role, TranscriptSegment, TranscriptView

    segments, clock = [], 0.0
    for i in range(n):
        role = Role.REP if i % 2 == 0 else Role.BUYER
        segments.append(TranscriptSegment(i, clock, clock + 3, LINES[i % len(LINES)], role,
                                          f"{role.value}@example.com", 0.9,
                                          "Jo Park" if role == Role.REP else "Dana Ruiz"))
        clock += 3.5
    return TranscriptView(1, tuple(segments), "platform")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000])
    args = parser.parse_args()
    from core.rubrics import builtin_rubric
    from core.score import BuiltinScorer

    rubric = builtin_rubric("meddic")
    BuiltinScorer().score(call(50), rubric)  # imports and regex compilation out of the way
    times = {}
    for n in args.sizes:
        view = call(n)
        started = time.perf_counter()
        BuiltinScorer().score(view, rubric)
        times[n] = time.perf_counter() - started
        print(f"{n:>7,} cues: {times[n]:7.2f} s  ({times[n] / n * 1000:.2f} ms per cue)",
              flush=True)
    sizes = sorted(times)
    for small, big in zip(sizes, sizes[1:]):
        growth = times[big] / times[small]
        print(f"{small:,} → {big:,} cues (×{big / small:g}): time ×{growth:.2f}")


if __name__ == "__main__":
    main()
