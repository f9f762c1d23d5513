"""One batch's rows for ``records``, ``positions`` and ``events``, built column by column.

Ingest receives a batch as columns (``edge_agent.wire.BatchColumns``), and the tables take columns
(``store.bulk``), so no per-record Python object is made on the way: the payload JSON of a columnar
sample or position is assembled from the strings and numbers it travelled as, with what
``store.engine.dumps_payload`` would write for the same dict (same keys in the same order, floats by
``repr``, strings JSON-escaped by the same encoder, non-finite floats tagged), so either path stores
the same document. Generic payloads (events, odd positions) go through ``dumps_payload``.

Which record goes where: every record to ``records``; a position with a usable fix (finite lat/lon
within range) also to ``positions``; anything that is neither a sample nor a position to ``events``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_sync.store.engine import FLOAT_TAG, dumps_payload
from edge_agent.wire import BatchColumns

#: Record kinds that are neither events nor positions (high-rate signal values; only in ``records``).
SAMPLE_KINDS = frozenset({"sample"})
POSITION_KIND = "position"
#: A record whose payload carries this integer reports the device's outbox backlog (records queued).
BACKLOG_KEY = "backlog_records"


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows of one table: ``columns`` (name -> one value per row) plus ``constants`` (same in every row).
    Payload columns hold JSON text."""

    table: str
    constants: Mapping[str, Any]
    columns: Mapping[str, Sequence[Any]]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def _values_json(values: Sequence[float | int]) -> list[str]:
    texts = list(map(repr, values))
    # repr of a non-finite float is 'nan', 'inf' or '-inf': the only reprs of an int or float with an 'n'
    if "n" in "".join(texts):
        texts = [f'{{"{FLOAT_TAG}":"{t}"}}' if "n" in t else t for t in texts]
    return texts


def _sample_json(batch: BatchColumns) -> list[str]:
    s = batch.body.samples
    pre = {sig: '{"signal":' + dumps_payload(sig) + ',"value":' for sig in set(s.signal)}
    post = {pair: ',"unit":' + dumps_payload(pair[0]) + ',"source":' + dumps_payload(pair[1]) + "}"
            for pair in set(zip(s.unit, s.source, strict=True))}
    return [pre[sig] + v + post[u, src] for sig, v, u, src in zip(s.signal, _values_json(s.value), s.unit, s.source,
                                                                    strict=True)]


def _position_json(batch: BatchColumns) -> list[str]:
    p = batch.body.positions
    out = ['{"lat":' + repr(a) + ',"lon":' + repr(b) for a, b in zip(p.lat, p.lon, strict=True)]
    for key, values in p.optional.items():
        sep = f',"{key}":'
        out = [o if v is None else o + sep + repr(v) for o, v in zip(out, values, strict=True)]
    return [o + "}" for o in out]


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def batch_rows(batch: BatchColumns, received_at: float) -> tuple[TableRows, TableRows, TableRows]:
    """The ``records``, ``positions`` and ``events`` rows of ``batch`` (see the module docstring)."""
    body = batch.body
    n = len(body)
    payload: list[str] = [""] * n
    for index, texts in ((body.sample_index, _sample_json(batch)), (body.position_index, _position_json(batch)),
                         (body.generic_index, [dumps_payload(g) for g in body.generic])):
        for i, text in zip(index, texts, strict=True):
            payload[i] = text
    ident = {"device_id": batch.device_id}
    records = TableRows("records", {**ident, "cloud_received_at": received_at, "boot_epoch": batch.boot_epoch,
                                    "seq": batch.seq},
                        {"record_id": body.ids, "kind": body.kinds, "priority": body.priorities,
                         "device_time": body.timestamps, "edge_received_at": body.received_at, "payload": payload})

    cp = body.positions
    # quantised values are finite; their range is still to check (almost always all in range)
    keep = [j for j, (a, b) in enumerate(zip(cp.lat, cp.lon, strict=True)) if abs(a) <= 90 and abs(b) <= 180]
    at = [body.position_index[j] for j in keep]
    nothing = [None] * len(keep)
    pos: dict[str, list[Any]] = {
        "record_id": [body.ids[i] for i in at], "device_time": [body.timestamps[i] for i in at],
        "lat": [cp.lat[j] for j in keep], "lon": [cp.lon[j] for j in keep],
        **{k: nothing if (col := cp.optional.get(k)) is None else [col[j] for j in keep]
           for k in ("speed_mps", "course_deg")},
    }
    evt: dict[str, list[Any]] = {k: [] for k in ("record_id", "kind", "priority", "device_time", "payload")}
    for i, g in zip(body.generic_index, body.generic, strict=True):
        kind = body.kinds[i]
        if kind == POSITION_KIND:
            glat, glon = _finite(g.get("lat")), _finite(g.get("lon"))
            # A position without a usable fix (NaN, out of range) stays in ``records`` only.
            if glat is not None and glon is not None and abs(glat) <= 90 and abs(glon) <= 180:
                for k, v in (("record_id", body.ids[i]), ("device_time", body.timestamps[i]), ("lat", glat),
                             ("lon", glon), ("speed_mps", _finite(g.get("speed_mps"))),
                             ("course_deg", _finite(g.get("course_deg")))):
                    pos[k].append(v)
        elif kind not in SAMPLE_KINDS:
            for k, e in (("record_id", body.ids[i]), ("kind", kind), ("priority", body.priorities[i]),
                         ("device_time", body.timestamps[i]), ("payload", payload[i])):
                evt[k].append(e)
    return records, TableRows("positions", ident, pos), TableRows("events", ident, evt)


def latest_backlog(batch: BatchColumns) -> tuple[float, int] | None:
    """``(device time, records)`` of the batch's newest backlog report, if any (only generic payloads
    can carry ``BACKLOG_KEY``: the columnar forms have fixed keys)."""
    backlog: tuple[float, int] | None = None
    times = batch.body.timestamps
    for i, g in zip(batch.body.generic_index, batch.body.generic, strict=True):
        value = g.get(BACKLOG_KEY)
        if type(value) is int and (backlog is None or times[i] >= backlog[0]):
            backlog = (times[i], value)
    return backlog
