"""Writes the golden batch files that pin a wire format: ``python -m edge_agent.wire.golden OUTDIR``.

For each case it writes ``<name>.bin`` (a sealed batch) and ``<name>.json`` (the batch as
``open_batch`` must decode it, in ``to_jsonable`` form). Records come from a fixed seed and are
signed with the test-only key ``OUTDIR/../test_ed25519_key.pem`` (created from a fixed seed if
absent; Ed25519 signing is deterministic, so the files are reproducible byte for byte as long as
zlib's deflate is). The cases form one hash chain, as a device's batches do.

Run it only to create the files of a NEW format version (``OUTDIR`` = tests/data/wire/v<N>); the
files of a released version never change, and tests check that today's code still reads them and
writes them identically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import zlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.wire.codec import FORMAT_VERSION
from edge_agent.wire.model import GENESIS_HASH, Batch, WireRecord
from edge_agent.wire.sign import batch_hash, load_private_key, save_private_key, seal

SEED = 20_251_125
KEY_FILE = "test_ed25519_key.pem"
#: The test key is derived from this phrase, so a lost key file can be re-created identically.
KEY_SEED_PHRASE = b"fleet-telematics wire golden files: TEST ONLY, never provision this key"
DEVICE = "golden-dev-01"
T0 = 1_764_028_800.0  # 2025-11-25 00:00:00 UTC


def golden_key(path: Path) -> Ed25519PrivateKey:
    """The golden files' key: loaded from ``path``, or re-created from ``KEY_SEED_PHRASE`` and saved."""
    if path.exists():
        return load_private_key(path)
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(KEY_SEED_PHRASE).digest())
    save_private_key(key, path)
    return key


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}  # 'nan', 'inf', '-inf': JSON has no literal for them
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_jsonable(batch: Batch) -> dict[str, Any]:
    """A batch as strict JSON (hash in hex, non-finite floats tagged) for expected-output files."""
    return {
        "device_id": batch.device_id,
        "boot_epoch": batch.boot_epoch,
        "seq": batch.seq,
        "prev_hash": batch.prev_hash.hex(),
        "created_at": batch.created_at,
        "schema_version": batch.schema_version,
        "records": [
            {"id": r.id, "kind": r.kind, "priority": r.priority, "timestamp": r.timestamp,
             "received_at": r.received_at, "payload": _jsonable(r.payload)}
            for r in batch.records
        ],
    }


def _positions(rng: random.Random, first_id: int, n: int, t: float) -> list[WireRecord]:
    lat, lon, speed, course = -33.8688, 151.2093, 12.0, 45.0  # southern/eastern hemisphere
    out = []
    for i in range(n):
        speed = max(0.0, speed + rng.gauss(0, 0.4))
        course = (course + rng.gauss(0, 2)) % 360
        lat += speed * math.cos(math.radians(course)) / 111_320 + rng.gauss(0, 2e-7)
        lon += speed * math.sin(math.radians(course)) / 92_500 + rng.gauss(0, 2e-7)
        payload: dict[str, Any] = {"lat": lat, "lon": lon, "altitude_m": round(58 + rng.gauss(0, 0.5), 1),
                                   "speed_mps": speed, "quality": 1, "satellites": rng.randint(7, 12),
                                   "hdop": round(rng.uniform(0.7, 1.4), 2), "mode": 3}
        if i % 7 != 3:  # the receiver leaves course empty now and then
            payload["course_deg"] = round(course, 2)
        ts = t + i + rng.uniform(0, 0.0009)
        out.append(WireRecord(first_id + i, "position", 10, ts, ts + 0.05 + rng.uniform(0, 0.02), payload))
    return out


