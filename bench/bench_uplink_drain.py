"""Backlog drain end to end: an outbox backlog through the uplink, Mosquitto and ingest workers into the store.

    python -m bench.bench_uplink_drain [--records 500000] [--workers 1 2] [--pg-url URL] [--skip-pg]

Fills an outbox with ``--records`` records shaped as the pipeline makes them (1 Hz positions with nine
J1939 samples between them, an event every 37), then for each store (a fresh SQLite file; a fresh
PostgreSQL database on ``--pg-url``) and each worker count: starts Mosquitto on a free loopback port,
the workers (``python -m cloud_sync.worker`` processes on one shared subscription) and the uplink (in
this process, on a copy of the filled outbox), and times from the uplink's start until the outbox is
empty, that is until every record is committed in the store and acked. Prints records/s, batches,
sealed bytes per record, and the uplink process's CPU seconds. Needs ``mosquitto`` (see
tests/mqtt_broker.py).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.bench_ingest import DEFAULT_PG, pg_database
from cloud_sync.store import make_engine, migrate
from cloud_sync.store.devices import add_device
from edge_agent.counters import Counters
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttTransport, Uplink, UplinkSettings
from edge_agent.wire import generate_private_key
from edge_agent.wire.sign import public_key_pem
from tests.mqtt_broker import Mosquitto, Proc, find_mosquitto

DEVICE = "bench-truck-01"
T0 = 1_764_028_800.0
SIGNALS = [("engine_speed", "rpm", 0.125), ("wheel_speed", "km/h", 1 / 256), ("coolant_temp", "°C", 1.0),
           ("fuel_level", "%", 0.4), ("battery_voltage", "V", 0.05)]


def records(n: int) -> Iterator[Record]:
    """A drive: a noisy track at 1 Hz, noisy signal values (real traffic does not compress like a ramp)."""
    rng = random.Random(1)
    lat, lon = 48.137154, 11.576124
    for i in range(n):
        t = T0 + i / 10
        if i % 10 == 0:
            lat, lon = lat + rng.uniform(-2e-4, 2e-4), lon + rng.uniform(-2e-4, 2e-4)
            yield Record("position", Priority.PERIODIC, t, {
                "lat": round(lat, 7), "lon": round(lon, 7), "altitude_m": round(520 + rng.uniform(-3, 3), 1),
                "speed_mps": round(rng.uniform(0, 30), 2), "course_deg": round(rng.uniform(0, 360), 2),
                "quality": 1, "satellites": rng.randint(6, 12), "hdop": 0.9, "mode": 3})
        elif i % 37 == 0:
            yield Record("idle_started", Priority.EVENT, t, {"lat": lat, "lon": lon, "threshold_s": 180})
        else:
            name, unit, scale = SIGNALS[i % len(SIGNALS)]
            yield Record("sample", Priority.PERIODIC, t, {"signal": name, "value": rng.randint(0, 8000) * scale,
                                                          "unit": unit, "source": "j1939:0x00"})


def fill(path: Path, n: int) -> None:
    with Outbox(path) as outbox:
        chunk: list[Record] = []
        for r in records(n):
            chunk.append(r)
            if len(chunk) == 10_000:
                outbox.append(chunk)
                chunk = []
        outbox.append(chunk)


class Sizes:
    """Counts sealed bytes by wrapping the transport's publish."""

    def __init__(self, transport: MqttTransport) -> None:
        self.bytes = 0
        self._publish = transport.publish
        transport.publish = self.publish  # type: ignore[method-assign]

    def publish(self, topic: str, payload: bytes) -> int | None:
        self.bytes += len(payload)
        return self._publish(topic, payload)


def drain(work: Path, template: Path, db_url: str, workers: int, n: int) -> dict[str, float]:
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto not installed")
    key = generate_private_key()
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        add_device(conn, DEVICE, public_key_pem(key).decode("ascii"))
    engine.dispose()
    run = Path(tempfile.mkdtemp(dir=work))
    broker = Mosquitto(binary, run / "broker")
    broker.start()
    procs = [Proc("cloud_sync.worker", "--broker", broker.address, "--database", db_url, "--client-id",
                  f"ingest-{i}", "--log-level", "WARNING", log_path=run / f"worker{i}.log") for i in range(workers)]
    try:
        for p in procs:
            p.wait_line('"subscribed"')
        shutil.copy(template, run / "outbox.db")
        counters = Counters()
        settings = UplinkSettings(host=broker.host, port=broker.port, linger_s=0.0, max_inflight=8, max_queued=16,
                                  ack_timeout_s=120.0)
        outbox = Outbox(run / "outbox.db", counters=counters)
        transport = MqttTransport(settings, DEVICE, counters)
        sizes = Sizes(transport)
        uplink = Uplink(outbox, transport, key, DEVICE, settings, counters)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        uplink.start()
        while outbox.depth() > 0:
            uplink.tick()
            time.sleep(0.001)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        uplink.close()
        outbox.close()
        if counters.get("records_uplinked") != n:
            raise SystemExit(f"uplinked {counters.get('records_uplinked')} of {n}")
        return {"seconds": wall, "rate": n / wall, "batches": counters.get("batches_sent"),
                "bytes_per_record": sizes.bytes / n, "cpu": cpu, "timeouts": counters.get("ack_timeouts")}
    finally:
        for p in procs:
            p.terminate()
        broker.stop()
        shutil.rmtree(run, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pg-url", default=os.environ.get("FLEET_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        template = work / "template.db"
        t = time.perf_counter()
        fill(template, args.records)
        print(f"outbox filled with {args.records} records in {time.perf_counter() - t:.1f} s\n")
        print(f"{'store':<11} {'workers':>7} {'seconds':>8} {'records/s':>10} {'batches':>8} {'B/record':>9} "
              f"{'uplink cpu s':>12} {'timeouts':>8}")
        stores = ["sqlite"] + ([] if args.skip_pg else ["postgresql"])
        for store in stores:
            for w in args.workers:
                try:
                    if store == "sqlite":
                        r = drain(work, template, f"sqlite:///{work / f'cloud-{w}.db'}", w, args.records)
                    else:
                        with pg_database(args.pg_url) as url:
                            r = drain(work, template, url, w, args.records)
                except Exception as exc:  # a missing PostgreSQL is a row in the table, not a crash
                    print(f"{store:<11} {w:>7} unavailable: {type(exc).__name__}: {exc}")
                    continue
                print(f"{store:<11} {w:>7} {r['seconds']:>8.1f} {r['rate']:>10,.0f} {r['batches']:>8.0f} "
                      f"{r['bytes_per_record']:>9.1f} {r['cpu']:>12.1f} {r['timeouts']:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
