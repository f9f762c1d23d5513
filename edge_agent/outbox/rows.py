"""Records as the outbox stores them: compact JSON payloads, the quota's size measure, StoredRecord.

The quota charges each row ``row_size``: the UTF-8 bytes of its payload JSON and its kind, plus
``ROW_OVERHEAD_BYTES`` for the fixed columns (id, priority, two timestamps, size, flag) and SQLite's
record header. It is what the records themselves occupy, not the file: indexes, free pages and the
WAL come on top (``bench/bench_outbox.py`` prints the real bytes on disk per record).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

#: Bytes charged per row on top of kind and payload: 8-byte id, priority, ts, received_at, size and
#: flag columns (~36 bytes as SQLite stores them) plus the record header and cell pointer.
ROW_OVERHEAD_BYTES = 48

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False)


def encode(payload: Mapping[str, object]) -> str:
    """Compact JSON. ASCII-only, so ``len`` of the string is its byte count."""
    return _encoder.encode(payload)


def row_size(kind: str, payload_json: str) -> int:
    return ROW_OVERHEAD_BYTES + len(kind.encode()) + len(payload_json)


class Prepared(NamedTuple):
    """A record validated and serialised, ready for an INSERT (field order = column order)."""

    kind: str
    priority: int
    ts: float
    size: int
    payload: str


def prepare(kind: object, priority: object, ts: object, payload: object) -> Prepared | None:
    """Serialise one record, or None when it cannot be stored (the caller counts and skips it)."""
    if not isinstance(kind, str) or not kind or not isinstance(payload, Mapping):
        return None
    try:
        ts_f = float(ts)  # type: ignore[arg-type]
        prio = int(priority)  # type: ignore[call-overload]
        text = _encoder.encode(payload)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return None
    if not math.isfinite(ts_f):
        # SQLite stores NaN as NULL; a record without a time is useless to the cloud anyway.
        return None
    return Prepared(kind, prio, ts_f, row_size(kind, text), text)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back from the outbox (``claim``), with its id and the quota's byte size."""

    id: int
    kind: str
    priority: int
    timestamp: float
    received_at: float
    payload: dict[str, object]
    size: int
