"""Format version 1: envelope header, canonical body and compression. Frozen: never edit the layout.

Header (after ``sign.MAGIC`` and the version byte; uvarint = LEB128, see ``varint``)::

    device_id       uvarint length + ASCII ([A-Za-z0-9._:-], 1..64)
    boot_epoch      uvarint
    seq             uvarint
    prev_hash       32 bytes (SHA-256 of the previous sealed batch)
    created_at      binary64, big-endian (device wall time, exact)
    schema_version  uvarint
    record_count    uvarint
    raw_len         uvarint (body length after decompression, <= MAX_BODY_BYTES)
    body_len        uvarint (compressed body length)

Body (raw DEFLATE, RFC 1951, zlib level 9, no zlib/gzip wrapper: the signature already covers
integrity and ``raw_len`` the length)::

    string table    uvarint count, then each string as uvarint length + UTF-8
    kind            per record: string-table index
    codec           per record: 0 generic, 1 position columns, 2 sample columns (``kinds.COLUMNAR``)
    id              order-1 delta column
    priority        order-1 delta column
    timestamp       order-2 delta column of milliseconds (round half to even)
    received_at     order-1 delta column of (received_at ms - timestamp ms): the two clocks keep a
                    nearly constant offset, so this is mostly 0
    generic         the payload of each codec-0 record in ``values`` form, in record order
    positions       ``kinds.PositionCodec`` columns of the codec-1 records, in record order
    samples         ``kinds.SampleCodec`` columns of the codec-2 records, in record order

Times travel in whole milliseconds: each decoded time is within 0.5 ms of the sent one.
"""

from __future__ import annotations

import zlib
from typing import Any

from edge_agent.wire.codec import MAX_BODY_BYTES, Header
from edge_agent.wire.columns import MAX_ABS_TIME_MS, DecodedBody, DecodedPositions, DecodedSamples
from edge_agent.wire.errors import InvalidRecord, VerificationError, WireError
from edge_agent.wire.kinds import COLUMNAR, PositionCodec, SampleCodec
from edge_agent.wire.model import DEVICE_ID_RE, HASH_BYTES, MAX_RECORDS_PER_BATCH, WireRecord
from edge_agent.wire.values import StringTable, read_string_table, read_value, write_value
from edge_agent.wire.varint import Reader, Writer

_GENERIC = 0
_POSITIONS = next(t for t, c in COLUMNAR.items() if c is PositionCodec)
_SAMPLES = next(t for t, c in COLUMNAR.items() if c is SampleCodec)
_ZLIB_LEVEL = 9
_WBITS_RAW = -15
_MAX_DEVICE_ID = 64


def _ms(seconds: float) -> int:
    return round(seconds * 1000.0)


