"""The three hot inserts of a batch (records, positions, events), one round trip per table.

Ingest stores up to ``MAX_RECORDS_PER_BATCH`` records per transaction, so per-row overhead decides
the throughput (target: 50,000 records/s per worker into PostgreSQL). Rows arrive column-wise
(``store.rows.TableRows``, built from the wire's columns without a Python object per record) and
leave column-wise:

- PostgreSQL, when none of the batch's record ids is stored yet (the normal case: outbox ids grow, so
  one index range probe over ``[min id, max id]`` in ``store.batches`` decides): ``COPY ... FROM STDIN``
  into ``records``, the server's fastest load path. The COPY text is assembled here in one
  ``str.format`` per row over pre-rendered columns and written in one call (psycopg's per-row
  ``write_row`` cost more than the rest of the store path). Positions and events (a tenth of the
  rows) follow in one statement;
- PostgreSQL otherwise: one statement for all three tables with the conflict rules;
- SQLite: the sqlite3 module's C ``executemany`` over plain tuples.

A PostgreSQL statement here is ``INSERT ... SELECT FROM unnest(array, array, ...)``: every column
travels as one array parameter and the server expands them, whatever the row count; several tables
go in one statement as data-modifying CTEs (``_pg_chain``). Round trips, not rows, are what a loaded
2-core machine makes slow (each waits for the server process to be scheduled), so the store spends
two of them on COPY and one on everything else.

The ``COPY`` path is safe without conflict handling because every batch of a device is stored under
that device's row lock (``store.devices.get_device(for_update=True)``), so no other transaction can
insert the same (device, record id) between the probe and the copy.

The conflict rules are the store's idempotency (see ``store.batches``): a record already stored keeps
its row unless this batch is earlier by ``(boot_epoch, seq)``; positions and events are keyed by
record and never change once stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from sqlalchemy import Connection, Insert

from cloud_sync.store.rows import TableRows

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
    # Parameters are named table_column: the three inserts travel as one statement (``_pg_chain``).
    arrays = ", ".join(f"%({table}_{c})b::{'text' if _PG_TYPES[c] == 'jsonb' else _PG_TYPES[c]}[]" for c in cols)
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


def _pg_chain(*tables: str) -> str:
    """One statement inserting into every table named (data-modifying CTEs): one round trip for all."""
    *first, last = tables
    ctes = ", ".join(f"{t}_ins AS ({_PG[t]})" for t in first)
    return (f"WITH {ctes} " if ctes else "") + _PG[last]


_PG_ALL = _pg_chain("records", "positions", "events")
_PG_SIDE = _pg_chain("positions", "events")
_SQLITE = {
    "records": _sqlite_sql("records", _REC_COLS, _RECORD_CONFLICT.format(least="MIN")),
    "positions": _sqlite_sql("positions", _POS_COLS, _NOTHING),
    "events": _sqlite_sql("events", _EVT_COLS, _NOTHING),
}
COLUMNS = {"records": _REC_COLS, "positions": _POS_COLS, "events": _EVT_COLS}
_TEXT_COLS = frozenset({"device_id", "kind", "payload"})
_NULLABLE = frozenset({"speed_mps", "course_deg"})
_NULL = "\\N"
#: Records of a fresh batch go by COPY (measured: less wall time than in the one statement, loaded
#: machine or not, though it costs a round trip more); False sends them with the other rows.
COPY_RECORDS = True
_PARAM = re.compile(r"%\((\w+)\)s")


def _pg_params(*tables: TableRows) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for rows in tables:
        n = len(rows)
        for c in COLUMNS[rows.table]:
            params[f"{rows.table}_{c}"] = [rows.constants[c]] * n if c in rows.constants else list(rows.columns[c])
    return params


def _sqlite_insert(conn: Connection, rows: TableRows) -> None:
    if len(rows):
        values = [repeat(rows.constants[c]) if c in rows.constants else rows.columns[c] for c in COLUMNS[rows.table]]
        conn.exec_driver_sql(_SQLITE[rows.table], list(zip(*values, strict=False)))  # constants repeat forever


def _escape(text: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _column_text(name: str, values: Sequence[Any]) -> list[str]:
    if name in _TEXT_COLS:
        if name == "payload":  # JSON text: control characters are escaped by the encoder, backslashes remain
            return [v.replace("\\", "\\\\") for v in values]
        escaped = {v: _escape(v) for v in set(values)}
        return [escaped[v] for v in values]
    if name in _NULLABLE:
        return [_NULL if v is None else repr(v) for v in values]
    return list(map(repr, values))


def copy_text(rows: TableRows) -> str:
    """``rows`` in PostgreSQL's COPY text format: one line per row, columns in ``COLUMNS`` order."""
    parts: list[str | list[str]] = []
    for name in COLUMNS[rows.table]:
        if name in rows.constants:
            const = rows.constants[name]
            text = _escape(const) if name in _TEXT_COLS else repr(const)
            parts.append(text.replace("{", "{{").replace("}", "}}"))
        else:
            parts.append(_column_text(name, rows.columns[name]))
    line = "\t".join(p if isinstance(p, str) else "{}" for p in parts) + "\n"
    return "".join(map(line.format, *(p for p in parts if not isinstance(p, str))))


