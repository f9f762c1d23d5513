"""Power cut: a real process appending to the outbox is SIGKILLed at random moments, again and again.

After every kill the database must pass ``integrity_check``, hold every record the child reported as
committed, hold no half of a transaction (row ids follow the sequence numbers with no gap, and the
state committed with each batch matches the last stored record exactly), and have no row left in
flight once reopened.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.outbox import Outbox
from tests.edge_agent.outbox.appender import PROGRESS_KEY
from tests.edge_agent.outbox.helpers import raw_rows

ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 8


def _run_and_kill(db: Path, rng: random.Random) -> list[int]:
    """Start the appender, let it commit a random number of batches, SIGKILL it; the seqs it reported."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.edge_agent.outbox.appender", str(db), str(rng.randrange(2**31))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    reported: list[int] = []
    try:
        for _ in range(rng.randrange(1, 30)):
            line = child.stdout.readline()
            if not line:
                _, err = child.communicate(timeout=30)
                raise AssertionError(f"appender died on its own (rc {child.returncode}): {err}")
            reported.append(int(line))
        # Land anywhere in the next transactions: between statements, mid-commit, mid-fsync.
        time.sleep(rng.uniform(0.0, 0.03))
    finally:
        child.kill()  # SIGKILL: no handler, no atexit, no close
    out, _ = child.communicate(timeout=30)
    # Lines written before the kill were committed too; a torn last line is not a report.
    lines = out.split("\n")
    reported += [int(x) for x in lines[:-1] if x]
    return reported


def test_sigkill_during_appends_loses_nothing_committed(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    db = tmp_path / "outbox.db"
    reported: list[int] = []
    in_flight_seen = 0
    for round_ in range(ROUNDS):
        reported += _run_and_kill(db, rng)
        in_flight_seen += sum(row[6] for row in raw_rows(db))
        with Outbox(db) as outbox:
            context = f"seed {seed}, round {round_}"
            assert outbox.check() == "ok", context
            rows = raw_rows(db)
            assert all(row[6] == 0 for row in rows), context  # in-flight rows are pending again
            seqs = [json.loads(row[7])["seq"] for row in rows]  # in id order
            # Ids follow the sequence: no gap (a lost commit), no repeat, no half transaction.
            assert seqs == list(range(1, len(seqs) + 1)), context
            assert reported and max(reported) <= len(seqs), context
            assert outbox.get_state(PROGRESS_KEY) == {"last": len(seqs)}, context
            assert outbox.depth() == len(seqs)
    assert reported == sorted(reported)
    # The child claims rows now and then; at least one kill should have left some in flight.
    assert in_flight_seen > 0, f"seed {seed}"
