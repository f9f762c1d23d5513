"""What travels between vehicle and cloud: ``WireRecord``, ``Batch`` (sealed by ``sign``) and ``Ack``.

A batch is identified by ``(device_id, boot_epoch, seq)``. ``seq`` is per device and never repeats:
the uplink persists a new ``boot_epoch`` before its first batch after every start, so a power cut
that rolls back the last SQLite commits (and with them a ``seq`` counter) cannot reuse a pair the
cloud has already seen. ``prev_hash`` is ``batch_hash`` of the previous sealed batch (``GENESIS_HASH``
for the first one), so the cloud can spot a gap or a fork in a device's chain.

Every limit is a named constant below; constructing a record or batch outside them raises
``InvalidRecord`` (the uplink counts and skips such a row rather than sealing something the cloud
would reject).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from edge_agent.wire.errors import InvalidRecord, WireError

#: Schema of the record payloads (what "position" or "sample" fields mean); bumped on a semantic change.
SCHEMA_VERSION = 1
#: ``prev_hash`` of a device's first batch.
GENESIS_HASH = bytes(32)
HASH_BYTES = 32
#: Device ids end up in MQTT topics and key lookups: keep them to a safe alphabet and short.
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_KIND_CHARS = 64
#: Times (device and wall) must be finite and within +-1e11 s of the epoch (year 5138): millisecond
#: integers then stay below 2**53, so quantising to ms and back is exact and idempotent.
MAX_ABS_TIME_S = 1e11
MAX_RECORDS_PER_BATCH = 100_000
MAX_ID = 2**63 - 1
MAX_PRIORITY = 2**31 - 1
ACK_STATUSES = ("committed", "rejected", "duplicate")


def _check_time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{name} must be a number, not {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x) or abs(x) > MAX_ABS_TIME_S:
        raise InvalidRecord(f"{name} {value!r} is not a finite time within {MAX_ABS_TIME_S:g} s")
    return x


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRecord(f"{name} must be an int in [{lo}, {hi}], not {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One outbox row as it travels: ``payload`` is JSON-like (None, bool, int, float incl. NaN and
    infinities, str, list, dict with str keys; tuples travel as lists).

    Times are device time (``timestamp``) and edge wall time (``received_at``) in seconds; the wire
    carries both to the millisecond (see ``codec``). Positions are quantised as documented in
    ``kinds``; everything else is carried exactly.
    """

    id: int
    kind: str
    priority: int
    timestamp: float
    received_at: float
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_int("id", self.id, 0, MAX_ID)
        _check_int("priority", self.priority, -MAX_PRIORITY - 1, MAX_PRIORITY)
        object.__setattr__(self, "priority", int(self.priority))  # IntEnum -> int: the wire has no enums
        if not isinstance(self.kind, str) or not 0 < len(self.kind) <= MAX_KIND_CHARS:
            raise InvalidRecord(f"kind must be a non-empty str of at most {MAX_KIND_CHARS} chars, not {self.kind!r}")
        object.__setattr__(self, "timestamp", _check_time("timestamp", self.timestamp))
        object.__setattr__(self, "received_at", _check_time("received_at", self.received_at))
        if not isinstance(self.payload, dict):
            raise InvalidRecord(f"payload must be a dict, not {type(self.payload).__name__}")