def _copy(conn: Connection, rows: TableRows) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {rows.table} ({', '.join(COLUMNS[rows.table])}) FROM STDIN") as copy:  # type: ignore[union-attr]
        copy.write(copy_text(rows))


_inlined: dict[tuple[int, str, str, tuple[str, ...]], tuple[str, dict[str, Any]]] = {}


def _inline(conn: Connection, stmt: Insert, prefix: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``stmt`` (with bound parameters ``params``) compiled for ``conn``, its parameters renamed
    ``prefix_name`` so that it can share a statement; the SQL is compiled once per shape (with the
    values of the statement's own literals, such as the ``+ 1`` of a counter)."""
    key = (id(stmt), conn.dialect.name, prefix, tuple(params))
    cached = _inlined.get(key)
    if cached is None:
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(params))
        literals = {k: v for k, v in compiled.construct_params(params).items() if k not in params}
        cached = _inlined[key] = (_PARAM.sub(lambda m: f"%({prefix}_{m.group(1)})s", str(compiled)), literals)
    sql, literals = cached
    return sql, {f"{prefix}_{k}": v for k, v in (*literals.items(), *params.items())}


def store_batch_rows(conn: Connection, records_rows: TableRows, position_rows: TableRows,
                     event_rows: TableRows, fresh: bool,
                     with_statements: Sequence[tuple[Insert, dict[str, Any]]] = ()) -> None:
    """Store one batch's rows, and run ``with_statements`` (single-row writes of the same transaction
    with their parameters; on PostgreSQL they join the rows' statement). ``fresh``: none of the
    batch's record ids is stored yet (the caller probed, under the device's row lock)."""
    if conn.dialect.name != "postgresql":
        for stmt, values in with_statements:
            conn.execute(stmt, values)
        for rows in (records_rows, position_rows, event_rows):
            _sqlite_insert(conn, rows)
        return
    if fresh and COPY_RECORDS:
        if len(records_rows):
            _copy(conn, records_rows)
        tail, params = _PG_SIDE, _pg_params(position_rows, event_rows)
    else:
        tail, params = _PG_ALL, _pg_params(records_rows, position_rows, event_rows)
    ctes = []
    for i, (stmt, values) in enumerate(with_statements):
        sql, extra = _inline(conn, stmt, f"w{i}", values)
        ctes.append(f"w{i} AS ({sql})")
        params.update(extra)
    # both tails are chains of two or three tables, so they start "WITH ": the statements go first
    conn.exec_driver_sql("WITH " + "".join(f"{c}, " for c in ctes) + tail.removeprefix("WITH "), params)
