"""``SigningKey``: the uplink follows the key file across a rotation, waits while one is under way (bounded);
an ``Uplink`` against a scripted cloud sends a batch refused for the replaced key again at once."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.counters import Counters
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import UplinkSettings
from edge_agent.uplink.signing import NEXT_SUFFIX, SigningKey, fingerprint
from edge_agent.uplink.transport import AckMessage, Event
from edge_agent.uplink.uplink import Uplink
from edge_agent.wire import Ack, VerificationError, batch_hash, encode_ack, open_batch, read_header, save_private_key

DEVICE = "truck-rotate"


def test_the_key_follows_the_file_and_waits_while_a_rotation_is_under_way(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    save_private_key(old, path)
    counters = Counters()
    signer = SigningKey(old, path, counters, hold_s=30.0)
    assert fingerprint(signer.for_batch(0.0) or new) == fingerprint(old)
    nxt = path.with_name(path.name + NEXT_SUFFIX)
    save_private_key(new, nxt)  # rotate-key: the next key first
    assert signer.for_batch(1.0) is None  # nothing sealed while the rotation is under way
    assert signer.for_batch(30.9) is None
    os.replace(nxt, path)  # the cloud accepted the rotation
    key = signer.for_batch(31.0)
    assert key is not None and fingerprint(key) == fingerprint(new) == signer.fingerprint
    assert signer.generation == 1 and counters.snapshot()["signing_key_switches"] == 1


def test_a_rotation_left_unfinished_stops_holding_after_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    old = Ed25519PrivateKey.generate()
    save_private_key(old, path)
    save_private_key(Ed25519PrivateKey.generate(), path.with_name(path.name + NEXT_SUFFIX))
    counters = Counters()
    signer = SigningKey(old, path, counters, hold_s=30.0)
    assert signer.for_batch(100.0) is None
    key = signer.for_batch(130.0)  # the cloud could not be reached: it still holds the old key
    assert key is not None and fingerprint(key) == fingerprint(old) and signer.generation == 0
    assert counters.snapshot()["signing_rotation_hold_expired"] == 1


def test_an_unreadable_key_file_keeps_the_key_in_use(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    old = Ed25519PrivateKey.generate()
    save_private_key(old, path)
    counters = Counters()
    signer = SigningKey(old, path, counters)
    path.write_bytes(b"not a key at all, and longer than the PEM was" * 4)
    key = signer.for_batch(0.0)
    assert key is not None and fingerprint(key) == fingerprint(old) and signer.generation == 0
    assert counters.snapshot()["signing_key_unreadable"] == 1
    assert signer.for_batch(1.0) is key and counters.snapshot()["signing_key_unreadable"] == 1  # said once


class RotatingCloud:
    """A cloud at the MQTT boundary that holds one device key and answers when told (``answer``)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.waiting: list[bytes] = []
        self.events: list[Event] = []
        self.stored = 0

    connected = True

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes) -> int | None:
        self.waiting.append(payload)
        return len(self.waiting)

    def answer(self) -> None:
        for payload in self.waiting:
            header, _ = read_header(payload)
            try:
                batch = open_batch(payload, lambda _d: self.key.public_key())
            except VerificationError as exc:
                ack = Ack(DEVICE, header.boot_epoch, header.seq, "rejected", exc.reason, batch_hash=batch_hash(payload))
            else:
                self.stored += len(batch.records)
                ack = Ack(DEVICE, batch.boot_epoch, batch.seq, "committed", stored=len(batch.records),
                          batch_hash=batch_hash(payload))
            self.events.append(AckMessage(encode_ack(ack)))
        self.waiting = []

    def poll(self) -> list[Event]:
        out, self.events = self.events, []
        return out


def test_a_batch_refused_for_the_replaced_key_goes_again_at_once_with_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    save_private_key(old, path)
    counters = Counters()
    outbox = Outbox(tmp_path / "o.db")
    cloud = RotatingCloud(old)
    settings = UplinkSettings(host="127.0.0.1", linger_s=0.0, backlog_report_s=0.0, reject_backoff_s=30.0)
    uplink = Uplink(outbox, cloud, SigningKey(old, path, counters), DEVICE, settings, counters)
    outbox.append([Record("position", Priority.PERIODIC, 1000.0 + i, {"i": i}) for i in range(10)])
    uplink.tick(0.0)  # sealed with the old key, in flight
    save_private_key(new, tmp_path / "signing.key.tmp")
    os.replace(tmp_path / "signing.key.tmp", path)  # the rotation finished; the cloud holds the new key only
    cloud.key = new
    cloud.answer()  # bad_signature: as for an old-key batch sealed after the rotation time
    uplink.tick(1.0)  # the rows go again now, with the new key: no 30 s trust pause
    cloud.answer()
    uplink.tick(2.0)
    # The ten rows, and the notice naming the refused batch as abandoned (its rows went under a later seq).
    assert outbox.depth() == 0 and cloud.stored == 10 + 1
    snap = counters.snapshot()
    assert snap["rejects_old_key"] == 1 and not snap.get("rejects_not_trusted") and snap["signing_key_switches"] == 1
