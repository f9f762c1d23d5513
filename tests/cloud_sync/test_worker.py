"""The MQTT ingest worker: real Mosquitto, real worker processes, sealed chained batches from simulated devices."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from cloud_sync.store import make_engine, migrate, schema
from cloud_sync.worker import device_of, parse_broker, shared_filter
from edge_agent.wire import Ack, batch_hash, decode_ack
from tests.cloud_sync.helpers import T0, SimDevice
from tests.mqtt_broker import Mosquitto, ingest_worker

WAIT_S = 60.0  # a hang guard on real processes, not a speed assertion


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(url)
    migrate(engine)
    try:
        yield url, engine
    finally:
        engine.dispose()


class Devices:
    """A paho client publishing sealed batches for several devices and collecting the acks they get."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acks: list[tuple[str, Ack]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="devices", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("fleet/v1/+/ack", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append((msg.topic, decode_ack(bytes(msg.payload))))

    def publish(self, device_id: str, blob: bytes) -> None:
        self.client.publish(f"fleet/v1/{device_id}/batch", blob, qos=1).wait_for_publish(10)

    def wait_acks(self, n: int) -> list[tuple[str, Ack]]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.acks) >= n:
                    return list(self.acks)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.acks)} acks of {n} after {WAIT_S} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_topic_and_argument_parsing() -> None:
    assert device_of("fleet/v1/truck-7/batch") == "truck-7"
    assert device_of("fleet/v1//batch") is None
    assert device_of("fleet/v2/truck-7/batch") is None
    assert device_of("fleet/v1/truck-7/ack") is None
    assert shared_filter("ingest") == "$share/ingest/fleet/v1/+/batch"
    assert parse_broker("127.0.0.1:1883") == ("127.0.0.1", 1883)
    assert parse_broker("[::1]:8883") == ("::1", 8883)
    for bad in ("localhost", "host:", ":1883", "host:99999"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_broker(bad)


def test_two_workers_on_one_shared_subscription_store_every_batch_once(
        tmp_path: Path, broker: Mosquitto, store: tuple[str, Engine]) -> None:
    url, engine = store
    rng = random.Random(4)
    sims = [SimDevice(f"van-{i}") for i in range(3)]
    for sim in sims:
        sim.register(engine)
    workers = [ingest_worker(broker, url, f"ingest-{i}", log_path=tmp_path / f"worker{i}.log") for i in range(2)]
    devices = Devices(broker)
    n_batches = 40
    try:
        for k in range(n_batches):
            for sim in sims:
                devices.publish(sim.device_id, sim.batch(sim.records(rng, 50, T0 + k * 10)))
        acks = devices.wait_acks(n_batches * len(sims))
        time.sleep(0.5)  # a second ack for any batch (a double delivery) would arrive about now
        acks = list(devices.acks)
    finally:
        devices.close()
        stats = []
        for w in workers:
            assert w.terminate() == 0
            stats.append(json.loads(w.wait_line('"stopped"')))
    # Exactly one ack per batch, every one "committed": no batch reached both workers.
    keys = [(a.device_id, a.boot_epoch, a.seq) for _, a in acks]
    assert len(keys) == len(set(keys)) == n_batches * len(sims)
    assert {a.status for _, a in acks} == {"committed"}
    assert all(a.batch_hash is not None for _, a in acks)  # each names the batch it answers (ack v2)
    assert all(topic == f"fleet/v1/{a.device_id}/ack" for topic, a in acks)
    # Both workers took a share, and together they committed each batch once.
    assert all(s["processed"] > 0 for s in stats)
    assert sum(s["metrics"]["batches_committed"] for s in stats) == n_batches * len(sims)
    assert sum(s["metrics"]["batches_duplicate"] for s in stats) == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.batches)).scalar() == n_batches * len(sims)
        assert conn.execute(select(func.count()).select_from(schema.records)).scalar() == n_batches * len(sims) * 50
        # Batches of one device committed out of order by the two workers left no hole in the chains.
        g = schema.chain_gaps.c
        assert conn.execute(select(func.count()).select_from(schema.chain_gaps).where(g.filled_at.is_(None))
                            ).scalar() == 0


def test_rejected_and_unreadable_batches_are_answered(tmp_path: Path, broker: Mosquitto,
                                                      store: tuple[str, Engine]) -> None:
    url, engine = store
    known, stranger = SimDevice("truck-1"), SimDevice("truck-2")  # truck-2 is not registered
    known.register(engine)
    worker = ingest_worker(broker, url, "ingest-0", log_path=tmp_path / "worker.log")
    devices = Devices(broker)
    rng = random.Random(1)
    try:
        devices.publish("truck-1", b"not a batch at all")
        devices.publish("truck-2", stranger.batch(stranger.records(rng, 5)))
        good = known.batch(known.records(rng, 5))
        devices.publish("truck-1", good)
        devices.publish("truck-1", good)  # a re-send: acked duplicate, stored once
        acks = devices.wait_acks(4)
    finally:
        devices.close()
        assert worker.terminate() == 0
    by = [(topic, a.device_id, a.status, a.reason) for topic, a in acks]
    # The unreadable blob has no trustworthy device id; the worker answers on the topic it came from.
    assert by[0] == ("fleet/v1/truck-1/ack", "truck-1", "rejected", "bad_magic")
    assert by[1] == ("fleet/v1/truck-2/ack", "truck-2", "rejected", "unknown_device")
    assert by[2][2:] == ("committed", "") and by[3][2:] == ("duplicate", "")
    # Every ack names the SHA-256 of the blob it answers, the unreadable one's too.
    sent = [b"not a batch at all", None, good, good]
    assert [a.batch_hash for _, a in acks][::2] == [batch_hash(b) for b in sent[::2]]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.records)).scalar() == 5
