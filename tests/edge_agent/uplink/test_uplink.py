"""The uplink against a real Mosquitto and the real cloud ingest (SQLite store, worker in a thread)."""

from __future__ import annotations

import random
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from cloud_sync.store import schema
from edge_agent.model import Priority, Record
from edge_agent.uplink import ack_topic
from edge_agent.uplink.notices import NOTICE_KEY, NOTICE_KIND
from edge_agent.wire import GENESIS_HASH, Ack, batch_hash, encode_ack
from tests.edge_agent.uplink.conftest import DEVICE, T0, Cloud, fast_settings, fault, positions, wait_for
from tests.mqtt_broker import Mosquitto, mosquitto_or_skip


def test_batches_committed_delete_rows_and_chain(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=1000))
    cloud.register(DEVICE, rig.key)
    cloud.start_worker()
    rig.outbox.append(positions(2500))
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")

    stored = cloud.records()
    assert [r.payload["n"] for r in stored] == list(range(2500))
    assert {r.kind for r in stored} == {"position"}
    batches = cloud.batches()
    assert [(b.seq, b.record_count) for b in batches] == [(0, 1000), (1, 1000), (2, 500)]
    assert {b.boot_epoch for b in batches} == {rig.uplink.chain.boot_epoch}
    # The chain: genesis, then each batch names the hash of the one before.
    assert batches[0].prev_hash == GENESIS_HASH
    assert [b.prev_hash for b in batches[1:]] == [b.hash for b in batches[:-1]]
    c = rig.counters
    assert (c.get("batches_sent"), c.get("batches_committed"), c.get("records_uplinked")) == (3, 3, 2500)
    assert c.get("ack_timeouts") == c.get("puback_failures") == c.get("batches_rejected") == 0


def test_puback_alone_deletes_nothing_and_ack_timeout_releases(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=100, ack_timeout_s=3.0, max_inflight=2))
    cloud.register(DEVICE, rig.key)
    rig.outbox.append(positions(300))
    # No worker yet: the broker takes the batches (PUBACK) but nobody commits them.
    rig.pump(lambda: rig.counters.get("batches_sent") >= 2 and rig.uplink.status()["in_flight_batches"] == 2
             and all(b.pubacked for b in rig.uplink._inflight.values()), "two PUBACKed batches")
    assert rig.outbox.depth() == 300
    rig.pump(lambda: rig.counters.get("ack_timeouts") >= 2, "the ack timeouts")
    # Timed-out batches go again unchanged (same seq and bytes) until the cloud answers.
    cloud.start_worker()
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")
    assert [r.payload["n"] for r in cloud.records()] == list(range(300))
    assert [b.seq for b in cloud.batches()] == [0, 1, 2]  # one unbroken chain: no gap to explain
    assert cloud.gaps() == ([], [])
    assert rig.counters.get("records_uplinked") == 300 and rig.counters.get("batches_resent") >= 2


def test_puback_failure_reason_keeps_rows(tmp_path: Path, make_rig) -> None:
    # The broker's ACL lets the device read its acks but not publish batches: PUBACK 0x87 Not authorized.
    broker = Mosquitto(mosquitto_or_skip(), tmp_path / "acl-broker", acl=f"topic read {ack_topic(DEVICE)}\n")
    broker.start()
    try:
        rig = make_rig(fast_settings(broker, max_batch_records=50, max_inflight=1, linger_s=0.2))
        rig.outbox.append(positions(120))
        rig.pump(lambda: rig.counters.get("puback_failures") >= 3, "three refused batches")
        assert rig.outbox.depth() == 120
        assert rig.counters.get("batches_committed") == 0
        rig.uplink.close()
        again = rig.outbox.claim(1000)
        assert sorted(r.payload["n"] for r in again if r.kind != NOTICE_KIND) == list(range(120))
        # The batch in flight at close is named as abandoned (its rows leave under a later number).
        (notice,) = [r.payload[NOTICE_KEY] for r in again if r.kind == NOTICE_KIND]
        assert [(n["boot_epoch"], n["why"]) for n in notice] == [(rig.uplink.chain.boot_epoch, "shutdown")]
    finally:
        broker.stop()


def test_fault_overtakes_backlog(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=500, max_inflight=1))
    cloud.register(DEVICE, rig.key)
    cloud.start_worker()
    rig.outbox.append(positions(10_000))
    rig.pump(lambda: rig.counters.get("batches_committed") >= 2, "two committed batches")
    # One batch is in flight; the fault raised now must ride in the very next one, not after 9,000 positions.
    next_seq = rig.uplink.chain.seq
    rig.outbox.append([fault(T0 + 20_000)])
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")
    stored = cloud.records()
    (f,) = [r for r in stored if r.kind == "dtc_active"]
    assert f.seq == next_seq
    assert max(r.seq for r in stored) >= next_seq + 10  # the backlog was still long when it overtook
    # Within the backlog the order is oldest first.
    by_n = sorted((r.payload["n"], r.seq) for r in stored if r.kind == "position")
    assert [s for _, s in by_n] == sorted(s for _, s in by_n)


