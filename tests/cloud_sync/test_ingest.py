"""Ingest against real SQLite and PostgreSQL stores with batches sealed by real Ed25519 keys."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud_sync.ingest import UNREADABLE_DEVICE, Ingestor
from cloud_sync.metrics import Metrics
from cloud_sync.store import schema
from cloud_sync.store.devices import revoke_device
from edge_agent.wire import Batch, WireRecord, batch_hash, seal
from tests.cloud_sync.helpers import T0, SimDevice, count, dump

NOW = T0 + 86_400.0


def _setup(engine, device_id: str = "truck-01") -> tuple[SimDevice, Ingestor, random.Random]:
    dev = SimDevice(device_id)
    dev.register(engine, vin="1M8GDM9AXKP042788", profile="heavy_truck_j1939")
    return dev, Ingestor(engine, Metrics()), random.Random(7)


def _assert_empty(engine) -> None:
    for table in (schema.records, schema.batches, schema.positions, schema.events, schema.chain_gaps):
        assert count(engine, table) == 0, table.name


def test_valid_stream_commits_every_record_with_three_times(engine):
    dev, ing, rng = _setup(engine)
    chunks = [dev.records(rng, 50) for _ in range(3)]
    blobs = [dev.batch(c) for c in chunks]
    acks = [ing.ingest(b, received_at=NOW + i) for i, b in enumerate(blobs)]
    assert [(a.status, a.seq, a.stored) for a in acks] == [("committed", 0, 50), ("committed", 1, 50),
                                                           ("committed", 2, 50)]
    assert count(engine, schema.records) == 150
    with engine.connect() as conn:
        row = conn.execute(select(schema.records).where(schema.records.c.record_id == 60)).one()
    # record 60 went in the second batch: device time, edge-received time and cloud time all kept
    sent = next(r for r in chunks[1] if r.id == 60)
    assert abs(row.device_time - sent.timestamp) < 1e-3
    assert abs(row.edge_received_at - sent.received_at) < 1e-3
    assert row.cloud_received_at == NOW + 1
    assert (row.boot_epoch, row.seq) == (1, 1)
    assert ing.metrics.get("batches_committed") == 3 and ing.metrics.get("records_stored") == 150
    assert count(engine, schema.positions) == 15  # one position every ten records


def test_forged_batch_signed_with_another_key_is_rejected_and_nothing_stored(engine):
    dev, ing, rng = _setup(engine)
    forger = SimDevice(dev.device_id, key=Ed25519PrivateKey.generate())
    ack = ing.ingest(forger.batch(forger.records(rng, 20)), NOW)
    assert (ack.status, ack.reason) == ("rejected", "bad_signature")
    _assert_empty(engine)
    assert ing.metrics.rejections() == {"bad_signature": 1}


def test_tampered_batch_is_rejected_whichever_byte_flips(engine):
    dev, ing, rng = _setup(engine)
    blob = dev.batch(dev.records(rng, 20))
    reasons = set()
    for pos in (10, len(blob) // 2, len(blob) - 70, len(blob) - 1):
        bad = bytearray(blob)
        bad[pos] ^= 0x40
        ack = ing.ingest(bytes(bad), NOW)
        assert ack.status == "rejected"
        reasons.add(ack.reason)
    _assert_empty(engine)
    assert "bad_signature" in reasons
    assert ing.ingest(blob, NOW).status == "committed"  # the untouched blob is fine


def test_unknown_device_and_garbage_are_rejected(engine):
    _dev, ing, rng = _setup(engine)
    stranger = SimDevice("stranger-9")
    ack = ing.ingest(stranger.batch(stranger.records(rng, 5)), NOW)
    assert (ack.device_id, ack.status, ack.reason) == ("stranger-9", "rejected", "unknown_device")
    for junk in (b"", b"FTWB", b"GET / HTTP/1.1\r\n", bytes(range(256))):
        ack = ing.ingest(junk, NOW)
        assert ack.status == "rejected" and ack.device_id == UNREADABLE_DEVICE and ack.reason
    _assert_empty(engine)
    assert ing.metrics.get("batches_rejected") == 5


def test_revoked_device_is_rejected_from_revocation_on(engine):
    dev, ing, rng = _setup(engine)
    assert ing.ingest(dev.batch(dev.records(rng, 5)), NOW).status == "committed"
    with engine.begin() as conn:
        assert revoke_device(conn, dev.device_id, now=NOW)
    before = dump(engine)
    ack = ing.ingest(dev.batch(dev.records(rng, 5)), NOW + 1)
    assert (ack.status, ack.reason) == ("rejected", "revoked")
    assert dump(engine) == before


def test_duplicate_is_acked_and_changes_nothing(engine):
    dev, ing, rng = _setup(engine)
    blob = dev.batch(dev.records(rng, 30))
    assert ing.ingest(blob, NOW).status == "committed"
    before = dump(engine)
    ack = ing.ingest(blob, NOW + 100)
    assert (ack.status, ack.stored, ack.releases_rows) == ("duplicate", 0, True)
    assert dump(engine) == before
    assert ing.metrics.get("batches_duplicate") == 1


def test_replay_far_behind_the_window_is_rejected(engine):
    dev, _ing, rng = _setup(engine)
    ing = Ingestor(engine, Metrics(), seq_window=5)
    old = dev.batch(dev.records(rng, 3))  # seq 0, never delivered
    dev.seq = 20  # the cloud first hears of this epoch at seq 20 (the chain before it is unknown)
    assert ing.ingest(dev.batch(dev.records(rng, 3)), NOW).status == "committed"
    before = dump(engine)
    ack = ing.ingest(old, NOW)
    assert (ack.status, ack.reason) == ("rejected", "replay")
    assert dump(engine) == before


def test_same_identity_with_other_content_is_rejected(engine):
    dev, ing, rng = _setup(engine)
    first = dev.batch(dev.records(rng, 3))
    dev.seq, dev.prev = 0, bytes(32)
    other = dev.batch(dev.records(rng, 3))
    assert ing.ingest(first, NOW).status == "committed"
    before = dump(engine)
    assert (ing.ingest(other, NOW).reason) == "seq_reused"
    assert dump(engine) == before


def test_chain_broken_when_prev_hash_does_not_match_stored_predecessor(engine):
    dev, ing, rng = _setup(engine)
    assert ing.ingest(dev.batch(dev.records(rng, 3)), NOW).status == "committed"
    dev.prev = bytes([7]) * 32  # a fork: seq 1 claims another predecessor
    forked = dev.batch(dev.records(rng, 3))
    before = dump(engine)
    ack = ing.ingest(forked, NOW)
    assert (ack.status, ack.reason) == ("rejected", "chain_broken")
    assert dump(engine) == before


def test_chain_broken_is_also_seen_from_the_successor_side(engine):
    dev, ing, rng = _setup(engine)
    b0 = dev.batch(dev.records(rng, 3))
    dev.prev = bytes([9]) * 32
    b1 = dev.batch(dev.records(rng, 3))  # names a predecessor that is not b0
    assert ing.ingest(b1, NOW).status == "committed"  # gap: b0 unknown yet
    assert ing.ingest(b0, NOW).reason == "chain_broken"


def _gaps(engine):
    g = schema.chain_gaps.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(g.boot_epoch, g.seq_from, g.seq_to, g.filled_at)
                                               .order_by(g.seq_from))]


def test_gap_is_recorded_then_filled(engine):
    dev, ing, rng = _setup(engine)
    blobs = [dev.batch(dev.records(rng, 4)) for _ in range(5)]
    assert ing.ingest(blobs[0], NOW).status == "committed"
    assert ing.ingest(blobs[4], NOW + 1).status == "committed"
    assert _gaps(engine) == [(1, 1, 3, None)]
    assert ing.metrics.get("gaps_opened") == 1
    ing.ingest(blobs[2], NOW + 2)
    ing.ingest(blobs[1], NOW + 3)
    assert _gaps(engine) == [(1, 1, 3, None)]  # seq 3 still missing
    assert ing.ingest(blobs[3], NOW + 4).status == "committed"
    assert _gaps(engine) == [(1, 1, 3, NOW + 4)]
    assert count(engine, schema.records) == 20


def test_new_boot_epoch_continuing_the_chain_is_not_a_gap_in_either_order(engine):
    dev, ing, rng = _setup(engine)
    e1 = [dev.batch(dev.records(rng, 2)) for _ in range(2)]
    dev.reboot()
    e2 = [dev.batch(dev.records(rng, 2)) for _ in range(2)]
    ing.ingest(e2[0], NOW)  # epoch 2 before the end of epoch 1: looks like a gap ...
    ing.ingest(e1[1], NOW)
    ing.ingest(e2[1], NOW)
    ing.ingest(e1[0], NOW)
    assert [g[3] is not None for g in _gaps(engine)] == [True, True]  # ... filled once the link arrived


def test_record_resent_in_another_batch_is_stored_once(engine):
    dev, ing, rng = _setup(engine)
    recs = dev.records(rng, 10)
    first = dev.batch(recs[:6])
    dev.reboot()  # the edge crashed after sealing; its outbox re-batches rows 4..10
    second = dev.batch(recs[3:])
    assert ing.ingest(second, NOW).status == "committed"
    assert ing.ingest(first, NOW + 5).status == "committed"
    assert count(engine, schema.records) == 10
    with engine.connect() as conn:
        rows = conn.execute(select(schema.records.c.record_id, schema.records.c.boot_epoch,
                                   schema.records.c.cloud_received_at).order_by(schema.records.c.record_id)).all()
    # every record names the earliest batch that carried it, and its first arrival
    assert [(r.boot_epoch, r.cloud_received_at) for r in rows] == [(1, NOW + 5)] * 3 + [(1, NOW)] * 3 + [(2, NOW)] * 4


def test_late_data_from_far_in_the_past_is_accepted(engine):
    dev, ing, rng = _setup(engine)
    old = dev.records(rng, 10, t0=T0 - 90 * 86_400)  # three months late, after a long outage
    ack = ing.ingest(dev.batch(old, created_at=T0 - 90 * 86_400 + 20), NOW)
    assert ack.status == "committed"
    with engine.connect() as conn:
        times = conn.execute(select(schema.records.c.device_time)).scalars().all()
        skew = conn.execute(select(schema.device_health.c.clock_skew_s)).scalar_one()
    assert max(times) < T0 - 89 * 86_400
    assert skew > 89 * 86_400  # reported as skew (or backlog), never an error


def test_non_finite_and_unicode_payloads_round_trip_as_strict_json(engine):
    dev, ing, _rng = _setup(engine)
    recs = [WireRecord(1, "note", 0, T0, T0, {"x": float("nan"), "y": [float("-inf")], "t": "漢字 🚚",
                                                  "big": 2**80}),
            WireRecord(2, "position", 10, T0, T0, {"lat": float("nan"), "lon": 0.0})]
    assert ing.ingest(dev.batch(recs), NOW).status == "committed"
    with engine.connect() as conn:
        payloads = conn.execute(select(schema.records.c.payload).order_by(schema.records.c.record_id)).scalars().all()
        assert count(engine, schema.positions) == 0  # no fix: kept in records only
    assert payloads[0] == {"x": {"$float": "nan"}, "y": [{"$float": "-inf"}], "t": "漢字 🚚", "big": 2**80}


def test_backlog_reported_by_the_device_lands_in_health(engine):
    dev, ing, _rng = _setup(engine)
    recs = [WireRecord(1, "uplink_status", 20, T0, T0, {"backlog_records": 1234}),
            WireRecord(2, "uplink_status", 20, T0 + 5, T0 + 5, {"backlog_records": 99})]
    ing.ingest(dev.batch(recs), NOW)
    with engine.connect() as conn:
        h = conn.execute(select(schema.device_health)).one()
    assert (h.backlog_records, h.backlog_reported_at, h.batches_committed, h.records_received) == (99, T0 + 5, 1, 2)


def test_header_with_a_batch_signed_by_a_registered_but_unloadable_key(engine):
    _dev, ing, rng = _setup(engine)
    other = SimDevice("broken-key")
    with engine.begin() as conn:
        from cloud_sync.store.devices import add_device
        add_device(conn, "broken-key", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    ack = ing.ingest(other.batch(other.records(rng, 2)), NOW)
    assert (ack.status, ack.reason) == ("rejected", "bad_key")


def test_empty_batch_commits(engine):
    dev, ing, _rng = _setup(engine)
    blob = seal(Batch(dev.device_id, 1, 0, bytes(32), T0, ()), dev.key)
    assert ing.ingest(blob, NOW).status == "committed"
    assert count(engine, schema.batches) == 1


def test_values_the_database_cannot_hold_reject_the_batch_whole(engine):
    dev, ing, _rng = _setup(engine)
    recs = [WireRecord(1, "sample", 10, T0, T0, {"signal": "s", "value": 1, "unit": "", "source": "x"}),
            WireRecord(2, "note", 20, T0, T0, {"text": "a\x00b"}), WireRecord(3, "k\x00\t\n\\", 20, T0, T0, {})]
    ack = ing.ingest(dev.batch(recs), NOW)
    if engine.dialect.name == "postgresql":  # text and jsonb cannot hold NUL
        assert (ack.status, ack.reason) == ("rejected", "unstorable")
        _assert_empty(engine)
    else:
        assert ack.status == "committed"
        with engine.connect() as conn:
            kinds = conn.execute(select(schema.events.c.kind).order_by(schema.events.c.record_id)).scalars().all()
        assert kinds == ["note", "k\x00\t\n\\"]
    # the store is still usable afterwards
    assert ing.ingest(dev.batch([WireRecord(9, "note", 20, T0, T0, {"ok": True})]), NOW).status == "committed"


def test_every_ack_names_the_hash_of_the_blob_it_answers(engine):
    dev, ing, rng = _setup(engine)
    blob = dev.batch(dev.records(rng, 10))
    stranger = SimDevice("not-registered")
    tampered = bytearray(dev.batch(dev.records(rng, 10)))
    tampered[-1] ^= 1
    for data, status in ((blob, "committed"), (blob, "duplicate"), (b"not a batch", "rejected"),
                         (stranger.batch(stranger.records(rng, 3)), "rejected"), (bytes(tampered), "rejected")):
        ack = ing.ingest(data, NOW)
        assert ack.status == status
        assert ack.batch_hash == batch_hash(data)
