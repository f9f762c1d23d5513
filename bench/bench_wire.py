"""Wire-size benchmark: bytes per record on the wire for a simulated day, vs gzipped JSON.

    python -m bench.bench_wire [--hours 24] [--seed 7]

Simulates one vehicle for a day (seeded, so every run prints the same table):

- 1 Hz positions (86,400 a day) from a receiver on a truck that parks overnight and drives a duty
  day of trips and stops: speed follows urban/rural/highway targets with bounded acceleration and
  traffic stops, heading follows a curvature random walk with turns. The receiver adds a correlated
  error (AR(1), 1 m, 30 s) and prints NMEA resolutions (lat/lon to 1e-5 minute, speed to 0.001 kn,
  course to 0.01 degree, altitude to 0.1 m, HDOP to 0.01); course is absent below 0.5 m/s.
- samples of 15 J1939 signals (engine speed 0.125 rpm/bit, wheel speed 1/256 km/h/bit, ...), decoded
  each second while the engine runs and kept by a 1 Hz rate + per-signal deadband gate with a 60 s
  heartbeat (about 10 samples/s while the engine runs);
- a few hundred events (idle started/ended, harsh braking, geofence entered/exited, trips, a DTC).

Records get outbox ids in time order, then are cut into batches three ways (60 s, 300 s, 1000
records) and sealed with ``edge_agent.wire.seal`` (signature and header included in the bytes).
The baseline is ``gzip -6`` of ``json.dumps`` of the same records per batch, without any envelope.
"moving positions" are the positions with a course (>= 0.5 m/s), batched as many per batch as a
window holds while driving (60, 300) so partly filled windows do not inflate their cost.
"By kind" in mixed batches is marginal: (bytes of all records - bytes without that kind) / count.

Targets (wire issue): <= 12 bytes per position record; >= 3x smaller than gzipped JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import time
from collections.abc import Callable, Iterable

from edge_agent.wire import GENESIS_HASH, Batch, WireRecord, batch_hash, generate_private_key, open_batch, seal

START = 1_764_547_200.0  # 2025-12-01 00:00:00 UTC
LAT0, LON0 = 52.52, 13.40
M_PER_DEG_LAT = 111_320.0
KNOT_MPS = 1852.0 / 3600.0

Rec = dict[str, object]

# name, unit, source, scale, offset, deadband
SIGNALS: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("engine_speed", "rpm", "j1939:0x00", 0.125, 0.0, 10.0),
    ("wheel_speed", "km/h", "j1939:0x00", 1 / 256, 0.0, 0.5),
    ("engine_load", "%", "j1939:0x00", 1.0, 0.0, 2.0),
    ("accel_pedal", "%", "j1939:0x00", 0.4, 0.0, 1.0),
    ("fuel_rate", "L/h", "j1939:0x00", 0.05, 0.0, 0.2),
    ("coolant_temp", "degC", "j1939:0x00", 1.0, -40.0, 1.0),
    ("oil_pressure", "kPa", "j1939:0x00", 4.0, 0.0, 8.0),
    ("intake_temp", "degC", "j1939:0x00", 1.0, -40.0, 1.0),
    ("boost_pressure", "kPa", "j1939:0x00", 2.0, 0.0, 4.0),
    ("battery_voltage", "V", "j1939:0x00", 0.05, 0.0, 0.1),
    ("fuel_level", "%", "j1939:0x17", 0.4, 0.0, 0.4),
    ("ambient_temp", "degC", "j1939:0x00", 0.03125, -273.0, 0.25),
    ("actual_torque", "%", "j1939:0x00", 1.0, -125.0, 2.0),
    ("total_distance", "km", "j1939:0x17", 0.125, 0.0, 0.125),
    ("engine_hours", "h", "j1939:0x00", 0.05, 0.0, 0.05),
)
HEARTBEAT_S = 60.0


class Truck:
    """Kinematics and engine state, one step per second."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.x = self.y = 0.0
        self.v = 0.0
        self.heading = rng.uniform(0, 360)
        self.curv = 0.0
        self.target = 0.0
        self.road_left = 0
        self.hold = 0  # seconds left standing at a traffic stop
        self.dist_km = 182_345.0
        self.hours = 9_876.0
        self.fuel = 78.0
        self.coolant = 12.0
        self.err = [0.0, 0.0, 0.0]
        self.alt_base = 34.0
        self.hdop = 0.9
        self.sats = 11

    def step(self, driving: bool) -> float:
        """Advance one second; returns the acceleration (m/s^2)."""
        rng = self.rng
        if not driving:
            target = 0.0
        else:
            if self.road_left <= 0:
                self.target = rng.choice((8.0, 13.0, 13.0, 19.0, 22.0, 25.0))
                self.road_left = rng.randint(60, 900)
            self.road_left -= 1
            if self.hold > 0:
                self.hold -= 1
                target = 0.0
            elif self.target < 15 and rng.random() < 1 / 120:
                self.hold = rng.randint(10, 60)
                target = 0.0
            else:
                target = self.target + rng.gauss(0, 0.8)
        a = max(-2.5, min(1.2, (target - self.v) * 0.3 + rng.gauss(0, 0.15)))
        if rng.random() < 1 / 1500 and self.v > 8:
            a = -4.0  # a harsh brake now and then
        v0 = self.v
        self.v = max(0.0, self.v + a)
        if self.v > 0.3:
            self.curv = max(-0.02, min(0.02, self.curv * 0.95 + rng.gauss(0, 0.0004)))
            if self.v < 9 and rng.random() < 1 / 200:
                self.heading += rng.choice((-90.0, 90.0))  # a turn at a junction
            self.heading = (self.heading + math.degrees(self.curv * self.v)) % 360
        step = (v0 + self.v) / 2
        self.x += step * math.sin(math.radians(self.heading))
        self.y += step * math.cos(math.radians(self.heading))
        self.dist_km += step / 1000
        return self.v - v0

    def fix(self, t: float) -> dict[str, object]:
        """What the pipeline stores for one GNSS epoch (NMEA resolutions, receiver error)."""
        rng = self.rng
        k = math.exp(-1 / 30)
        self.err = [e * k + rng.gauss(0, math.sqrt(1 - k * k)) for e in self.err]
        lat = LAT0 + (self.y + self.err[1]) / M_PER_DEG_LAT
        lon = LON0 + (self.x + self.err[0]) / (M_PER_DEG_LAT * math.cos(math.radians(LAT0)))
        if rng.random() < 0.1:
            self.hdop = min(2.5, max(0.6, self.hdop + rng.gauss(0, 0.05)))
        if rng.random() < 1 / 30:
            self.sats = min(16, max(6, self.sats + rng.choice((-1, 1))))
        alt = self.alt_base + 6 * math.sin(self.x / 900) + 4 * math.cos(self.y / 1300) + 2 * self.err[2]
        payload: dict[str, object] = {
            "lat": _nmea_deg(lat),
            "lon": _nmea_deg(lon),
            "altitude_m": round(alt, 1),
            "speed_mps": round(max(0.0, self.v + rng.gauss(0, 0.03)) / KNOT_MPS, 3) * KNOT_MPS,
            "quality": 1,
            "satellites": self.sats,
            "hdop": round(self.hdop, 2),
            "mode": 3,
        }
        if self.v >= 0.5:
            payload["course_deg"] = round((self.heading + rng.gauss(0, 0.3)) % 360, 2)
        return payload

    def signals(self, engine: bool, a: float) -> list[float]:
        """Engineering values of SIGNALS (before scaling to bus resolution)."""
        rng = self.rng
        v = self.v
        load = max(0.0, min(100.0, 20 + 25 * a + v * 1.5 + rng.gauss(0, 3))) if v > 0.3 else 8 + rng.gauss(0, 1)
        rpm = 600 + v * 55 + rng.gauss(0, 15) if engine else 0.0
        self.coolant += (88 - self.coolant) / 300 if engine else (12 - self.coolant) / 3000
        self.hours += 1 / 3600 if engine else 0
        self.fuel -= load / 100 * 0.0006
        return [
            rpm, v * 3.6, load, max(0.0, min(100.0, load * 0.9 + rng.gauss(0, 2))), load * 0.45 + 1.5,
            self.coolant + rng.gauss(0, 0.3), 280 + v * 4 + rng.gauss(0, 5), 25 + load * 0.1 + rng.gauss(0, 0.4),
            100 + load * 1.5 + rng.gauss(0, 3), 27.9 + rng.gauss(0, 0.08), self.fuel, 6.5 + rng.gauss(0, 0.05),
            load * 0.8 + rng.gauss(0, 1), self.dist_km, self.hours,
        ]


