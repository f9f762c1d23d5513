"""Canonical encoding of a batch, and the registry of format versions that can read one.

``FORMAT_VERSION`` is what this code writes. Every version ever written keeps an entry in
``FORMATS`` (``version -> "module:attribute"``, imported lazily as python-can lists its backends),
so a cloud that has upgraded still reads a vehicle that has not: a format change means a new module
(``v2.py``) and a new entry, never an edit of ``v1.py`` (its golden files in tests/data/wire/v1 pin
it byte for byte).

A format owns the envelope header layout after the magic and version byte, the body layout and the
compression; ``sign`` owns the magic, the signature and the order of checks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edge_agent.wire.errors import VerificationError
from edge_agent.wire.model import Batch, WireRecord
from edge_agent.wire.varint import Reader

if TYPE_CHECKING:
    from edge_agent.wire.columns import DecodedBody

FORMAT_VERSION = 1
FORMATS: dict[int, str] = {1: "edge_agent.wire.v1:FORMAT"}
#: Largest decompressed body any format may declare or produce (a decompression-bomb bound). A
#: 300 s batch of 1 Hz positions and 10 Hz samples is tens of kB before compression. Opening a blob
#: holds at most about twice this in memory (zlib's output buffer and its copy).
MAX_BODY_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Header:
    """Everything before the body: readable (and checked) before the signature is."""

    format_version: int
    device_id: str
    boot_epoch: int
    seq: int
    prev_hash: bytes
    created_at: float
    schema_version: int
    record_count: int
    raw_len: int  # body bytes after decompression
    body_len: int  # body bytes on the wire


class Format(Protocol):
    """One format version: header layout, canonical body, compression."""

    version: int

    def write_header(self, header: Header) -> bytes: ...

    def read_header(self, r: Reader) -> Header: ...

    def encode_body(self, records: tuple[WireRecord, ...]) -> bytes: ...

    def decode_body(self, raw: bytes, record_count: int) -> tuple[WireRecord, ...]: ...

    def decode_columns(self, raw: bytes, record_count: int) -> DecodedBody: ...

    def compress(self, raw: bytes) -> bytes: ...

    def decompress(self, body: bytes, raw_len: int) -> bytes: ...


_loaded: dict[int, Format] = {}


def get_format(version: int) -> Format:
    """The codec of ``version``; ``VerificationError('unknown_version')`` if there is none."""
    fmt = _loaded.get(version)
    if fmt is None:
        target = FORMATS.get(version)
        if target is None:
            raise VerificationError("unknown_version", f"format version {version}; known: {sorted(FORMATS)}")
        module, _, attr = target.partition(":")
        fmt = _loaded[version] = getattr(importlib.import_module(module), attr)
    return fmt


def encode_body(batch: Batch, version: int = FORMAT_VERSION) -> bytes:
    """The canonical (uncompressed) body of ``batch``: identical records give identical bytes."""
    return get_format(version).encode_body(batch.records)


def decode_body(raw: bytes, record_count: int, version: int = FORMAT_VERSION) -> tuple[WireRecord, ...]:
    return get_format(version).decode_body(raw, record_count)
