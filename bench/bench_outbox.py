"""Outbox benchmark: append throughput by batch size, the uplink's claim/delete, and bytes on disk.

    python -m bench.bench_outbox [--records 200000] [--dir DIR]

Appends records shaped as the pipeline makes them (a J1939 sample: signal, value, unit, source) to a
fresh outbox in ``--dir`` (a temporary directory by default; put it on the device's real medium to
measure that), in batches of 1, 100 and 2000 records. Every append is one ``synchronous=FULL``
transaction, so batch 1 measures the medium's fsync rate more than our code. Then the same at the
quota (every append evicts and updates the drop report), a claim/delete drain as the uplink does it,
and the file size per record for samples and positions after the last connection closed (WAL
checkpointed and removed), next to what the quota charges per record.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox


def sample(i: int) -> Record:
    return Record("sample", Priority.PERIODIC, 1_700_000_000.0 + i * 0.01,
                  {"signal": "engine_speed", "value": 800.0 + (i % 1600) * 0.125, "unit": "rpm",
                   "source": "j1939:0x00"})


def position(i: int) -> Record:
    return Record("position", Priority.PERIODIC, 1_700_000_000.0 + i,
                  {"lat": 52.520008 + i * 1e-6, "lon": 13.404954 - i * 1e-6, "altitude_m": 34.2,
                   "speed_mps": 13.89, "course_deg": 271.3, "quality": 1, "satellites": 9, "hdop": 0.9,
                   "mode": 3})


def timed(fn: Callable[[], int]) -> tuple[int, float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    n = fn()
    return n, time.perf_counter() - wall0, time.process_time() - cpu0


def bench_append(db: Path, batch: int, total: int, quota: int | None = None) -> tuple[int, float, float]:
    records = [sample(i) for i in range(total)]
    with Outbox(db, quota_bytes=quota) as outbox:
        if quota is not None:  # start at the quota (evictions begin), so every append below evicts
            while not outbox.counters.get("records_dropped"):
                outbox.append(records[:2000])

        def run() -> int:
            for i in range(0, total, batch):
                outbox.append(records[i : i + batch])
            return total

        return timed(run)


def bench_drain(db: Path, total: int, claim: int = 500) -> tuple[int, float, float]:
    with Outbox(db) as outbox:
        for i in range(0, total, 2000):
            outbox.append([sample(j) for j in range(i, min(total, i + 2000))])

        def run() -> int:
            n = 0
            while rows := outbox.claim(claim):
                outbox.delete([r.id for r in rows])
                n += len(rows)
            return n

        return timed(run)


def bytes_on_disk(db: Path, make: Callable[[int], Record], total: int) -> tuple[float, float]:
    with Outbox(db) as outbox:
        for i in range(0, total, 2000):
            outbox.append([make(j) for j in range(i, min(total, i + 2000))])
        charged = outbox.bytes_used() / outbox.depth()
    # Closing the last connection checkpoints the WAL into the file and removes it.
    return db.stat().st_size / total, charged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="records per batched run")
    parser.add_argument("--single", type=int, default=2_000, help="records for the batch-of-1 run")
    parser.add_argument("--dir", type=Path, help="where the outbox files go (default: a temporary dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        print(f"outbox files in {root}", flush=True)
        rows: list[tuple[str, int, float, float]] = []
        for batch, total in ((1, args.single), (100, args.records), (2000, args.records)):
            n, wall, cpu = bench_append(root / f"append_{batch}.db", batch, total)
            rows.append((f"append, batch {batch}", n, wall, cpu))
        n, wall, cpu = bench_append(root / "quota.db", 2000, args.records, quota=8 * 1024 * 1024)
        rows.append(("append at quota, batch 2000", n, wall, cpu))
        n, wall, cpu = bench_drain(root / "drain.db", args.records)
        rows.append(("claim 500 + delete", n, wall, cpu))
        print()
        print(f"{'operation':<30}{'records':>10}{'wall s':>9}{'CPU s':>8}{'records/s':>12}{'records/CPU s':>15}")
        for name, n, wall, cpu in rows:
            print(f"{name:<30}{n:>10}{wall:>9.2f}{cpu:>8.2f}{n / wall:>12,.0f}{n / cpu if cpu else 0:>15,.0f}")
        print()
        print(f"{'record kind':<30}{'records':>10}{'file B/record':>15}{'quota B/record':>16}")
        for kind, make in (("sample", sample), ("position", position)):
            on_disk, charged = bytes_on_disk(root / f"size_{kind}.db", make, args.records)
            print(f"{kind:<30}{args.records:>10}{on_disk:>15.1f}{charged:>16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
