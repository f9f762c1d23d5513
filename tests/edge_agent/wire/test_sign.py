"""The sealed envelope: what verification rejects, and in which order, with which reason."""

from __future__ import annotations

import stat
import tracemalloc
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.wire import (
    GENESIS_HASH,
    MAX_BODY_BYTES,
    REASONS,
    Batch,
    InvalidRecord,
    WireError,
    WireRecord,
    batch_hash,
    generate_private_key,
    load_private_key,
    load_public_key,
    open_batch,
    read_header,
    save_private_key,
    save_public_key,
    seal,
)
from edge_agent.wire.codec import Header, get_format
from edge_agent.wire.sign import MAGIC, SIGNATURE_BYTES, load_private_key_pem, load_public_key_pem
from tests.edge_agent.wire.helpers import check_batch

KEY = generate_private_key()
OTHER = generate_private_key()
KEYS = {"dev-1": KEY.public_key(), "dev-2": OTHER.public_key()}


def _batch(n: int = 25, seq: int = 9, prev: bytes = GENESIS_HASH) -> Batch:
    recs = []
    for i in range(n):
        ts = 1_764_000_000.0 + i
        if i % 5 == 4:
            recs.append(WireRecord(100 + i, "idle_started", 20, ts, ts + 0.1, {"duration_s": 61.0, "where": "depot ✓"}))
        elif i % 2:
            recs.append(WireRecord(100 + i, "sample", 10, ts, ts + 0.01,
                                   {"signal": "engine_speed", "value": 800 + i * 0.125, "unit": "rpm", "source": "j"}))
        else:
            recs.append(WireRecord(100 + i, "position", 10, ts, ts + 0.08,
                                   {"lat": 52.5 + i * 1e-4, "lon": 13.4 - i * 1e-4, "speed_mps": 11.0, "mode": 3}))
    return Batch("dev-1", 4, seq, prev, 1_764_000_100.5, tuple(recs))


BATCH = _batch()
BLOB = seal(BATCH, KEY)


def _reason(blob: bytes, keys: dict = KEYS) -> str:
    with pytest.raises(WireError) as err:
        open_batch(blob, keys.get)
    assert err.value.reason in REASONS
    return err.value.reason


def test_seal_open_round_trip_and_layout() -> None:
    assert BLOB[:5] == MAGIC + b"\x01"
    check_batch(BATCH, open_batch(BLOB, KEYS.get))
    header, body_at = read_header(BLOB)
    assert (header.device_id, header.boot_epoch, header.seq, header.record_count) == ("dev-1", 4, 9, 25)
    assert body_at + header.body_len + SIGNATURE_BYTES == len(BLOB)


def test_sealing_is_deterministic() -> None:
    assert seal(_batch(), KEY) == BLOB  # Ed25519 (RFC 8032) signatures are deterministic


def test_hash_chain_links_batches() -> None:
    b2 = _batch(seq=10, prev=batch_hash(BLOB))
    blob2 = seal(b2, KEY)
    got = open_batch(blob2, KEYS.get)
    assert got.prev_hash == batch_hash(BLOB) == __import__("hashlib").sha256(BLOB).digest()
    assert batch_hash(blob2) != batch_hash(BLOB)


def test_every_single_byte_flip_is_rejected() -> None:
    for i in range(len(BLOB)):
        for mask in (0x01, 0x80):
            damaged = bytearray(BLOB)
            damaged[i] ^= mask
            with pytest.raises(WireError) as err:
                open_batch(bytes(damaged), KEYS.get)
            assert err.value.reason in ("bad_magic", "unknown_version", "truncated", "malformed", "unknown_device",
                                        "bad_signature", "decompression_bomb"), (i, mask, err.value)
            if i >= 5 + len(b"\x05dev-1") + 40:  # past magic, version, device id and the fixed header fields
                assert err.value.reason in ("bad_signature", "truncated", "malformed", "decompression_bomb")


def test_body_and_signature_flips_are_bad_signature() -> None:
    _, body_at = read_header(BLOB)
    for i in range(body_at, len(BLOB)):
        damaged = bytearray(BLOB)
        damaged[i] ^= 0x10
        assert _reason(bytes(damaged)) == "bad_signature"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_blobs_are_rejected_with_a_reason(data: bytes) -> None:
    _reason(data)
    _reason(MAGIC + b"\x01" + data)


