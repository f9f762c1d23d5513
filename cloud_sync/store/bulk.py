"""The three hot inserts of a batch (records, positions, events), one round trip per table.

Ingest stores up to ``MAX_RECORDS_PER_BATCH`` records per transaction, so per-row overhead decides
the throughput (target: 50,000 records/s per worker into PostgreSQL). SQLAlchemy's generic
executemany spends most of its time building and processing one parameter dict per row, so these
statements are written once per dialect and fed column-wise:

- PostgreSQL: one ``INSERT ... SELECT FROM unnest(array, array, ...)``: every column travels as one
  array parameter, the server expands them (a single statement whatever the batch size);
- PostgreSQL, when none of the batch's record ids is stored yet (the normal case: outbox ids grow, so
  one index range probe over ``[min id, max id]`` decides): ``COPY ... FROM STDIN`` into the three
  tables, the server's fastest load path (about a third less time than the ``unnest`` insert);
- SQLite: the sqlite3 module's C ``executemany`` over plain tuples.

The ``COPY`` path is safe without conflict handling because every batch of a device is stored under
that device's row lock (``store.devices.get_device(for_update=True)``), so no other transaction can
insert the same (device, record id) between the probe and the copy.

The conflict rules are the store's idempotency (see ``store.batches``): a record already stored keeps
its row unless this batch is earlier by ``(boot_epoch, seq)``; positions and events are keyed by
record and never change once stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from cloud_sync.store.engine import dumps_payload
from cloud_sync.store.schema import records

_REC_COLS = ("device_id", "record_id", "kind", "priority", "device_time", "edge_received_at",
             "cloud_received_at", "boot_epoch", "seq", "payload")
_POS_COLS = ("device_id", "record_id", "device_time", "lat", "lon", "speed_mps", "course_deg")
_EVT_COLS = ("device_id", "record_id", "kind", "priority", "device_time", "payload")

_PG_TYPES = {"device_id": "text", "record_id": "bigint", "kind": "text", "priority": "integer",
             "device_time": "float8", "edge_received_at": "float8", "cloud_received_at": "float8",
             "boot_epoch": "bigint", "seq": "bigint", "payload": "jsonb", "lat": "float8", "lon": "float8",
             "speed_mps": "float8", "course_deg": "float8"}

_RECORD_CONFLICT = (
    " ON CONFLICT (device_id, record_id) DO UPDATE SET boot_epoch = excluded.boot_epoch, seq = excluded.seq,"
    " cloud_received_at = {least}(excluded.cloud_received_at, records.cloud_received_at)"
    " WHERE (excluded.boot_epoch, excluded.seq) < (records.boot_epoch, records.seq)"
)
_NOTHING = " ON CONFLICT DO NOTHING"


def _pg_sql(table: str, cols: tuple[str, ...], conflict: str, json_type: str = "jsonb") -> str:
    # psycopg's binary placeholders (%b): its text-format array dumper quotes every element through a
    # regex, which alone cost more than the insert. Payloads travel as text[] and are cast to jsonb.
    arrays = ", ".join(f"%({c})b::{'text' if _PG_TYPES[c] == 'jsonb' else _PG_TYPES[c]}[]" for c in cols)
    select = ", ".join(f"{c}::{json_type}" if _PG_TYPES[c] == "jsonb" else c for c in cols)
    return (f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM unnest({arrays}) AS u({', '.join(cols)})"
            + conflict)


def _sqlite_sql(table: str, cols: tuple[str, ...], conflict: str) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})" + conflict


_PG = {
    "records": _pg_sql("records", _REC_COLS, _RECORD_CONFLICT.format(least="LEAST"), "json"),
    "positions": _pg_sql("positions", _POS_COLS, _NOTHING),
    "events": _pg_sql("events", _EVT_COLS, _NOTHING),
}
_SQLITE = {
    "records": _sqlite_sql("records", _REC_COLS, _RECORD_CONFLICT.format(least="MIN")),
    "positions": _sqlite_sql("positions", _POS_COLS, _NOTHING),
    "events": _sqlite_sql("events", _EVT_COLS, _NOTHING),
}
COLUMNS = {"records": _REC_COLS, "positions": _POS_COLS, "events": _EVT_COLS}


def insert_rows(conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``COLUMNS[table]`` order, payloads as Python objects) into ``table``."""
    if not rows:
        return
    cols = COLUMNS[table]
    payload_at = cols.index("payload") if "payload" in cols else -1
    if payload_at >= 0:
        rows = [(*r[:payload_at], dumps_payload(r[payload_at]), *r[payload_at + 1 :]) for r in rows]
    if conn.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True))
        conn.exec_driver_sql(_PG[table], {c: list(v) for c, v in zip(cols, columns, strict=True)})
    else:
        conn.exec_driver_sql(_SQLITE[table], rows)


def _any_stored(conn: Connection, device_id: str, lo: int, hi: int) -> bool:
    c = records.c
    query = select(c.record_id).where(c.device_id == device_id, c.record_id >= lo, c.record_id <= hi).limit(1)
    return conn.execute(query).first() is not None


def _copy(conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    cols = COLUMNS[table]
    payload_at = cols.index("payload") if "payload" in cols else -1
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        if payload_at < 0:
            for row in rows:
                copy.write_row(row)
        else:
            for row in rows:
                copy.write_row((*row[:payload_at], dumps_payload(row[payload_at]), *row[payload_at + 1 :]))


def store_batch_rows(conn: Connection, device_id: str, rec_rows: list[tuple[Any, ...]],
                     pos_rows: list[tuple[Any, ...]], evt_rows: list[tuple[Any, ...]]) -> None:
    """Store one batch's rows (see the module docstring for which path is taken)."""
    if not rec_rows:
        return
    if conn.dialect.name == "postgresql":
        ids = [r[1] for r in rec_rows]
        if not _any_stored(conn, device_id, min(ids), max(ids)):
            for table, rows in (("records", rec_rows), ("positions", pos_rows), ("events", evt_rows)):
                if rows:
                    _copy(conn, table, rows)
            return
    insert_rows(conn, "records", rec_rows)
    insert_rows(conn, "positions", pos_rows)
    insert_rows(conn, "events", evt_rows)
