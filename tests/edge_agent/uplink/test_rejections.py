"""Rejections end to end: real Mosquitto, ``fleet-cloud worker`` processes, real stores, a real outbox.

Refused content (PostgreSQL refuses a NUL in text: ``unstorable``) is narrowed down to the refused row,
which lands in the outbox's quarantine and is reported to the cloud, while the batches around it and
after it are stored. A store that fails (``store_unavailable``) costs nothing: the rows wait and go once
it is back. Acks that do not name the hash of the batch sent under their number change nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import text

from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine, migrate, queries
from edge_agent.model import Priority, Record
from edge_agent.status import format_status
from edge_agent.uplink import ack_topic
from edge_agent.wire import Ack, encode_ack
from tests.edge_agent.uplink.conftest import DEVICE, T0, Cloud, fast_settings, positions
from tests.mqtt_broker import Mosquitto, Proc


def fleet_cloud_worker(broker: Mosquitto, url: str, log: Path) -> Proc:
    """``fleet-cloud worker`` as a process, returned once its shared subscription is in place."""
    proc = Proc("cloud_sync.cli", "worker", "--broker", broker.address, "--database", url,
                "--log-level", "WARNING", log_path=log)
    proc.wait_line('"subscribed"')
    return proc


@pytest.fixture
def pg_cloud(pg_database_url: str, broker: Mosquitto) -> Iterator[Cloud]:
    engine = make_engine(pg_database_url)
    with engine.begin() as conn:  # an empty schema for this test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    try:
        yield Cloud(engine, Ingestor(engine), broker)
    finally:
        engine.dispose()


def test_refused_content_is_quarantined_and_reported_and_the_rest_flows(
        tmp_path: Path, pg_database_url: str, pg_cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(pg_cloud.broker, max_batch_records=50))
    pg_cloud.register(DEVICE, rig.key)
    worker = fleet_cloud_worker(pg_cloud.broker, pg_database_url, tmp_path / "worker.log")
    try:
        bad = Record("note", Priority.PERIODIC, T0 + 77.5, {"text": "a NUL \x00 PostgreSQL will not store"})
        wave = positions(200)
        rig.outbox.append([*wave[:78], bad, *wave[78:]])
        rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain around the refused row")

        assert rig.outbox.quarantined().rows == 1
        with closing(sqlite3.connect(rig.outbox.path)) as conn:
            [(kind, reason)] = conn.execute("SELECT kind, reason FROM quarantine").fetchall()
        assert (kind, reason) == ("note", "unstorable")
        c = rig.counters
        assert c.get("batches_quarantined") == c.get("records_quarantined") == 1
        assert c.get("batches_narrowed") >= 1 and c.get("rejects_not_trusted") == 0
        stored = pg_cloud.records()
        assert sorted(r.payload["n"] for r in stored if r.kind == "position") == list(range(200))
        (report,) = [r.payload for r in stored if r.kind == "quarantine_report"]
        assert (report["reason"], report["count"], report["quarantined"]) == ("unstorable", 1, {"note": 1})
        with pg_cloud.engine.connect() as conn:  # what staff see in GET /v1/vehicles/{device}/health
            health = queries.health(conn, DEVICE)
        assert health.quarantined_by_kind == {"note": 1}
        # Every refused batch is listed with its identity and reason; the chain has no unexplained hole.
        assert health.open_gaps == []
        refused = health.refused_batches
        assert refused and {(r.source, r.reason) for r in refused} == {("cloud", "unstorable")}
        assert all(r.seq_to == r.seq_from and r.hash is not None and r.prev_hash is not None for r in refused)
        assert {r.seq_from for r in refused}.isdisjoint(b.seq for b in pg_cloud.batches())
        assert all(g.explanation == "refused: unstorable" for g in health.filled_gaps)

        # The next batches flow at full size again; nothing more is refused.
        rejected = c.get("batches_rejected")
        rig.outbox.append(positions(200, T0 + 1000))
        rig.pump(lambda: rig.outbox.depth() == 0, "the next records")
        assert c.get("batches_rejected") == rejected
        assert rig.uplink.batch_records == 50
        assert len([r for r in pg_cloud.records() if r.kind == "position"]) == 400

        status = {"written_at": 0.0, "counters": c.snapshot(), "uplink": rig.uplink.status()}
        assert "quarantine      1 records" in format_status(status, now=0.0)
    finally:
        assert worker.terminate() == 0


def test_a_failing_store_is_retried_and_nothing_is_quarantined(tmp_path: Path, cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=20, reject_backoff_s=0.2))
    cloud.register(DEVICE, rig.key)
    url = cloud.engine.url.render_as_string(hide_password=False)
    worker = fleet_cloud_worker(cloud.broker, url, tmp_path / "worker.log")
    try:
        with cloud.engine.begin() as conn:  # the store breaks under the worker (as a botched migration would)
            conn.execute(text("ALTER TABLE batches RENAME TO batches_away"))
        rig.outbox.append(positions(50))
        rig.pump(lambda: rig.counters.get("batches_rejected") >= 2, "two store_unavailable rejections")
        assert rig.outbox.depth() == 50 and rig.outbox.quarantined().rows == 0
        with cloud.engine.begin() as conn:
            conn.execute(text("ALTER TABLE batches_away RENAME TO batches"))
        rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain once the store is back")
        assert sorted(r.payload["n"] for r in cloud.records()) == list(range(50))
        assert rig.counters.get("batches_quarantined") == 0 and rig.outbox.quarantined().rows == 0
        # The refused batches went again unchanged: one unbroken chain, no gap, nothing to explain.
        assert rig.counters.get("batches_resent") >= 2
        assert [b.seq for b in cloud.batches()] == list(range(len(cloud.batches())))
        assert cloud.gaps() == ([], [])
        assert cloud.records(notices=True) == cloud.records()
    finally:
        assert worker.terminate() == 0
    assert '"store_unavailable"' in worker.wait_line('"stopped"')


def test_acks_that_do_not_name_the_batch_sent_change_nothing(cloud: Cloud, make_rig) -> None:
    rig = make_rig(fast_settings(cloud.broker, max_batch_records=100, max_inflight=1, ack_timeout_s=3.0))
    cloud.register(DEVICE, rig.key)
    rig.outbox.append(positions(100))
    # No worker yet: the batch waits at the broker for the cloud's ack.
    rig.pump(lambda: rig.uplink.status()["in_flight_batches"] == 1, "a batch in flight")
    (sent,) = rig.uplink._inflight.values()
    epoch, seq = sent.key
    forged = bytes(32)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-acks", protocol=mqtt.MQTTv5)
    pub.connect(cloud.broker.host, cloud.broker.port)
    pub.loop_start()
    try:
        for ack in (Ack(DEVICE, epoch, seq, "committed", stored=100, batch_hash=forged),  # other bytes
                    Ack(DEVICE, epoch, seq, "rejected", "unstorable", batch_hash=forged),  # would quarantine
                    Ack(DEVICE, epoch, seq, "committed", stored=100)):  # version 1: no hash at all
            pub.publish(ack_topic(DEVICE), encode_ack(ack), qos=1).wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()
    rig.pump(lambda: rig.counters.get("acks_hash_mismatch") == 2 and rig.counters.get("acks_without_hash") == 1,
             "the three acks")
    assert rig.outbox.depth() == 100 and rig.outbox.quarantined().rows == 0
    assert list(rig.uplink._inflight) == [(epoch, seq)]  # still waiting for its own ack
    assert rig.counters.get("batches_committed") == rig.counters.get("batches_rejected") == 0
    # Nobody stored it (no worker yet): after its ack timeout the rows go again and the cloud's own ack counts.
    cloud.start_worker()
    rig.pump(lambda: rig.outbox.depth() == 0, "the real ack")
    assert rig.counters.get("ack_timeouts") >= 1
    assert sorted(r.payload["n"] for r in cloud.records()) == list(range(100))


def test_a_power_cut_before_the_resend_leaves_no_unexplained_gap(tmp_path: Path, cloud: Cloud, make_rig) -> None:
    """Batch 0 is lost at the broker (no worker yet) while batch 1 is stored: a real hole, until the device
    accounts for it. Then the store fails, batch 2 is refused ``store_unavailable`` and the power goes before
    it is sent again: the restart names the last run's epoch as abandoned and its rows leave again."""
    settings = fast_settings(cloud.broker, max_batch_records=20, max_inflight=2, reject_backoff_s=60.0,
                             ack_timeout_s=300.0)  # batch 0 is not sent again before the power cut
    rig = make_rig(settings)
    cloud.register(DEVICE, rig.key)
    rig.outbox.append(positions(20))
    rig.pump(lambda: rig.counters.get("batches_sent") == 1 and all(b.pubacked for b in rig.uplink._inflight.values()),
             "batch 0 at the broker, which has nobody to give it to")
    url = cloud.engine.url.render_as_string(hide_password=False)
    worker = fleet_cloud_worker(cloud.broker, url, tmp_path / "worker.log")
    try:
        rig.outbox.append(positions(20, T0 + 20))
        rig.pump(lambda: rig.counters.get("batches_committed") == 1, "batch 1 stored")
        assert [(g.seq_from, g.seq_to) for g in cloud.gaps()[0]] == [(0, 0)]
        with cloud.engine.begin() as conn:
            conn.execute(text("ALTER TABLE batches RENAME TO batches_away"))
        rig.outbox.append(positions(20, T0 + 40))
        rig.pump(lambda: rig.uplink.status()["awaiting_resend"] == 1, "batch 2 refused, to be sent again")
        epoch = rig.uplink.chain.boot_epoch
        # Power cut: the process is gone (no close, no release); the store comes back meanwhile.
        rig.uplink.transport.close()
        rig.uplink._inflight.clear()
        rig.outbox.close()
        with cloud.engine.begin() as conn:
            conn.execute(text("ALTER TABLE batches_away RENAME TO batches"))
        again = make_rig(settings, key=rig.key)
        assert again.outbox.reset_on_open == 40  # batches 0 and 2
        again.pump(lambda: again.outbox.depth() == 0, "the outbox to drain after the restart")
    finally:
        assert worker.terminate() == 0
    assert len(cloud.records()) == 60  # every record, once (the table's key is the device's record id)
    open_gaps, closed = cloud.gaps()
    assert open_gaps == []
    assert [(g.boot_epoch, g.seq_from, g.seq_to, g.explanation) for g in closed] == [
        (epoch, 0, 0, "abandoned by the device: restart")]
    with cloud.engine.connect() as conn:
        refused = queries.health(conn, DEVICE).refused_batches
    assert [(r.boot_epoch, r.seq_from, r.seq_to, r.source) for r in refused] == [(epoch, 0, None, "device")]