@dataclass(frozen=True, slots=True)
class Batch:
    """A signed group of records (see module docstring for the identity and chain fields)."""

    device_id: str
    boot_epoch: int
    seq: int
    prev_hash: bytes
    created_at: float
    records: tuple[WireRecord, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not DEVICE_ID_RE.fullmatch(self.device_id):
            raise InvalidRecord(f"device_id {self.device_id!r} does not match {DEVICE_ID_RE.pattern}")
        _check_int("boot_epoch", self.boot_epoch, 0, MAX_ID)
        _check_int("seq", self.seq, 0, MAX_ID)
        _check_int("schema_version", self.schema_version, 1, 0xFFFF)
        if not isinstance(self.prev_hash, bytes | bytearray) or len(self.prev_hash) != HASH_BYTES:
            raise InvalidRecord(f"prev_hash must be {HASH_BYTES} bytes")
        object.__setattr__(self, "prev_hash", bytes(self.prev_hash))
        object.__setattr__(self, "created_at", _check_time("created_at", self.created_at))
        records = tuple(self.records)
        if len(records) > MAX_RECORDS_PER_BATCH:
            raise InvalidRecord(f"{len(records)} records exceed MAX_RECORDS_PER_BATCH={MAX_RECORDS_PER_BATCH}")
        for r in records:
            if not isinstance(r, WireRecord):
                raise InvalidRecord(f"records must be WireRecord, not {type(r).__name__}")
        if len({r.id for r in records}) != len(records):
            raise InvalidRecord("record ids repeat within the batch (the cloud de-duplicates by id)")
        object.__setattr__(self, "records", records)

    @property
    def key(self) -> tuple[str, int, int]:
        """The batch's identity at the cloud (idempotent store key)."""
        return (self.device_id, self.boot_epoch, self.seq)


@dataclass(frozen=True, slots=True)
class Ack:
    """The cloud's answer to one batch. Only ``committed`` (and ``duplicate``: committed before)
    lets the device delete the batch's rows; ``reason`` says why a batch was ``rejected``.

    ``batch_hash`` is ``sign.batch_hash`` of the blob the ack answers (None only in a version 1 ack,
    which predates it). ``(device_id, boot_epoch, seq)`` alone names a slot, not a batch: a blob the
    device gave up on may still be delivered late, under a number it no longer uses for those rows,
    so the device acts on an ack only when its hash is that of the batch it sent under the number.
    """

    device_id: str
    boot_epoch: int
    seq: int
    status: str
    reason: str = ""
    stored: int = 0
    batch_hash: bytes | None = None

    def __post_init__(self) -> None:
        if self.status not in ACK_STATUSES:
            raise WireError("bad_ack", f"status {self.status!r} is not one of {ACK_STATUSES}")
        if not isinstance(self.device_id, str) or not DEVICE_ID_RE.fullmatch(self.device_id):
            raise WireError("bad_ack", f"device_id {self.device_id!r}")
        for name in ("boot_epoch", "seq", "stored"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
                raise WireError("bad_ack", f"{name} {value!r}")
        if not isinstance(self.reason, str):
            raise WireError("bad_ack", "reason must be a string")
        if self.batch_hash is not None:
            if not isinstance(self.batch_hash, bytes | bytearray) or len(self.batch_hash) != HASH_BYTES:
                raise WireError("bad_ack", f"batch_hash must be {HASH_BYTES} bytes")
            object.__setattr__(self, "batch_hash", bytes(self.batch_hash))

    @property
    def releases_rows(self) -> bool:
        return self.status in ("committed", "duplicate")


#: Ack document versions. 1: no version key, no hash (acks from clouds before the hash binding).
#: 2: ``"v": 2`` and ``"batch_hash"`` (64 lowercase hex digits). ``encode_ack`` writes 2 whenever the
#: ack has a hash; ``decode_ack`` reads both, so acks queued for a device across an upgrade still parse.
ACK_VERSION = 2
_ACK_V1_FIELDS = ("device_id", "boot_epoch", "seq", "status", "reason", "stored")
_ACK_V2_FIELDS = (*_ACK_V1_FIELDS, "v", "batch_hash")
_ACK_REQUIRED = frozenset({"device_id", "boot_epoch", "seq", "status"})
_HEX_HASH_RE = re.compile(f"[0-9a-f]{{{2 * HASH_BYTES}}}")
#: Acks are tiny; a bigger document is not an ack.
MAX_ACK_BYTES = 4096


def encode_ack(ack: Ack) -> bytes:
    """Compact, sorted-key JSON (acks are small and read by people debugging a broker); version 2
    when the ack carries a hash, else the version 1 document byte for byte."""
    doc: dict[str, object] = {name: getattr(ack, name) for name in _ACK_V1_FIELDS}
    if ack.batch_hash is not None:
        doc["v"] = ACK_VERSION
        doc["batch_hash"] = ack.batch_hash.hex()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_ack(data: bytes) -> Ack:
    """Parse ``encode_ack``'s output (version 1 or 2); anything else raises ``WireError('bad_ack')``."""
    if len(data) > MAX_ACK_BYTES:
        raise WireError("bad_ack", f"{len(data)} bytes exceed MAX_ACK_BYTES={MAX_ACK_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError("bad_ack", str(exc)) from None
    if not isinstance(doc, dict) or not set(doc) >= _ACK_REQUIRED:
        raise WireError("bad_ack", "not an ack document")
    version = doc.pop("v", 1)
    if isinstance(version, bool) or version not in (1, ACK_VERSION):
        raise WireError("bad_ack", f"unknown ack version {version!r}")
    if version == 1:
        if set(doc) - set(_ACK_V1_FIELDS):
            raise WireError("bad_ack", "not an ack document (version 1)")
        return Ack(**doc)
    if set(doc) - set(_ACK_V2_FIELDS) or "batch_hash" not in doc:
        raise WireError("bad_ack", f"not an ack document (version {ACK_VERSION})")
    text = doc.pop("batch_hash")
    if not isinstance(text, str) or not _HEX_HASH_RE.fullmatch(text):
        raise WireError("bad_ack", f"batch_hash must be {2 * HASH_BYTES} lowercase hex digits")
    return Ack(**doc, batch_hash=bytes.fromhex(text))
