"""A simulated device (real Ed25519 key, real sealed chained batches) and a canonical dump of the store."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from cloud_sync.store import schema
from cloud_sync.store.devices import add_device
from edge_agent.wire import GENESIS_HASH, Batch, WireRecord, batch_hash, seal
from edge_agent.wire.sign import public_key_pem

T0 = 1_764_028_800.0  # 2025-11-25 00:00:00 UTC


def mixed_records(rng: random.Random, first_id: int, n: int, t0: float) -> list[WireRecord]:
    """Realistic traffic: 1 Hz positions, samples between them, now and then an event."""
    out: list[WireRecord] = []
    lat, lon = 48.137154 + rng.uniform(-0.1, 0.1), 11.576124 + rng.uniform(-0.1, 0.1)
    signals = [("engine_speed", "rpm", 0.125), ("wheel_speed", "km/h", 1 / 256), ("coolant_temp", "°C", 1.0),
               ("fuel_level", "%", 0.4)]
    t = t0
    for i in range(n):
        rid = first_id + i
        slot = i % 10
        if slot == 0:
            t += 1.0
            lat += rng.uniform(-2e-4, 2e-4)
            lon += rng.uniform(-2e-4, 2e-4)
            payload: dict[str, Any] = {"lat": lat, "lon": lon, "altitude_m": round(520 + rng.uniform(-3, 3), 1),
                                       "speed_mps": round(rng.uniform(0, 30), 2), "course_deg": round(
                                           rng.uniform(0, 360), 2), "quality": 1, "satellites": 9, "hdop": 0.9,
                                       "mode": 3}
            out.append(WireRecord(rid, "position", 10, t, t + 0.05, payload))
        elif slot == 9 and rng.random() < 0.3:
            kind = rng.choice(["idle_started", "idle_ended", "dtc_status", "geofence_enter"])
            payload = {"lat": lat, "lon": lon, "spn": rng.randint(1, 5000), "note": "ok"}
            out.append(WireRecord(rid, kind, 20, t + 0.9, t + 0.95, payload))
        else:
            name, unit, scale = signals[slot % len(signals)]
            value = rng.randint(0, 8000) * scale
            out.append(WireRecord(rid, "sample", 10, t + slot / 10, t + slot / 10 + 0.01,
                                  {"signal": name, "value": value, "unit": unit, "source": "j1939:0x00"}))
    return out


@dataclass
class SimDevice:
    """Seals chained batches the way the uplink will: seq never repeats, prev_hash links every batch."""

    device_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    boot_epoch: int = 1
    seq: int = 0
    prev: bytes = GENESIS_HASH
    next_id: int = 1

    @property
    def public_pem(self) -> str:
        return public_key_pem(self.key).decode("ascii")

    def register(self, engine: Engine, **kwargs: Any) -> None:
        with engine.begin() as conn:
            add_device(conn, self.device_id, self.public_pem, **kwargs)

    def batch(self, records: list[WireRecord], created_at: float | None = None) -> bytes:
        created = created_at if created_at is not None else (records[-1].received_at + 1 if records else T0)
        blob = seal(Batch(self.device_id, self.boot_epoch, self.seq, self.prev, created, tuple(records)), self.key)
        self.seq += 1
        self.prev = batch_hash(blob)
        return blob

    def records(self, rng: random.Random, n: int, t0: float = T0) -> list[WireRecord]:
        out = mixed_records(rng, self.next_id, n, t0)
        self.next_id += n
        return out

    def reboot(self) -> None:
        """A new boot epoch: seq continues, the chain continues across the boundary."""
        self.boot_epoch += 1


def _canon(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def dump(engine: Engine, *, with_cloud_times: bool = True) -> dict[str, Any]:
    """Records, batches, positions, events and open gaps in a canonical (sorted, comparable) form."""
    out: dict[str, Any] = {}
    tables = {"records": schema.records, "batches": schema.batches, "positions": schema.positions,
              "events": schema.events}
    with engine.connect() as conn:
        for name, table in tables.items():
            cols = [c for c in table.c if with_cloud_times or c.name not in ("received_at", "cloud_received_at")]
            rows = conn.execute(select(*cols).order_by(*table.primary_key.columns)).all()
            out[name] = [tuple(_canon(v) for v in row) for row in rows]
        g = schema.chain_gaps.c
        out["open_gaps"] = conn.execute(select(g.device_id, g.boot_epoch, g.seq_from, g.seq_to)
                                        .where(g.filled_at.is_(None)).order_by(g.device_id, g.seq_from)).all()
    return out


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())
