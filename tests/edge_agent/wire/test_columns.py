"""The columnar decode (``open_columns``, what the cloud ingest uses) holds exactly what ``open_batch``
gives, for the golden files and for traffic like a vehicle's; both with the compiled varint kernel
and with its pure-Python twin (marked native: CI runs it twice)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_agent.wire import (
    GENESIS_HASH,
    Batch,
    BatchColumns,
    VerificationError,
    WireRecord,
    generate_private_key,
    load_private_key,
    open_batch,
    open_columns,
    seal,
)
from edge_agent.wire.golden import KEY_FILE, to_jsonable

pytestmark = pytest.mark.native

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "wire"
KEY = load_private_key(DATA / KEY_FILE)


def _same(columns: BatchColumns, batch: Batch) -> None:
    assert to_jsonable(columns.to_batch()) == to_jsonable(batch)  # JSON form: NaN != NaN
    assert columns.key == batch.key and len(columns) == len(batch.records)


@pytest.mark.parametrize("path", sorted((DATA / "v1").glob("*.bin")), ids=lambda p: p.stem)
def test_golden_files_decode_identically_as_columns(path: Path) -> None:
    blob = path.read_bytes()
    lookup = {"golden-dev-01": KEY.public_key()}.get
    _same(open_columns(blob, lookup), open_batch(blob, lookup))


def test_mixed_traffic_with_odd_payloads_decodes_identically() -> None:
    rng = random.Random(7)
    recs = []
    for i in range(400):
        if i % 10 == 0:
            extra = {} if i % 20 else {"speed_mps": rng.uniform(0, 30), "satellites": rng.randint(0, 30)}
            recs.append(WireRecord(i, "position", 10, 1e9 + i, 1e9 + i + 0.01,
                                   {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180), **extra}))
        elif i % 37 == 0:
            recs.append(WireRecord(i, "dtc_status", 20, 1e9 + i, 1e9 + i, {"spn": i, "backlog_records": 3}))
        else:
            value = rng.choice([rng.randint(0, 8000) * 0.125, float("nan"), -0.0, 2**70, rng.random()])
            recs.append(WireRecord(i, "sample", 5, 1e9 + i / 10, 1e9 + i / 10, {
                "signal": f"s{i % 7}", "value": value, "unit": rng.choice(["rpm", "°C"]), "source": "j1939:0x00"}))
    key = generate_private_key()
    blob = seal(Batch("dev-1", 1, 0, GENESIS_HASH, 1e9, tuple(recs)), key)
    lookup = {"dev-1": key.public_key()}.get
    columns = open_columns(blob, lookup)
    _same(columns, open_batch(blob, lookup))
    assert len(columns.body.generic) == sum(1 for i in range(400) if i % 10 and i % 37 == 0)
    assert BatchColumns.of(columns.to_batch()).body.records() == columns.to_batch().records


def test_a_record_outside_the_model_limits_is_rejected_as_columns_too() -> None:
    key = generate_private_key()
    blob = seal(Batch("dev-1", 1, 0, GENESIS_HASH, 1e9, (WireRecord(1, "k", 0, 1e9, 1e9),)), key)
    lookup = {"dev-1": key.public_key()}.get
    assert len(open_columns(blob, lookup)) == 1
    with pytest.raises(VerificationError) as err:
        open_columns(blob[:-1] + bytes([blob[-1] ^ 1]), lookup)
    assert err.value.reason == "bad_signature"
