"""Narrowing refused content down to the refused rows, against a scripted cloud at the MQTT boundary.

The scripted cloud opens each batch (real seal, real signature) and refuses it "unstorable" when any
record is of kind ``bad``, as PostgreSQL refuses a NUL (tests/edge_agent/uplink/test_rejections.py
does the same through Mosquitto, a worker process and PostgreSQL). Here the shapes that are slow to
stage for real: refused rows scattered through the backlog, a backlog that is refused entirely, and
a device the cloud distrusts for a long time (the pause doubles up to its cap).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.model import Priority, Record
from edge_agent.outbox import QUARANTINE_REPORT_KIND, Outbox
from edge_agent.uplink import UplinkSettings
from edge_agent.uplink.transport import AckMessage, Event
from edge_agent.uplink.uplink import REJECT_BACKOFF_MAX_FACTOR, Uplink
from edge_agent.wire import Ack, batch_hash, encode_ack, open_batch

DEVICE = "truck-narrow"
#: Ticks allowed before a test calls it a livelock (a hang guard, not a speed assertion).
MAX_TICKS = 2000


class ScriptedCloud:
    """Connected at once; answers every publish with the ack the real ingest would give."""

    def __init__(self, key: Ed25519PrivateKey, refuse_all: str | None = None) -> None:
        self.key = key
        self.refuse_all = refuse_all  # a reason every batch is refused with (say the device was revoked)
        self.events: list[Event] = []
        self.stored: list[Record | dict] = []
        self.batch_sizes: list[int] = []

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes) -> int | None:
        batch = open_batch(payload, lambda _d: self.key.public_key())
        self.batch_sizes.append(len(batch.records))
        if self.refuse_all is not None:
            ack = Ack(DEVICE, batch.boot_epoch, batch.seq, "rejected", self.refuse_all, batch_hash=batch_hash(payload))
        elif any(r.kind == "bad" for r in batch.records):
            ack = Ack(DEVICE, batch.boot_epoch, batch.seq, "rejected", "unstorable", batch_hash=batch_hash(payload))
        else:
            self.stored += [r.payload for r in batch.records]
            ack = Ack(DEVICE, batch.boot_epoch, batch.seq, "committed", stored=len(batch.records),
                      batch_hash=batch_hash(payload))
        self.events.append(AckMessage(encode_ack(ack)))
        return len(self.batch_sizes)

    def poll(self) -> list[Event]:
        out, self.events = self.events, []
        return out


def run(tmp_path: Path, records: list[Record]) -> tuple[Outbox, Uplink, ScriptedCloud]:
    key = Ed25519PrivateKey.generate()
    outbox = Outbox(tmp_path / "o.db")
    cloud = ScriptedCloud(key)
    settings = UplinkSettings(host="127.0.0.1", linger_s=0.0, max_batch_records=64, backlog_report_s=0.0)
    uplink = Uplink(outbox, cloud, key, DEVICE, settings)
    outbox.append(records)
    for tick in range(MAX_TICKS):
        uplink.tick(float(tick))
        if outbox.depth() == 0:
            break
    return outbox, uplink, cloud


def test_scattered_refused_rows_end_in_quarantine_and_the_rest_is_stored(tmp_path: Path) -> None:
    bad_at = {5, 70, 71, 190}
    records = [Record("bad" if i in bad_at else "position", Priority.PERIODIC, float(i), {"n": i})
               for i in range(256)]
    outbox, uplink, cloud = run(tmp_path, records)
    with outbox:
        assert outbox.depth() == 0 and outbox.quarantined().rows == len(bad_at)
        assert sorted(p["n"] for p in cloud.stored if "n" in p) == sorted(set(range(256)) - bad_at)
        reports = [p for p in cloud.stored if p.get("reason") == "unstorable"]
        assert sum(p["count"] for p in reports) == len(bad_at)
        assert {k for p in reports for k in p["quarantined"]} == {"bad"}
        c = uplink.counters
        assert c.get("batches_quarantined") == outbox.counters.get("records_quarantined") == len(bad_at)
        # Narrowing costs a few batches per refused row, not one per record.
        assert len(cloud.batch_sizes) < 256 // 2
        # Past the refused rows the batches widen again, doubling with each one the cloud takes.
        outbox.append([Record("position", Priority.PERIODIC, 1000.0 + i, {"n": 1000 + i}) for i in range(512)])
        for tick in range(MAX_TICKS):
            uplink.tick(5000.0 + tick)
            if outbox.depth() == 0:
                break
        assert outbox.depth() == 0 and uplink.batch_records == 64 and cloud.batch_sizes[-2] == 64


def test_a_backlog_refused_entirely_is_quarantined_without_looping(tmp_path: Path) -> None:
    records = [Record("bad", Priority.PERIODIC, float(i), {"n": i}) for i in range(40)]
    outbox, uplink, cloud = run(tmp_path, records)
    with outbox:
        assert outbox.depth() == 0 and outbox.quarantined().rows == 40
        reports = [p for p in cloud.stored if p.get("reason") == "unstorable"]
        assert sum(p["count"] for p in reports) == 40
        assert not [p for p in cloud.stored if "n" in p]
        assert uplink.counters.get("batches_rejected") == len(cloud.batch_sizes) - len(reports)
        assert QUARANTINE_REPORT_KIND not in outbox.counts_by_kind()


def test_a_device_the_cloud_distrusts_keeps_its_rows_and_backs_off_doubling_to_a_cap(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    cloud = ScriptedCloud(key, refuse_all="revoked")
    settings = UplinkSettings(host="127.0.0.1", linger_s=0.0, reject_backoff_s=1.0, max_inflight=1,
                              backlog_report_s=0.0)
    with Outbox(tmp_path / "o.db") as outbox:
        uplink = Uplink(outbox, cloud, key, DEVICE, settings)
        outbox.append([Record("position", Priority.PERIODIC, float(i), {"n": i}) for i in range(10)])
        now, pauses = 0.0, []
        for _ in range(9):
            uplink.tick(now)  # sends (the scripted cloud answers at once)
            uplink.tick(now)  # reads the refusal and pauses
            pauses.append(uplink._hold_until - now)
            uplink.tick(now + pauses[-1] / 2)  # nothing leaves during the pause
            assert len(cloud.batch_sizes) == len(pauses)
            now += pauses[-1]
        assert pauses == [1, 2, 4, 8, 16, 32, 32, 32, 32]
        assert max(pauses) == REJECT_BACKOFF_MAX_FACTOR * settings.reject_backoff_s
        assert outbox.depth() == 10 and outbox.quarantined().rows == 0
        assert uplink.counters.get("rejects_not_trusted") == 9
