"""A real agent process for the reliability tests: appends numbered records to an outbox while its uplink runs.

``python -m tests.edge_agent.uplink.chaos_agent --db OUTBOX --key KEY.pem --broker HOST:PORT --total N``

Record ``n`` carries ``{"n": n}``. The feeder's progress is committed in the same transaction as its
records (outbox state ``feeder``), so a SIGKILL at any instant neither skips nor repeats a record:
what the cloud ends with can be checked against ``range(N)`` exactly. Every ``FAULT_EVERY``-th record
is a fault (higher priority) so batches mix priorities as on a vehicle. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from edge_agent.counters import Counters
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttTransport, Uplink, UplinkSettings
from edge_agent.wire import load_private_key

DEVICE = "truck-0042"
T0 = 1_764_028_800.0
FAULT_EVERY = 97
TICK_S = 0.01


def record(n: int, t0: float) -> Record:
    if n % FAULT_EVERY == FAULT_EVERY - 1:
        return Record("dtc_active", Priority.FAULT, t0 + n, {"n": n, "spn": 110, "fmi": 0})
    return Record("position", Priority.PERIODIC, t0 + n, {"n": n, "lat": 48.1 + n * 1e-6, "lon": 11.5 + n * 1e-6})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--broker", required=True)
    p.add_argument("--total", type=int, required=True)
    p.add_argument("--rate", type=float, default=300.0, help="records appended per second")
    p.add_argument("--quota-bytes", type=int)
    p.add_argument("--t0", type=float, default=T0)
    p.add_argument("--ack-timeout", type=float, default=2.0)
    p.add_argument("--max-batch-records", type=int, default=500)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, _, port = args.broker.rpartition(":")
    settings = UplinkSettings(host=host, port=int(port), ack_timeout_s=args.ack_timeout, linger_s=0.05,
                              reconnect_min_s=0.05, reconnect_max_s=0.5, reconnect_jitter_s=0.05,
                              max_batch_records=args.max_batch_records, reject_backoff_s=0.5,
                              backlog_report_s=0.0)  # the test counts records exactly
    counters = Counters()
    outbox = Outbox(args.db, quota_bytes=args.quota_bytes, counters=counters)
    uplink = Uplink(outbox, MqttTransport(settings, DEVICE, counters), load_private_key(args.key), DEVICE, settings,
                    counters)
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)  # the test's SIGTERM must not arrive before the handler is in place
    uplink.start()
    state = outbox.get_state("feeder") or {}
    n = int(state.get("next", 0))  # type: ignore[call-overload]
    started = time.monotonic()
    first = n
    while not stop:
        due = min(args.total, first + int((time.monotonic() - started) * args.rate) + 1)
        if n < due:
            outbox.append([record(i, args.t0) for i in range(n, due)], state={"feeder": {"next": due}})
            n = due
        uplink.tick()
        time.sleep(TICK_S)
    uplink.close()
    print(json.dumps({"next": n, "counters": counters.snapshot(), "depth": outbox.depth()}), flush=True)
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
