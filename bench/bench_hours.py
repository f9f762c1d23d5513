"""Driving-hours benchmark: one evaluation of a driver's history under each bundled rule pack.

    python -m bench.bench_hours [--days 28] [--repeat 20] [--seed 7]

Generates (seeded) duty timelines over ``--days`` days (the store reads four weeks, ``hours.LOOKBACK_S``):

(a) ``day shifts``: ten driving stints of up to 2:59 a day with on-duty gaps, then 10 h off;
(b) ``split sleeper``: the same stints with random off / sleeper / on-duty gaps of up to 3:59 and a 7 h sleeper
    period a day, so most rests are split-rest candidates and the US engine tries their pairings.

Prints segments, violations found and milliseconds per evaluation (median of ``--repeat``) per pack.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from cloud_sync.compliance import rulepack
from cloud_sync.compliance.duty import Segment, parse_timeline, timeline

START = 1_767_571_200  # Monday 5 January 2026 00:00 UTC


def _timeline(rng: random.Random, days: int, split: bool) -> tuple[list[Segment], int]:
    items = []
    for _ in range(days):
        for _ in range(10):
            items.append(f"D {rng.randint(0, 2)}:{rng.randint(0, 59):02d}")
            gap = rng.choice(["ON", "OFF", "SB"]) if split else "ON"
            hours = rng.randint(0, 3) if split else 0
            items.append(f"{gap} {hours}:{rng.randint(10, 59):02d}")
        items.append("SB 7:00" if split else "OFF 10:00")
    events = parse_timeline(items, START)
    return timeline(events, events[-1].at), events[-1].at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"{'timeline':<15} {'pack':<20} {'segments':>9} {'violations':>11} {'ms/evaluation':>14}")
    for label, split in (("day shifts", False), ("split sleeper", True)):
        segments, now = _timeline(rng, args.days, split)
        for name in rulepack.available():
            pack = rulepack.load(name)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                report = pack.evaluate(segments, now)
                times.append(time.perf_counter() - t)
            print(f"{label:<15} {name:<20} {len(segments):>9} {len(report.violations):>11} "
                  f"{statistics.median(times) * 1000:>14.1f}")


if __name__ == "__main__":
    main()