def _samples(rng: random.Random, first_id: int, t: float) -> list[WireRecord]:
    values: list[tuple[str, float | int, str, str]] = [
        ("engine_speed", 1234.125, "rpm", "j1939:0x00"),
        ("wheel_speed", 87.3984375, "km/h", "j1939:0x00"),
        ("battery_voltage", 27.85, "V", "j1939:0x00"),
        ("coolant_temp", 88.0, "°C", "j1939:0x00"),
        ("engine_speed", 1240.5, "rpm", "j1939:0x00"),
        ("gear", 7, "", "j1939:0x03"),
        ("fuel_level", 0.1 + 0.2, "%", "obd:0x7E8"),  # 0.30000000000000004: only raw binary64 is exact
        ("ambient_temp", float("nan"), "°C", "j1939:0x00"),
        ("ambient_temp", float("-inf"), "°C", "j1939:0x00"),
        ("torque", -0.0, "%", "j1939:0x00"),
        ("odometer", 2.0**60, "km", "j1939:0x17"),
        ("engine_speed", 1240.5, "rpm", "j1939:0x01"),  # same signal, another source
    ]
    return [
        WireRecord(first_id + i, "sample", 10, t + i * 0.1, t + i * 0.1 + 0.001,
                   {"signal": s, "value": v, "unit": u, "source": src})
        for i, (s, v, u, src) in enumerate(values)
    ]


def _others(first_id: int, t: float) -> list[WireRecord]:
    payloads: list[tuple[str, int, dict[str, Any]]] = [
        ("dtc_status", 30, {"protocol": "j1939", "message": "DM1", "source": "j1939:0x00",
                            "lamps": {"mil": "off", "red_stop": "off", "amber_warning": "on", "protect": "off"},
                            "dtcs": [{"spn": 110, "fmi": 0, "oc": 3, "cm": 0}]}),
        ("vehicle_id", 20, {"vin": "1M8GDM9AXKP042788", "source": "obd:0x7E8"}),
        ("idle_started", 20, {"lat": 48.137154, "lon": 11.576124, "duration_s": 300.0}),
        ("drop_report", 40, {"reason": "quota", "dropped": {"sample": 1200, "position": 0}, "oldest": T0 - 86400}),
        ("position", 10, {"lat": float("nan"), "lon": 0.0}),  # no fix: carried as is, not quantised
        ("position", 10, {"lat": 1.0, "lon": 2.0, "note": "extra key -> generic form"}),
        ("sample", 10, {"signal": "no_unit", "value": 1.5, "source": "x"}),
        ("note", 0, {"text": "ünïcödé ✓ 漢字 🚚", "big": 2**100, "neg": -(2**70), "nested": [[[]], {}, None, True],
                     "floats": [1.0, 0.494, 1e-300, 1e300, -0.0]}),
        ("empty_payload", -5, {}),
    ]
    return [WireRecord(first_id + i, k, p, t + i, t + i + 0.2, pl) for i, (k, p, pl) in enumerate(payloads)]


def cases() -> list[tuple[str, list[WireRecord]]]:
    rng = random.Random(SEED)
    positions = _positions(rng, 1, 40, T0 + 3600)
    samples = _samples(rng, 101, T0 + 3700)
    mixed = sorted(_positions(rng, 201, 10, T0 + 7200) + _samples(rng, 211, T0 + 7200.5)
                   + _others(231, T0 + 7201.25), key=lambda r: (r.timestamp, r.id))
    return [("01_empty", []), ("02_positions", positions), ("03_samples", samples), ("04_mixed", mixed)]


def write(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    key = golden_key(outdir.parent / KEY_FILE)
    prev = GENESIS_HASH
    written = []
    for seq, (name, records) in enumerate(cases()):
        batch = Batch(DEVICE, 3, seq, prev, T0 + 10_000 + seq * 60.5, tuple(records))
        blob = seal(batch, key)
        prev = batch_hash(blob)
        (outdir / f"{name}.bin").write_bytes(blob)
        doc = {"format_version": FORMAT_VERSION, "sealed_with_zlib": zlib.ZLIB_RUNTIME_VERSION,
               "sha256": prev.hex(), "batch": to_jsonable(batch_from_blob(blob, key))}
        text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        (outdir / f"{name}.json").write_text(text, encoding="utf-8")
        written += [outdir / f"{name}.bin", outdir / f"{name}.json"]
    return written


def batch_from_blob(blob: bytes, key: Ed25519PrivateKey) -> Batch:
    from edge_agent.wire.sign import open_batch

    return open_batch(blob, lambda _device: key.public_key())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write golden wire batch files (format "
                                     f"v{FORMAT_VERSION}) and their expected decodings.")
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    for path in write(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
