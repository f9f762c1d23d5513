"""The sealed envelope: ``MAGIC | version | header | compressed body | Ed25519 signature``.

The signature (RFC 8032 Ed25519, 64 bytes, deterministic: the same batch and key always give the
same blob) covers every byte before it. ``open_batch`` checks, in this order and before touching
the body: magic, version, header limits (``truncated``, ``malformed``, ``decompression_bomb``),
the device's public key, the signature; only then does it inflate (bounded by the declared length)
and decode. Each failure is a ``VerificationError``/``WireError`` whose ``reason`` the ingest counts.

``batch_hash`` (SHA-256 of the whole sealed blob, signature included) links each batch to the
previous one through ``Batch.prev_hash``.

Key helpers read and write Ed25519 keys as PEM (PKCS#8 private, SubjectPublicKeyInfo public), the
form provisioning hands to a device and registers in the cloud.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.wire.codec import FORMAT_VERSION, MAX_BODY_BYTES, Header, get_format
from edge_agent.wire.columns import BatchColumns
from edge_agent.wire.errors import InvalidRecord, VerificationError, WireError
from edge_agent.wire.model import Batch
from edge_agent.wire.varint import Reader

MAGIC = b"FTWB"  # Fleet Telematics Wire Batch
SIGNATURE_BYTES = 64
PublicKeyLookup = Callable[[str], Ed25519PublicKey | None]


def seal(batch: Batch, private_key: Ed25519PrivateKey, version: int = FORMAT_VERSION) -> bytes:
    """Encode, compress and sign ``batch``. Raises ``InvalidRecord`` if it cannot be carried."""
    fmt = get_format(version)
    raw = fmt.encode_body(batch.records)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRecord(f"body of {len(raw)} bytes exceeds MAX_BODY_BYTES={MAX_BODY_BYTES}; split the batch")
    body = fmt.compress(raw)
    header = Header(version, batch.device_id, batch.boot_epoch, batch.seq, batch.prev_hash, batch.created_at,
                    batch.schema_version, len(batch.records), len(raw), len(body))
    signed = MAGIC + bytes([version]) + fmt.write_header(header) + body
    return signed + private_key.sign(signed)


def read_header(blob: bytes) -> tuple[Header, int]:
    """The header of a sealed blob and the offset of its body; not verified (see ``open_batch``)."""
    if blob[: len(MAGIC)] != MAGIC[: len(blob)]:
        raise VerificationError("bad_magic", f"starts with {bytes(blob[:len(MAGIC)])!r}")
    if len(blob) <= len(MAGIC):
        raise VerificationError("truncated", f"{len(blob)} bytes")
    fmt = get_format(blob[len(MAGIC)])
    r = Reader(blob, len(MAGIC) + 1, short_reason="truncated")
    header = fmt.read_header(r)
    end = r.pos + header.body_len + SIGNATURE_BYTES
    if end > len(blob):
        raise VerificationError("truncated", f"{len(blob)} bytes, header says {end}")
    if end < len(blob):
        raise WireError("malformed", f"{len(blob) - end} bytes after the signature")
    return header, r.pos


def open_batch(blob: bytes, public_key_lookup: PublicKeyLookup) -> Batch:
    """Verify and decode a sealed batch. ``public_key_lookup(device_id)`` returns the device's key or None.

    Every failure is a ``VerificationError`` whose ``reason`` is one of ``errors.REASONS``.
    """
    try:
        return _open(blob, public_key_lookup)
    except VerificationError:
        raise
    except WireError as exc:
        raise VerificationError(exc.reason, exc.detail) from None


def open_columns(blob: bytes, public_key_lookup: PublicKeyLookup) -> BatchColumns:
    """``open_batch`` with the records left as columns (what the cloud's ingest stores); same checks,
    same ``VerificationError`` reasons."""
    try:
        header, raw = _verified_body(blob, public_key_lookup)
        body = get_format(header.format_version).decode_columns(raw, header.record_count)
        try:  # the header's identity fields, checked by Batch itself (no records: nothing else to check)
            Batch(header.device_id, header.boot_epoch, header.seq, header.prev_hash, header.created_at, (),
                  header.schema_version)
        except InvalidRecord as exc:
            raise WireError("malformed", f"signed header out of range: {exc.detail}") from None
    except VerificationError:
        raise
    except WireError as exc:
        raise VerificationError(exc.reason, exc.detail) from None
    return BatchColumns(header.device_id, header.boot_epoch, header.seq, header.prev_hash, header.created_at, body,
                        header.schema_version)


def _verified_body(blob: bytes, public_key_lookup: PublicKeyLookup) -> tuple[Header, bytes]:
    """The header and the inflated body of a blob whose signature verifies."""
    header, body_at = read_header(blob)
    key = public_key_lookup(header.device_id)
    if key is None:
        raise VerificationError("unknown_device", header.device_id)
    signed, signature = blob[:-SIGNATURE_BYTES], blob[-SIGNATURE_BYTES:]
    try:
        key.verify(bytes(signature), bytes(signed))
    except InvalidSignature:
        raise VerificationError("bad_signature", f"device {header.device_id} seq {header.seq}") from None
    raw = get_format(header.format_version).decompress(bytes(blob[body_at : body_at + header.body_len]),
                                                       header.raw_len)
    return header, raw


def _open(blob: bytes, public_key_lookup: PublicKeyLookup) -> Batch:
    header, raw = _verified_body(blob, public_key_lookup)
    records = get_format(header.format_version).decode_body(raw, header.record_count)
    try:
        return Batch(header.device_id, header.boot_epoch, header.seq, header.prev_hash, header.created_at,
                     records, header.schema_version)
    except InvalidRecord as exc:
        raise WireError("malformed", f"signed header out of range: {exc.detail}") from None


def batch_hash(blob: bytes) -> bytes:
    """SHA-256 of a sealed blob: the next batch's ``prev_hash``."""
    return hashlib.sha256(blob).digest()


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key_pem(data: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"not an Ed25519 private key: {type(key).__name__}")
    return key


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key: {type(key).__name__}")
    return key


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the key as PEM, readable by its owner only (created 0600, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
    os.chmod(path, 0o600)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    return load_private_key_pem(Path(path).read_bytes())


def save_public_key(key: Ed25519PrivateKey | Ed25519PublicKey, path: Path) -> None:
    Path(path).write_bytes(public_key_pem(key))


def load_public_key(path: Path) -> Ed25519PublicKey:
    return load_public_key_pem(Path(path).read_bytes())