def test_batches_fit_brokers_maximum_packet_size(tmp_path: Path, cloud: Cloud, make_rig) -> None:
    small = Mosquitto(mosquitto_or_skip(), tmp_path / "small-broker", max_packet_size=6000)
    small.start()
    cloud.broker = small
    sizes: list[int] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy", protocol=mqtt.MQTTv5)
    spy.on_message = lambda _c, _u, msg: sizes.append(len(msg.payload))
    spy.connect(small.host, small.port)
    spy.subscribe("fleet/v1/+/batch", qos=1)
    spy.loop_start()
    try:
        rig = make_rig(fast_settings(small, max_batch_records=5000))
        cloud.register(DEVICE, rig.key)
        cloud.start_worker()
        # Random payloads barely compress, so bytes, not the record limit, decide the batch size.
        rng = random.Random(7)
        rig.outbox.append([Record("note", Priority.EVENT, T0 + i, {"n": i, "blob": rng.randbytes(60).hex()})
                           for i in range(2000)])
        rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")
        wait_for(lambda: len(sizes) >= len(cloud.batches()), "the spy to see every batch")
        assert rig.counters.get("mqtt_reconnects") == 0  # an oversize packet would have cost the connection
        assert [r.payload["n"] for r in cloud.records()] == list(range(2000))
        assert len(sizes) >= 2000 * 60 // 6000  # at least 60 bytes of entropy per record had to travel
        assert max(sizes) <= rig.uplink.packet_limit < 6000
        assert max(sizes) > 6000 // 2  # and the batches were not needlessly small
    finally:
        spy.loop_stop()
        spy.disconnect()
        cloud.stop_workers()
        small.stop()


def test_broker_kill_and_restart(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=200, ack_timeout_s=2.0))
    cloud.register(DEVICE, rig.key)
    cloud.start_worker()
    rig.outbox.append(positions(1000))
    rig.pump(lambda: rig.counters.get("batches_committed") >= 1, "a first commit")
    cloud.broker.kill()
    rig.outbox.append(positions(1000, T0 + 1000))
    for _ in range(20):
        rig.uplink.tick()
    assert not rig.uplink.transport.connected
    cloud.broker.start()
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain after the restart")
    ns = sorted(r.payload["n"] for r in cloud.records())
    assert ns == sorted(list(range(1000)) * 2)
    assert rig.counters.get("mqtt_reconnects") >= 1


def test_bad_and_stale_acks_are_counted(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker))
    rig.pump(lambda: rig.uplink.transport.connected, "the connection")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="prankster", protocol=mqtt.MQTTv5)
    pub.connect(cloud.broker.host, cloud.broker.port)
    pub.loop_start()
    try:
        pub.publish(ack_topic(DEVICE), b"{not json", qos=1).wait_for_publish(10)
        stale = encode_ack(Ack(DEVICE, 1, 0, "committed", stored=1))  # an epoch this uplink never used
        pub.publish(ack_topic(DEVICE), stale, qos=1).wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()
    rig.pump(lambda: rig.counters.get("acks_unmatched") == 1, "the stale ack")
    assert rig.counters.decode_errors().get("uplink_bad_ack") == 1


def test_new_boot_epoch_each_start_and_persisted(cloud: Cloud, make_rig) -> None:
    first = make_rig(fast_settings(cloud.broker), start=False)
    epoch1 = first.uplink.chain.boot_epoch
    assert first.outbox.get_state("uplink")["boot_epoch"] == epoch1
    first.close()
    second = make_rig(fast_settings(cloud.broker), start=False)
    assert second.uplink.chain.boot_epoch > epoch1
    assert second.uplink.chain.seq == 0 and second.uplink.chain.prev_hash == GENESIS_HASH
    assert batch_hash(b"x") != GENESIS_HASH


def test_rejected_batch_keeps_rows_until_the_cloud_accepts(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=100, reject_backoff_s=0.3))
    cloud.start_worker()
    rig.outbox.append(positions(250))
    # The device is not registered yet: the cloud answers "rejected: unknown_device".
    rig.pump(lambda: rig.counters.get("batches_rejected") >= 2, "two rejections")
    assert rig.outbox.depth() == 250 and cloud.records() == []
    assert rig.counters.get("batches_committed") == 0
    # Not the records' fault: counted as distrust, nothing narrowed down or quarantined.
    assert rig.counters.get("rejects_not_trusted") >= 2
    assert rig.counters.get("batches_narrowed") == 0 and rig.outbox.quarantined().rows == 0
    cloud.register(DEVICE, rig.key)  # provisioning catches up
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")
    assert [r.payload["n"] for r in cloud.records()] == list(range(250))


def test_backlog_reports_reach_the_clouds_health_view(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=500, max_inflight=1, backlog_report_s=0.2))
    cloud.register(DEVICE, rig.key)
    cloud.start_worker()
    rig.outbox.append(positions(6000))
    rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain")
    reports = [r for r in cloud.records() if r.kind == "backlog_report"]
    assert reports, "no backlog report reached the cloud"
    # Reports overtake the backlog (event priority), so the first one saw most of it still queued.
    assert reports[0].payload["backlog_records"] > 1000
    assert all(r.payload["boot_epoch"] == rig.uplink.chain.boot_epoch for r in reports)
    h = schema.device_health.c
    with cloud.engine.connect() as conn:
        health = conn.execute(select(h.backlog_records, h.backlog_reported_at).where(h.device_id == DEVICE)).one()
    latest = max(reports, key=lambda r: r.record_id)
    assert health.backlog_records == latest.payload["backlog_records"]