def _nmea_deg(deg: float) -> float:
    """Degrees as an NMEA sentence gives them (whole degrees + minutes to 5 decimals)."""
    sign = -1.0 if deg < 0 else 1.0
    d = int(abs(deg))
    minutes = round((abs(deg) - d) * 60, 5)
    return sign * (d + minutes / 60)


def schedule(rng: random.Random, seconds: int) -> list[bool]:
    """Driving flag per second: parked until ~05:30, trips and stops until ~19:30, then parked."""
    out = [False] * seconds
    t = 5 * 3600 + rng.randint(0, 3600)
    end = min(seconds, 19 * 3600 + rng.randint(0, 3600))
    while t < end:
        trip = rng.randint(20 * 60, 100 * 60)
        for i in range(t, min(end, t + trip)):
            out[i] = True
        t += trip + rng.randint(3 * 60, 40 * 60)
    return out


def simulate(seed: int, hours: float) -> list[Rec]:
    """All records of the day, in time order, with outbox ids."""
    rng = random.Random(seed)
    truck = Truck(rng)
    seconds = int(hours * 3600)
    driving = schedule(rng, seconds)
    recs: list[tuple[float, Rec]] = []
    last_sent: list[tuple[float, float] | None] = [None] * len(SIGNALS)
    phase = [rng.uniform(0, 0.9) for _ in SIGNALS]
    fences = [rng.randint(0, seconds) for _ in range(80)]
    trip_start: float | None = None
    stop_start: float | None = None

    def event(t: float, kind: str, priority: int, payload: dict[str, object]) -> None:
        recs.append((t, {"kind": kind, "priority": priority, "timestamp": t, "payload": payload}))

    for s in range(seconds):
        t = START + s
        engine = driving[s] or any(driving[max(0, s - 300) : s])  # idles 5 min after a trip
        a = truck.step(driving[s])
        ts_fix = t + 0.0
        pos = truck.fix(ts_fix)
        recs.append((ts_fix, {"kind": "position", "priority": 10, "timestamp": ts_fix, "payload": pos}))
        if engine:
            for i, (value, sig) in enumerate(zip(truck.signals(engine, a), SIGNALS, strict=True)):
                name, unit, source, scale, offset, deadband = sig
                raw = round((value - offset) / scale)
                decoded = raw * scale + offset
                ts = round(t + phase[i] + rng.uniform(0, 0.004), 6)
                prev = last_sent[i]
                if prev is None or abs(decoded - prev[1]) >= deadband or ts - prev[0] >= HEARTBEAT_S:
                    last_sent[i] = (ts, decoded)
                    payload = {"signal": name, "value": decoded, "unit": unit, "source": source}
                    recs.append((ts, {"kind": "sample", "priority": 10, "timestamp": ts, "payload": payload}))
        if a <= -3.0:
            event(t, "harsh_brake", 20, {"decel_mps2": round(-a, 2), "speed_before_mps": round(truck.v - a, 2),
                                         "lat": pos["lat"], "lon": pos["lon"]})
        if driving[s] and trip_start is None:
            trip_start = t
            event(t, "trip_started", 20, {"odometer_km": round(truck.dist_km, 3)})
        if not driving[s] and trip_start is not None:
            event(t, "trip_ended", 20, {"duration_s": t - trip_start, "odometer_km": round(truck.dist_km, 3)})
            trip_start = None
        idle = engine and truck.v < 0.3
        if idle and stop_start is None:
            stop_start = t
        elif not idle and stop_start is not None:
            if t - stop_start >= 60:
                event(stop_start + 60, "idle_started", 20, {"lat": pos["lat"], "lon": pos["lon"]})
                event(t, "idle_ended", 20, {"duration_s": t - stop_start, "fuel_used_l": round((t - stop_start)
                                                                                               * 0.0004, 3)})
            stop_start = None
        if driving[s] and rng.random() < 1 / 400:
            fence = rng.choice(fences)
            event(t, rng.choice(("geofence_entered", "geofence_exited")), 20,
                  {"geofence": f"depot-{fence % 23}", "name": f"Depot {fence % 23}", "lat": pos["lat"],
                   "lon": pos["lon"]})
        if s == seconds // 2:
            event(t, "dtc_status", 30, {"protocol": "j1939", "message": "DM1", "source": "j1939:0x00",
                                        "lamps": {"mil": "off", "red_stop": "off", "amber_warning": "on",
                                                  "protect": "off"},
                                        "dtcs": [{"spn": 110, "fmi": 0, "oc": 1, "cm": 0}]})
    recs.sort(key=lambda r: r[0])
    out: list[Rec] = []
    for i, (t, rec) in enumerate(recs, start=1):
        rec["id"] = i
        rec["received_at"] = round(t + 0.08 + rng.uniform(0, 0.03), 6)
        out.append(rec)
    return out


