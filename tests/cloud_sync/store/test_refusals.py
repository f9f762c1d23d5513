"""Refused and abandoned batches (``cloud_sync.store.refusals``) through the real ``Ingestor``, SQLite and
PostgreSQL: a chain gap closes as explained only when every missing seq is accounted for."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_sync.ingest import Ingestor
from cloud_sync.metrics import Metrics
from cloud_sync.store import queries
from edge_agent.uplink.notices import NOTICE_KEY, NOTICE_KIND
from edge_agent.wire import WireRecord, batch_hash
from tests.cloud_sync.helpers import T0, SimDevice

NOW = T0 + 86_400.0
DEVICE = "truck-77"


def _setup(engine: Any) -> tuple[SimDevice, Ingestor]:
    dev = SimDevice(DEVICE)
    dev.register(engine)
    return dev, Ingestor(engine, Metrics())


def _position(dev: SimDevice) -> list[WireRecord]:
    rid = dev.next_id
    dev.next_id += 1
    return [WireRecord(rid, "position", 10, T0 + rid, T0 + rid, {"lat": 48.1, "lon": 11.5})]


def _notice(dev: SimDevice, *items: dict[str, Any]) -> list[WireRecord]:
    rid = dev.next_id
    dev.next_id += 1
    return [WireRecord(rid, NOTICE_KIND, 20, T0 + rid, T0 + rid, {NOTICE_KEY: list(items)})]


def _health(engine: Any) -> queries.Health:
    with engine.connect() as conn:
        return queries.health(conn, DEVICE)


def test_an_authentic_batch_refused_for_its_chain_is_recorded_and_explains_its_gap(engine):
    dev, ing = _setup(engine)
    assert ing.ingest(dev.batch(_position(dev)), NOW).status == "committed"
    dev.prev = bytes(32)  # seq 1 names a predecessor the cloud does not hold: chain_broken
    refused = dev.batch(_position(dev))
    for _ in range(2):  # redelivered: still one refusal
        ack = ing.ingest(refused, NOW + 1)
        assert (ack.status, ack.reason) == ("rejected", "chain_broken")
    assert ing.ingest(dev.batch(_position(dev)), NOW + 2).status == "committed"  # chains to the refused one
    h = _health(engine)
    assert h.open_gaps == []
    assert [(g.seq_from, g.seq_to, g.explanation) for g in h.filled_gaps] == [(1, 1, "refused: chain_broken")]
    (r,) = h.refused_batches
    assert (r.boot_epoch, r.seq_from, r.seq_to, r.source, r.reason) == (1, 1, 1, "cloud", "chain_broken")
    assert (r.hash, r.prev_hash, r.recorded_at) == (batch_hash(refused), bytes(32), NOW + 1)


def test_a_forged_batch_is_not_recorded(engine):
    _, ing = _setup(engine)
    forger = SimDevice(DEVICE)
    assert ing.ingest(forger.batch(_position(forger)), NOW).reason == "bad_signature"
    assert _health(engine).refused_batches == []


@pytest.mark.parametrize("notice_first", [False, True])
def test_the_devices_notice_explains_the_gap_of_an_abandoned_batch_in_either_order(engine, notice_first):
    dev, ing = _setup(engine)
    blobs = [dev.batch(_position(dev)) for _ in range(3)]  # seq 1 never arrives
    item = {"boot_epoch": 1, "seq": 1, "hash": batch_hash(blobs[1]).hex(), "why": "shutdown"}
    dev.boot_epoch, dev.seq = 2, 0  # the notice travels in the next epoch
    notice = dev.batch(_notice(dev, item, {"boot_epoch": "x"}, "garbage"))  # unreadable items are skipped
    order = [notice, blobs[0], blobs[2]] if notice_first else [blobs[0], blobs[2], notice]
    assert [ing.ingest(b, NOW + i).status for i, b in enumerate(order)] == ["committed"] * 3
    h = _health(engine)
    assert h.open_gaps == []
    assert [(g.seq_from, g.seq_to, g.explanation) for g in h.filled_gaps] == [
        (1, 1, "abandoned by the device: shutdown")]
    assert [(r.seq_from, r.seq_to, r.source, r.hash) for r in h.refused_batches] == [
        (1, 1, "device", batch_hash(blobs[1]))]


def test_a_gap_stays_open_while_any_of_it_is_unaccounted_for(engine):
    dev, ing = _setup(engine)
    blobs = [dev.batch(_position(dev)) for _ in range(4)]  # seqs 1 and 2 never arrive
    for i in (0, 3):
        ing.ingest(blobs[i], NOW + i)
    ing.ingest(dev.batch(_notice(dev, {"boot_epoch": 1, "seq": 1, "why": "shutdown"})), NOW + 5)
    assert [(g.seq_from, g.seq_to) for g in _health(engine).open_gaps] == [(1, 2)]
    ing.ingest(blobs[2], NOW + 6)  # the rest arrives as data: the gap closes, explained by the notice for 1
    h = _health(engine)
    assert h.open_gaps == []
    assert [g.explanation for g in h.filled_gaps] == ["abandoned by the device: shutdown"]


def test_a_restart_notice_covers_every_missing_batch_of_the_epoch(engine):
    dev, ing = _setup(engine)
    blobs = [dev.batch(_position(dev)) for _ in range(6)]
    for i in (0, 1, 5):  # 2..4 lost with the broker, then the device restarted
        ing.ingest(blobs[i], NOW + i)
    dev.boot_epoch, dev.seq = 2, 0
    ing.ingest(dev.batch(_notice(dev, {"boot_epoch": 1, "seq_from": 0, "why": "restart"})), NOW + 9)
    h = _health(engine)
    assert h.open_gaps == []
    assert [(g.seq_from, g.seq_to, g.explanation) for g in h.filled_gaps] == [
        (2, 4, "abandoned by the device: restart")]
    assert [(r.boot_epoch, r.seq_from, r.seq_to) for r in h.refused_batches] == [(1, 0, None)]
