"""A decoded batch body as columns: what the cloud's ingest stores without a Python object per record.

``open_batch`` hands out ``WireRecord`` objects (a validated dataclass and a payload dict each: about
3 us per record, more than the whole columnar decode). The cloud ingest needs neither: it writes
rows column by column. So format v1 decodes into ``DecodedBody`` (record columns plus the position
and sample columns exactly as they travel, generic payloads as dicts), and ``records()`` builds the
``WireRecord`` tuple from it for everyone else; both views hold the same values.

``BatchColumns`` is a ``Batch`` whose records stay in a ``DecodedBody`` (``sign.open_columns``).
Decoding validates every field against the same limits ``WireRecord`` and ``Batch`` enforce, in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.wire.errors import InvalidRecord
from edge_agent.wire.model import MAX_ABS_TIME_S, MAX_ID, MAX_KIND_CHARS, MAX_PRIORITY, Batch, WireRecord

#: Whole milliseconds whose time in seconds is within ``MAX_ABS_TIME_S`` (``t / 1000.0`` is monotonic).
MAX_ABS_TIME_MS = int(MAX_ABS_TIME_S) * 1000


@dataclass(frozen=True, slots=True)
class DecodedPositions:
    """Columnar positions (``kinds.PositionCodec``), dequantised; ``optional[key][i]`` is None where the
    i-th position lacks that field. Keys of ``optional`` are in payload order."""

    lat: Sequence[float] = ()
    lon: Sequence[float] = ()
    optional: dict[str, Sequence[float | int | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lat)

    def payloads(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"lat": a, "lon": b} for a, b in zip(self.lat, self.lon, strict=True)]
        for key, values in self.optional.items():
            for p, v in zip(out, values, strict=True):
                if v is not None:
                    p[key] = v
        return out


@dataclass(frozen=True, slots=True)
class DecodedSamples:
    """Columnar samples (``kinds.SampleCodec``): one entry per sample in each column."""

    signal: Sequence[str] = ()
    value: Sequence[float | int] = ()
    unit: Sequence[str] = ()
    source: Sequence[str] = ()

    def __len__(self) -> int:
        return len(self.signal)

    def payloads(self) -> list[dict[str, Any]]:
        return [{"signal": s, "value": v, "unit": u, "source": src}
                for s, v, u, src in zip(self.signal, self.value, self.unit, self.source, strict=True)]


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """Records as columns, in batch order. ``generic``, ``position_index`` and ``sample_index`` say
    which records (by index) carry which payload form; together they cover every record once."""

    ids: Sequence[int]
    kinds: Sequence[str]
    priorities: Sequence[int]
    timestamps: Sequence[float]
    received_at: Sequence[float]
    generic_index: Sequence[int] = ()
    generic: Sequence[dict[str, Any]] = ()
    position_index: Sequence[int] = ()
    positions: DecodedPositions = DecodedPositions()
    sample_index: Sequence[int] = ()
    samples: DecodedSamples = DecodedSamples()

    def __len__(self) -> int:
        return len(self.ids)

    def payloads(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{}] * len(self.ids)
        for index, payloads in ((self.generic_index, self.generic),
                                (self.position_index, self.positions.payloads()),
                                (self.sample_index, self.samples.payloads())):
            for i, p in zip(index, payloads, strict=True):
                out[i] = p
        return out

    def records(self) -> tuple[WireRecord, ...]:
        return tuple(map(WireRecord, self.ids, self.kinds, self.priorities, self.timestamps, self.received_at,
                         self.payloads()))

    def check(self) -> None:
        """Raise ``InvalidRecord`` if any value is outside what ``WireRecord``/``Batch`` accept."""
        n = len(self.ids)
        if not n:
            return
        if min(self.ids) < 0 or max(self.ids) > MAX_ID:
            raise InvalidRecord(f"a record id outside [0, {MAX_ID}]")
        if len(set(self.ids)) != n:
            raise InvalidRecord("record ids repeat within the batch (the cloud de-duplicates by id)")
        if min(self.priorities) < -MAX_PRIORITY - 1 or max(self.priorities) > MAX_PRIORITY:
            raise InvalidRecord(f"a priority outside +-{MAX_PRIORITY}")
        for kind in set(self.kinds):
            if not 0 < len(kind) <= MAX_KIND_CHARS:
                raise InvalidRecord(f"kind must be a non-empty str of at most {MAX_KIND_CHARS} chars, not {kind!r}")

    @classmethod
    def from_records(cls, records: Sequence[WireRecord]) -> DecodedBody:
        """Columns of already-built records (every payload in the generic form)."""
        return cls([r.id for r in records], [r.kind for r in records], [r.priority for r in records],
                   [r.timestamp for r in records], [r.received_at for r in records], range(len(records)),
                   [r.payload for r in records])


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """A verified batch whose records stay columns (``Batch``'s identity and chain fields, same meaning)."""

    device_id: str
    boot_epoch: int
    seq: int
    prev_hash: bytes
    created_at: float
    body: DecodedBody
    schema_version: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.device_id, self.boot_epoch, self.seq)

    def __len__(self) -> int:
        return len(self.body)

    @classmethod
    def of(cls, batch: Batch) -> BatchColumns:
        return cls(batch.device_id, batch.boot_epoch, batch.seq, batch.prev_hash, batch.created_at,
                   DecodedBody.from_records(batch.records), batch.schema_version)

    def to_batch(self) -> Batch:
        return Batch(self.device_id, self.boot_epoch, self.seq, self.prev_hash, self.created_at,
                     self.body.records(), self.schema_version)