def by_window(records: list[Rec], seconds: float) -> list[list[Rec]]:
    groups: dict[int, list[Rec]] = {}
    for r in records:
        groups.setdefault(int((float(r["timestamp"]) - START) // seconds), []).append(r)  # type: ignore[arg-type]
    return [groups[k] for k in sorted(groups)]


def by_count(records: list[Rec], n: int) -> list[list[Rec]]:
    return [records[i : i + n] for i in range(0, len(records), n)]


def wire_bytes(batches: Iterable[list[Rec]]) -> tuple[int, int]:
    """(total sealed bytes, number of batches) with a real key and a real hash chain; each blob is
    opened again (signature verified, body decoded) so a size is only counted for a readable batch."""
    key = generate_private_key()
    prev = GENESIS_HASH
    total = count = 0
    for seq, group in enumerate(batches):
        if not group:
            continue
        records = tuple(WireRecord(r["id"], r["kind"], r["priority"], r["timestamp"], r["received_at"],  # type: ignore[arg-type]
                                   r["payload"]) for r in group)  # type: ignore[arg-type]
        blob = seal(Batch("truck-0042", 1, seq, prev, float(group[-1]["received_at"]), records), key)  # type: ignore[arg-type]
        prev = batch_hash(blob)
        assert len(open_batch(blob, lambda _d: key.public_key()).records) == len(records)
        total += len(blob)
        count += 1
    return total, count


def gzip_json_bytes(batches: Iterable[list[Rec]]) -> int:
    return sum(len(gzip.compress(json.dumps(g).encode(), compresslevel=6, mtime=0)) for g in batches if g)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    records = simulate(args.seed, args.hours)
    t_sim = time.perf_counter() - t0
    kinds = {"position": [r for r in records if r["kind"] == "position"],
             "sample": [r for r in records if r["kind"] == "sample"]}
    kinds["event"] = [r for r in records if r["kind"] not in ("position", "sample")]
    moving = [r for r in kinds["position"] if "course_deg" in r["payload"]]  # type: ignore[operator]
    print(f"simulated {args.hours:g} h (seed {args.seed}): {len(kinds['position'])} positions "
          f"({len(moving)} moving), {len(kinds['sample'])} samples, {len(kinds['event'])} events")
    # (cut, records per batch of moving positions: a window's worth of 1 Hz positions while driving)
    cuts: dict[str, tuple[Callable[[list[Rec]], list[list[Rec]]], int]] = {
        "60 s": (lambda rs: by_window(rs, 60), 60),
        "300 s": (lambda rs: by_window(rs, 300), 300),
        "1000 rec": (lambda rs: by_count(rs, 1000), 1000),
    }
    empty = len(seal(Batch("truck-0042", 1, 1, GENESIS_HASH, START, ()), generate_private_key()))
    print(f"fixed envelope per batch (magic, header incl. 32 B chain hash, 64 B Ed25519 signature, empty body): "
          f"{empty} B")
    head = (f"{'batching':<9} {'content':<16} {'records':>8} {'batches':>7} {'wire B':>10} {'B/rec':>6} "
            f"{'gzJSON B/rec':>12} {'ratio':>6} {'us/rec':>6}  {'marginal B/rec by kind in the mixed batches'}")
    print(head)
    print("-" * len(head))
    for cut_name, (cut, moving_n) in cuts.items():
        contents = {"positions only": kinds["position"], "moving positions": moving,
                    "samples only": kinds["sample"], "events only": kinds["event"], "mixed": records}
        mixed_total = 0
        for content, rs in contents.items():
            # Moving positions are scattered over the day's windows; batch them as a driving window would.
            batches = by_count(rs, moving_n) if content == "moving positions" else cut(rs)
            t0 = time.perf_counter()
            total, n = wire_bytes(batches)
            us = (time.perf_counter() - t0) / len(rs) * 1e6
            gz = gzip_json_bytes(batches)
            extra = ""
            if content == "mixed":
                mixed_total = total
                parts = []
                for kind, krs in kinds.items():
                    ids = {id(r) for r in krs}
                    without, _ = wire_bytes(cut([r for r in records if id(r) not in ids]))
                    parts.append(f"{kind} {(mixed_total - without) / max(1, len(krs)):.2f}")
                extra = ", ".join(parts)
            print(f"{cut_name:<9} {content:<16} {len(rs):>8} {n:>7} {total:>10} {total / len(rs):>6.2f} "
                  f"{gz / len(rs):>12.2f} {gz / total:>5.1f}x {us:>6.1f}  {extra}")
    print("targets: <= 12 B per position record; >= 3x smaller than gzipped JSON")
    print(f"(simulation took {t_sim:.0f} s; 'us/rec' is seal + open per record, pure Python, one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
