"""``SigningKey``: the uplink follows the key file across a rotation, waits while one is under way (bounded)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.counters import Counters
from edge_agent.uplink.signing import NEXT_SUFFIX, SigningKey, fingerprint
from edge_agent.wire import save_private_key


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
