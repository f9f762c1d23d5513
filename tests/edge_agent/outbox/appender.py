"""Child process for the power-cut test: appends batches forever and reports each commit.

    python -m tests.edge_agent.outbox.appender DB SEED

Each batch carries consecutive sequence numbers in its payloads and commits ``{"last": seq}`` under
the state key ``progress`` in the same transaction. After ``append`` returns, the child prints the
batch's last sequence number and flushes stdout, so whatever the
parent reads was committed. Every few batches it claims some rows and never releases them (an uplink
that dies mid-send). It resumes numbering from the committed state, so it can be killed and started
again on the same file.
"""

from __future__ import annotations

import random
import sys

from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox

PROGRESS_KEY = "progress"


def main(db: str, seed: int) -> None:
    rng = random.Random(seed)
    with Outbox(db) as outbox:
        saved = outbox.get_state(PROGRESS_KEY) or {}
        seq = int(saved.get("last", 0))  # type: ignore[call-overload]
        while True:
            batch = []
            for _ in range(rng.randrange(1, 300)):
                seq += 1
                # Payload sizes vary so transactions span a varying number of pages.
                batch.append(Record("sample", Priority.PERIODIC, float(seq),
                                    {"seq": seq, "pad": "x" * rng.randrange(0, 400)}))
            outbox.append(batch, state={PROGRESS_KEY: {"last": seq}})
            if rng.random() < 0.2:
                outbox.claim(rng.randrange(1, 50))
            print(seq, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
