"""Two ingest workers (threads with their own engines) racing over one device's stream store it once."""

from __future__ import annotations

import random
import threading

from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine
from tests.cloud_sync.helpers import SimDevice, dump

RECEIVED = 1_800_000_000.0


def test_two_workers_delivering_the_same_stream_store_every_batch_once(engine):
    dev = SimDevice("raced")
    dev.register(engine)
    rng = random.Random(11)
    blobs = [dev.batch(dev.records(rng, 40)) for _ in range(24)]
    orders = [list(range(len(blobs))), list(reversed(range(len(blobs))))]
    random.Random(3).shuffle(orders[1])
    acks: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(i: int) -> None:
        own = make_engine(engine.url.render_as_string(hide_password=False))
        try:
            ingestor = Ingestor(own)
            start.wait()
            for k in orders[i]:
                acks[i].append(ingestor.ingest(blobs[k], RECEIVED).status)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    statuses = acks[0] + acks[1]
    assert set(statuses) <= {"committed", "duplicate"}
    assert statuses.count("committed") == len(blobs)  # each batch committed by exactly one worker
    state = dump(engine)
    assert len(state["batches"]) == 24 and len(state["records"]) == 24 * 40 and state["open_gaps"] == []