def test_wrong_key_and_unknown_device() -> None:
    assert _reason(BLOB, {"dev-1": OTHER.public_key()}) == "bad_signature"
    assert _reason(BLOB, {"dev-2": KEY.public_key()}) == "unknown_device"
    # another device re-signing dev-1's batch with its own key is still rejected
    forged = BLOB[:-SIGNATURE_BYTES] + OTHER.sign(BLOB[:-SIGNATURE_BYTES])
    assert _reason(forged) == "bad_signature"


def test_every_truncation_is_truncated() -> None:
    for n in range(len(BLOB)):
        assert _reason(BLOB[:n]) == "truncated", n


def test_trailing_bytes_bad_magic_unknown_version() -> None:
    assert _reason(BLOB + b"\x00") == "malformed"
    assert _reason(b"GARBAGE" + BLOB) == "bad_magic"
    assert _reason(b"{" + BLOB[1:]) == "bad_magic"
    assert _reason(BLOB[:4] + b"\x02" + BLOB[5:]) == "unknown_version"
    with pytest.raises(WireError) as err:
        seal(BATCH, KEY, version=99)
    assert err.value.reason == "unknown_version"


def _signed(header: Header, body: bytes, key=KEY) -> bytes:
    fmt = get_format(1)
    signed = MAGIC + b"\x01" + fmt.write_header(header) + body
    return signed + key.sign(signed)


def test_declared_body_over_the_limit_is_refused_before_anything_else() -> None:
    header = Header(1, "dev-1", 1, 1, GENESIS_HASH, 0.0, 1, 0, MAX_BODY_BYTES + 1, 3)
    blob = MAGIC + b"\x01" + get_format(1).write_header(header) + b"abc" + bytes(SIGNATURE_BYTES)
    assert _reason(blob) == "decompression_bomb"


@pytest.mark.parametrize("declared", [100, MAX_BODY_BYTES])
def test_signed_body_inflating_past_its_declared_size_is_a_bomb(declared: int) -> None:
    # 64 MiB of zeros deflate to about 64 kB: a device (or a stolen key) could send this.
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    body = b"".join(c.compress(chunk) for _ in range(64)) + c.flush()
    blob = _signed(Header(1, "dev-1", 1, 1, GENESIS_HASH, 0.0, 1, 0, declared, len(body)), body)
    tracemalloc.start()
    try:
        assert _reason(blob) == "decompression_bomb"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Bounded by the declared size (zlib's output buffer plus its copy into bytes), not the 64 MiB.
    assert peak < 2 * declared + (4 << 20)


def test_signed_but_malformed_body_is_malformed() -> None:
    fmt = get_format(1)
    raw = b"\x00\x05"  # empty string table, then junk where 3 records should be
    body = fmt.compress(raw)
    blob = _signed(Header(1, "dev-1", 1, 1, GENESIS_HASH, 0.0, 1, 3, len(raw), len(body)), body)
    assert _reason(blob) == "malformed"


def test_oversized_batch_refused_at_seal() -> None:
    big = "x" * (1 << 20)
    recs = tuple(WireRecord(i, "blob", 0, 0.0, 0.0, {f"k{i}": big + str(i)}) for i in range(17))
    with pytest.raises(InvalidRecord):
        seal(Batch("dev-1", 1, 1, GENESIS_HASH, 0.0, recs), KEY)


def test_key_files_round_trip(tmp_path: Path) -> None:
    priv, pub = tmp_path / "device.pem", tmp_path / "device.pub.pem"
    save_private_key(KEY, priv)
    save_public_key(KEY, pub)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in priv.read_bytes() and b"BEGIN PUBLIC KEY" in pub.read_bytes()
    loaded, loaded_pub = load_private_key(priv), load_public_key(pub)
    blob = seal(BATCH, loaded)
    assert blob == BLOB
    check_batch(BATCH, open_batch(blob, {"dev-1": loaded_pub}.get))


def test_non_ed25519_keys_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    with pytest.raises(ValueError):
        load_private_key_pem(pem)
    pub = ec_key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError):
        load_public_key_pem(pub)
