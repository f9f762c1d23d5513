"""Uplink fixtures: a real Mosquitto per test, a cloud (SQLite store, Ingestor, in-thread worker), an uplink rig."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine, migrate, schema
from cloud_sync.store.devices import add_device
from cloud_sync.worker import IngestWorker
from edge_agent.counters import Counters
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttTransport, Uplink, UplinkSettings
from edge_agent.uplink.notices import NOTICE_KIND
from edge_agent.wire.sign import public_key_pem
from tests.cloud_sync.conftest import pg_database_url  # noqa: F401 - the session's PostgreSQL database, here too
from tests.mqtt_broker import Mosquitto

DEVICE = "truck-0042"
#: A hang guard for waits on real processes, not a speed assertion: generous on a loaded machine.
WAIT_S = 60.0
T0 = 1_764_028_800.0


#: agent.toml of a real `fleet-agent run` reading GNSS from a pty and uplinking fast; ``extra`` goes at the end
#: (more [uplink] fields, or further sections).
AGENT_TOML = """
[agent]
device_id = "{device}"
profile = "heavy_truck_j1939"
data_dir = "{data}"
status_interval_s = 0.2

[gnss]
port = "{gnss}"

[outbox]
flush_interval_s = 0.2

[uplink]
host = "{host}"
port = {port}
signing_key = "device.pem"
linger_s = 0.2
reconnect_min_s = 0.1
reconnect_max_s = 1.0
{extra}"""


def write_agent_config(path: Path, data: Path, gnss_port: str, broker: Mosquitto, extra: str = "") -> Path:
    """Write ``AGENT_TOML`` for ``DEVICE`` to ``path``."""
    path.write_text(AGENT_TOML.format(device=DEVICE, data=data, gnss=gnss_port, host=broker.host, port=broker.port,
                                      extra=extra))
    return path


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (master, slave): the agent reads NMEA from the slave."""
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        os.close(master)
        os.close(slave)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S,
             step: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        if step is not None:
            step()
        time.sleep(0.01)


def positions(n: int, t0: float = T0) -> list[Record]:
    return [Record("position", Priority.PERIODIC, t0 + i, {"lat": 48.1 + i * 1e-5, "lon": 11.5 + i * 1e-5,
                                                           "speed_mps": 12.5, "quality": 1, "n": i})
            for i in range(n)]


def fault(t: float, spn: int = 110) -> Record:
    return Record("dtc_active", Priority.FAULT, t, {"spn": spn, "fmi": 0, "oc": 1})


@dataclass
class Cloud:
    """The real cloud side in this process: SQLite store, ``Ingestor``, an ``IngestWorker`` thread."""

    engine: Engine
    ingestor: Ingestor
    broker: Mosquitto
    workers: list[tuple[IngestWorker, threading.Event, threading.Thread]] = field(default_factory=list)

    def register(self, device_id: str, key: Ed25519PrivateKey) -> None:
        with self.engine.begin() as conn:
            add_device(conn, device_id, public_key_pem(key).decode("ascii"))

    def start_worker(self) -> IngestWorker:
        worker = IngestWorker(self.ingestor, self.broker.host, self.broker.port, client_id=f"w-{uuid.uuid4().hex[:8]}")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop, 0.05), daemon=True)
        worker.start()
        thread.start()
        self.workers.append((worker, stop, thread))
        wait_for(worker.subscribed.is_set, "the worker's subscription")
        return worker

    def stop_workers(self) -> None:
        for worker, stop, thread in self.workers:
            stop.set()
            thread.join(timeout=10)
            worker.close()
        self.workers.clear()

    def records(self, device_id: str = DEVICE, notices: bool = False) -> list[Any]:
        """The device's stored records, without the uplink's abandoned-batch notices unless ``notices``."""
        r = schema.records.c
        query = select(r.record_id, r.kind, r.boot_epoch, r.seq, r.payload).where(r.device_id == device_id)
        if not notices:
            query = query.where(r.kind != NOTICE_KIND)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(r.record_id)))

    def gaps(self, device_id: str = DEVICE) -> tuple[list[Any], list[Any]]:
        """The device's chain gaps: (open, closed), each row with its ``explanation``."""
        g = schema.chain_gaps.c
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(g.boot_epoch, g.seq_from, g.seq_to, g.filled_at, g.explanation)
                                     .where(g.device_id == device_id).order_by(g.id)))
        return [x for x in rows if x.filled_at is None], [x for x in rows if x.filled_at is not None]

    def batches(self, device_id: str = DEVICE) -> list[Any]:
        b = schema.batches.c
        with self.engine.connect() as conn:
            return list(conn.execute(select(b.boot_epoch, b.seq, b.hash, b.prev_hash, b.record_count)
                                     .where(b.device_id == device_id).order_by(b.boot_epoch, b.seq)))


@pytest.fixture
def cloud(tmp_path: Path, broker: Mosquitto) -> Iterator[Cloud]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    migrate(engine)
    c = Cloud(engine, Ingestor(engine), broker)
    try:
        yield c
    finally:
        c.stop_workers()
        engine.dispose()


def fast_settings(broker: Mosquitto, **overrides: Any) -> UplinkSettings:
    """Settings for tests: no linger, short backoff, no backlog reports (record counts stay exact);
    everything else as deployed unless overridden."""
    values: dict[str, Any] = {"host": broker.host, "port": broker.port, "linger_s": 0.0, "reconnect_min_s": 0.05,
                              "reconnect_max_s": 0.5, "reconnect_jitter_s": 0.05, "ack_timeout_s": 30.0,
                              "reject_backoff_s": 0.5, "backlog_report_s": 0.0}
    values.update(overrides)
    return UplinkSettings(**values)


@dataclass
class Rig:
    outbox: Outbox
    uplink: Uplink
    counters: Counters
    key: Ed25519PrivateKey

    def pump(self, until: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        wait_for(until, what, timeout, step=self.uplink.tick)

    def close(self) -> None:
        self.uplink.close()
        self.outbox.close()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(settings: UplinkSettings, key: Ed25519PrivateKey | None = None, outbox_name: str = "outbox.db",
             quota_bytes: int | None = None, start: bool = True) -> Rig:
        counters = Counters()
        outbox = Outbox(tmp_path / outbox_name, quota_bytes=quota_bytes, counters=counters)
        k = key or Ed25519PrivateKey.generate()
        uplink = Uplink(outbox, MqttTransport(settings, DEVICE, counters), k, DEVICE, settings, counters)
        if start:
            uplink.start()
        rig = Rig(outbox, uplink, counters, k)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
