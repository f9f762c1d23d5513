"""Rows built from a columnar batch: the payload JSON assembled from columns is byte for byte what
``dumps_payload`` writes for the decoded dict, and awkward text survives COPY (PostgreSQL) and
executemany (SQLite) on both the first store and the conflict path."""

from __future__ import annotations

import random

from sqlalchemy import select

from cloud_sync.ingest import Ingestor
from cloud_sync.store import schema
from cloud_sync.store.bulk import copy_text
from cloud_sync.store.engine import dumps_payload
from cloud_sync.store.rows import batch_rows
from edge_agent.wire import GENESIS_HASH, Batch, WireRecord, generate_private_key, open_batch, open_columns, seal
from tests.cloud_sync.helpers import T0, SimDevice, mixed_records

ODD = ['a"b', "back\\slash", "tab\there", "new\nline", "°C", "漢字 🚚", "{brace}", "nul\x00"]


def _odd_records() -> list[WireRecord]:
    rng = random.Random(3)
    recs = mixed_records(rng, 1, 300, T0)
    for i, text in enumerate(ODD):
        recs.append(WireRecord(1000 + i, "sample", 1, T0 + i, T0 + i, {
            "signal": text, "value": [float("nan"), -0.0, 2**80, float("inf"), 1.5, 7, 0.1, 3e300][i],
            "unit": ODD[-1 - i], "source": text}))
    recs.append(WireRecord(2000, "kind\twith\\odd", 3, T0, T0, {"note": "back\\slash\ttab", "n": [1, 2.5]}))
    recs.append(WireRecord(2001, "position", 10, T0, T0, {"lat": 1.0, "lon": 2.0, "hdop": 0.7, "mode": 2}))
    return recs


def _open(recs: list[WireRecord]):
    key = generate_private_key()
    blob = seal(Batch("dev-1", 1, 0, GENESIS_HASH, T0, tuple(recs)), key)
    return open_columns(blob, {"dev-1": key.public_key()}.get), open_batch(blob, {"dev-1": key.public_key()}.get)


def test_payload_text_is_what_dumps_payload_writes() -> None:
    columns, batch = _open(_odd_records())
    records, positions, events = batch_rows(columns, T0 + 5)
    assert list(records.columns["payload"]) == [dumps_payload(r.payload) for r in batch.records]
    assert len(positions) == sum(1 for r in batch.records if r.kind == "position")
    assert list(events.columns["kind"]) == [r.kind for r in batch.records if r.kind not in ("sample", "position")]


def test_copy_text_has_one_line_per_row_and_escapes_text() -> None:
    columns, batch = _open(_odd_records())
    records, _positions, _events = batch_rows(columns, T0 + 5)
    lines = copy_text(records).split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(batch.records)
    assert all(line.count("\t") == 9 for line in lines[:-1])
    assert "kind\\twith\\\\odd" in copy_text(records)


def test_odd_text_round_trips_through_the_store_first_and_again(engine) -> None:
    dev = SimDevice("truck-01")
    dev.register(engine)
    ing = Ingestor(engine)
    recs = [r for r in _odd_records() if "\x00" not in r.payload.get("signal", "")]  # jsonb refuses NUL: own test
    first = dev.batch(recs)
    assert ing.ingest(first, T0 + 10).status == "committed"
    # the same records again in a later batch: the conflict path (unnest / executemany), not COPY
    assert ing.ingest(dev.batch(recs), T0 + 20).status == "committed"
    with engine.connect() as conn:
        rows = conn.execute(select(schema.records.c.record_id, schema.records.c.kind, schema.records.c.payload,
                                   schema.records.c.seq).order_by(schema.records.c.record_id)).all()
        events = conn.execute(select(schema.events.c.kind, schema.events.c.payload)).all()
    assert [r.record_id for r in rows] == sorted(r.id for r in recs)
    assert {r.seq for r in rows} == {0}  # the earliest batch keeps each record
    by_id = {r.id: r for r in open_batch(first, {dev.device_id: dev.key.public_key()}.get).records}
    for row in rows:
        want = by_id[row.record_id]
        assert row.kind == want.kind
        assert dumps_payload(row.payload) == dumps_payload(want.payload)  # NaN: stored tagged, as dumps tags it
    assert [(e.kind, e.payload) for e in events if e.kind.startswith("kind")] == [
        ("kind\twith\\odd", {"note": "back\\slash\ttab", "n": [1, 2.5]})]