class FormatV1:
    version = 1

    def write_header(self, h: Header) -> bytes:
        w = Writer()
        w.blob(h.device_id.encode("ascii"))
        w.uvarint(h.boot_epoch)
        w.uvarint(h.seq)
        w.raw(h.prev_hash)
        w.f64(h.created_at)
        w.uvarint(h.schema_version)
        w.uvarint(h.record_count)
        w.uvarint(h.raw_len)
        w.uvarint(h.body_len)
        return w.getvalue()

    def read_header(self, r: Reader) -> Header:
        """Parse the header from ``r`` (whose short_reason is ``truncated``); limits are checked here,
        before the signature, because they bound what verification and decoding will allocate."""
        raw_id = r.take(r.count(_MAX_DEVICE_ID, "device id length"))
        device_id = raw_id.decode("ascii", "replace")
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise WireError("malformed", f"device id {device_id!r}")
        boot_epoch = r.uvarint()
        seq = r.uvarint()
        prev_hash = r.take(HASH_BYTES)
        created_at = r.f64()
        schema_version = r.uvarint()
        record_count = r.count(MAX_RECORDS_PER_BATCH, "record count")
        raw_len = r.uvarint()
        if raw_len > MAX_BODY_BYTES:
            raise VerificationError("decompression_bomb", f"body declares {raw_len} bytes > {MAX_BODY_BYTES}")
        body_len = r.uvarint()
        return Header(1, device_id, boot_epoch, seq, prev_hash, created_at, schema_version, record_count,
                      raw_len, body_len)

    def compress(self, raw: bytes) -> bytes:
        c = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, _WBITS_RAW, 9, zlib.Z_DEFAULT_STRATEGY)
        return c.compress(raw) + c.flush()

    def decompress(self, body: bytes, raw_len: int) -> bytes:
        d = zlib.decompressobj(_WBITS_RAW)
        try:
            # Never inflate more than one byte past the declared length: that byte proves a lie.
            out = d.decompress(body, raw_len + 1)
        except zlib.error as exc:
            raise WireError("malformed", f"deflate: {exc}") from None
        if len(out) > raw_len:
            raise VerificationError("decompression_bomb", f"body inflates past its declared {raw_len} bytes")
        if not d.eof or d.unused_data or len(out) != raw_len:
            raise WireError("malformed", f"deflate stream gives {len(out)} of {raw_len} bytes or has trailing data")
        return out

    def encode_body(self, records: tuple[WireRecord, ...]) -> bytes:
        table = StringTable()
        w = Writer()
        codecs: list[int] = []
        for rec in records:
            tag = _GENERIC
            for t, codec in COLUMNAR.items():
                if rec.kind == codec.kind and codec.fits(rec.payload):
                    tag = t
            codecs.append(tag)
        for rec in records:
            w.uvarint(table.ref(rec.kind))
        for tag in codecs:
            w.uvarint(tag)
        w.delta_column((rec.id for rec in records), order=1)
        w.delta_column((rec.priority for rec in records), order=1)
        ts = [_ms(rec.timestamp) for rec in records]
        w.delta_column(ts, order=2)
        w.delta_column((_ms(rec.received_at) - t for rec, t in zip(records, ts, strict=True)), order=1)
        for rec, tag in zip(records, codecs, strict=True):
            if tag == _GENERIC:
                write_value(w, table, rec.payload)
        for t, codec in COLUMNAR.items():
            codec.encode(w, table, [rec.payload for rec, tag in zip(records, codecs, strict=True) if tag == t])
        head = Writer()
        table.write(head)
        return head.getvalue() + w.getvalue()

    def decode_body(self, raw: bytes, record_count: int) -> tuple[WireRecord, ...]:
        return self.decode_columns(raw, record_count).records()

    def decode_columns(self, raw: bytes, record_count: int) -> DecodedBody:
        try:
            body = self._decode_columns(raw, record_count)
            body.check()
        except (OverflowError, ValueError) as exc:  # a mantissa too big for a float, columns of unequal length
            raise WireError("malformed", f"body: {exc}") from None
        except InvalidRecord as exc:
            raise WireError("malformed", f"decoded record out of range: {exc}") from None
        return body

    def _decode_columns(self, raw: bytes, record_count: int) -> DecodedBody:
        r = Reader(raw)
        strings = read_string_table(r)
        n = record_count
        if n > r.remaining():  # each record costs at least one byte in every common column
            raise WireError("malformed", f"{n} records cannot fit in {r.remaining()} bytes")
        kind_refs = r.uvarint_column(n)
        if n and max(kind_refs) >= len(strings):
            raise WireError("malformed", f"string index {max(kind_refs)} outside a table of {len(strings)}")
        kinds = [strings[k] for k in kind_refs]
        codecs = r.uvarint_column(n)
        for tag in set(codecs):
            if tag != _GENERIC and tag not in COLUMNAR:
                raise WireError("malformed", f"codec tag {tag}")
        ids = r.delta_column(n, order=1)
        priorities = r.delta_column(n, order=1)
        ts = r.delta_column(n, order=2)
        offsets = r.delta_column(n, order=1)
        received = [t + o for t, o in zip(ts, offsets, strict=True)]
        if n and max(-min(ts), max(ts), -min(received), max(received)) > MAX_ABS_TIME_MS:
            raise InvalidRecord(f"a time beyond {MAX_ABS_TIME_MS} ms of the epoch")
        where = {tag: [i for i, t in enumerate(codecs) if t == tag] for tag in (_GENERIC, *COLUMNAR)}
        generic: list[dict[str, Any]] = []
        for i in where[_GENERIC]:
            value = read_value(r, strings)
            if not isinstance(value, dict):
                raise WireError("malformed", f"record {i}: generic payload is not a dict")
            generic.append(value)
        decoded = []
        for t, codec in COLUMNAR.items():
            if any(kinds[i] != codec.kind for i in where[t]):
                raise WireError("malformed", f"codec {t} used for a record that is not a {codec.kind}")
            decoded.append(codec.decode(r, strings, len(where[t])))
        if r.remaining():
            raise WireError("malformed", f"{r.remaining()} bytes after the last column")
        positions, samples = decoded
        assert isinstance(positions, DecodedPositions) and isinstance(samples, DecodedSamples)
        return DecodedBody(ids, kinds, priorities, [t / 1000.0 for t in ts], [t / 1000.0 for t in received],
                           where[_GENERIC], generic, where[_POSITIONS], positions, where[_SAMPLES], samples)


FORMAT = FormatV1()
