"""Maintenance benchmark: what deriving readings and issues adds to ingest, and how long fleet views take.

    python -m bench.bench_maintenance [--vehicles 100] [--pg-url URL] [--skip-pg]

The traffic is real: the truck capture (``tests/data/sim/truck_j1939.log.gz``, 15 min with two DTCs coming and
going, an idle period, a trip and meter readings) replayed through the edge agent's own decoders and detectors
into an outbox, sealed into batches of ``BATCH_RECORDS`` as the uplink does, and ingested for ``--vehicles``
devices, one blob after another as one ingest worker would. The capture is event-dense (most of its batches
carry a meter or fault event); in steady driving a meter event comes every 15 minutes, so most batches carry
none and cost the derivation nothing but a scan of their record kinds.

Rows: ``ingest`` is the whole pipeline (all commit hooks); ``derivation`` the time spent in
``MaintenanceHook`` alone, per batch that carries maintenance events; then, with one service program applied
to every vehicle, ``fleet services`` (``GET /v1/maintenance/services``: every task's state and forecast),
``risk ranking`` (``GET /v1/maintenance/risk``), and ``issue + evidence`` (one issue with the samples
around its newest occurrence). Wall time on a shared machine follows database round trips.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench.bench_ingest import pg_database
from cloud_sync.ingest import Ingestor
from cloud_sync.maintenance import derive, faults, programs, risk
from cloud_sync.store import make_engine, migrate
from cloud_sync.store.devices import add_device
from edge_agent.outbox import Outbox
from edge_agent.replay import ReplayOptions, run_replay
from edge_agent.wire import GENESIS_HASH, Batch, WireRecord, batch_hash, generate_private_key, seal
from edge_agent.wire.sign import public_key_pem

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "sim" / "truck_j1939.log.gz"
BATCH_RECORDS = 500
WINDOW_DAYS = 30


def capture_records(tmp: Path) -> list[WireRecord]:
    run_replay(ReplayOptions(profile="heavy_truck_j1939", db=tmp / "outbox.db", can=CAPTURE))
    outbox = Outbox(tmp / "outbox.db")
    rows = outbox.claim(1_000_000)
    outbox.close()
    return sorted((WireRecord(r.id, r.kind, r.priority, r.timestamp, r.received_at, r.payload) for r in rows),
                  key=lambda r: r.id)


def seal_fleet(engine: Engine, records: list[WireRecord], vehicles: int) -> list[bytes]:
    blobs = []
    for v in range(vehicles):
        key, prev = generate_private_key(), GENESIS_HASH
        device = f"truck-{v:04d}"
        with engine.begin() as conn:
            add_device(conn, device, public_key_pem(key).decode("ascii"), depot="north")
        for seq, i in enumerate(range(0, len(records), BATCH_RECORDS)):
            part = tuple(records[i:i + BATCH_RECORDS])
            blob = seal(Batch(device, 1, seq, prev, part[-1].received_at + 1, part), key)
            prev = batch_hash(blob)
            blobs.append(blob)
    return blobs


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(engine: Engine, records: list[WireRecord], vehicles: int) -> list[tuple[str, str, float]]:
    migrate(engine)
    ingestor = Ingestor(engine)
    hook = derive.MaintenanceHook()
    spent = {"s": 0.0, "n": 0}

    def measured(conn: Any, batch: Any, received_at: float) -> None:
        start = time.perf_counter()
        hook(conn, batch, received_at)
        if not derive.DERIVED_KINDS.isdisjoint(batch.body.kinds):
            spent["s"] += time.perf_counter() - start
            spent["n"] += 1

    ingestor.commit_hooks = [h for h in ingestor.commit_hooks if not isinstance(h, derive.MaintenanceHook)]
    ingestor.commit_hooks.append(measured)
    blobs = seal_fleet(engine, records, vehicles)

    def ingest_all() -> None:
        for blob in blobs:
            assert ingestor.ingest(blob).status == "committed"

    wall = timed(ingest_all)
    rows = [("ingest", f"per batch ({len(blobs)})", wall / len(blobs)),
            ("derivation", f"per batch with events ({spent['n']})", spent["s"] / max(spent["n"], 1))]
    now = time.time()
    with engine.begin() as conn:
        program = programs.create_program(conn, "bench", None, now)
        programs.add_task(conn, program.id, "oil", {"odometer_km": (20_000.0, 1_000.0), "engine_hours": (500.0, 25.0),
                                                    "calendar": (365.0, 30.0)}, now)
        programs.assign(conn, program.id, programs.select_devices(conn, "north", None), records[0].timestamp, now)
    with engine.connect() as conn:
        rows.append(("fleet services", f"per call, {vehicles} vehicles",
                     timed(lambda: programs.vehicle_services(conn, None, now, WINDOW_DAYS))))
        rows.append(("risk ranking", f"per call, {vehicles} vehicles",
                     timed(lambda: risk.ranking(conn, now, WINDOW_DAYS))))
        issue = faults.list_issues(conn, "truck-0000")[0]
        rows.append(("issue + evidence", "per call", timed(lambda: faults.evidence(
            conn, issue.device_id, issue.last_record_id, issue.last_seen_at))))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--pg-url", default=os.environ.get("FLEET_TEST_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        records = capture_records(Path(tmp))
        print(f"truck capture: {len(records)} records, {sum(r.kind != 'sample' for r in records)} not samples, "
              f"in batches of {BATCH_RECORDS}; {args.vehicles} vehicles")
        results = [("sqlite", run(make_engine(f"sqlite:///{tmp}/cloud.db"), records, args.vehicles))]
        if not args.skip_pg:
            with pg_database(args.pg_url) as url:
                engine = make_engine(url)
                results.append(("postgresql", run(engine, records, args.vehicles)))
                engine.dispose()
    print(f"{'store':<11} {'what':<18} {'':<28} {'ms':>9}")
    for store, rows in results:
        for what, over, seconds in rows:
            print(f"{store:<11} {what:<18} {over:<28} {seconds * 1000:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
