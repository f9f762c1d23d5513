"""Engines for the cloud store: SQLite (file, WAL) by default, PostgreSQL (psycopg 3) by URL.

One place decides the connection settings both dialects need:

- JSON payloads: JSON has no NaN or infinity, and PostgreSQL's json/jsonb refuse them, so the engine's
  serializer writes such floats tagged as ``{"$float": "nan" | "inf" | "-inf"}`` (the wire golden files'
  convention). Reads return the tagged form, which is also what the API serves (strict JSON).
- SQLite: WAL (readers never block the writer), ``synchronous=FULL`` (an acked batch survives a power
  cut), foreign keys on, a busy timeout, and explicit ``BEGIN`` (deferred, so readers never take the
  write lock); writers take it with their first statement (``store.devices.get_device(for_update=True)``).
- PostgreSQL: ``postgresql+psycopg://`` URLs; per-device ordering is a row lock (see ``store.writes``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Tag key for non-finite floats inside stored JSON payloads.
FLOAT_TAG = "$float"


def tag_non_finite(value: Any) -> Any:
    """``value`` with every NaN/infinity replaced by ``{"$float": repr}`` (tuples become lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else {FLOAT_TAG: repr(value)}
    if isinstance(value, dict):
        return {k: tag_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tag_non_finite(v) for v in value]
    return value


# One encoder, reused: ``json.dumps`` with arguments builds a new encoder per call (a third of its cost).
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def dumps_payload(value: Any) -> str:
    """Strict JSON for a payload; the fast path is one encode (non-finite floats are rare)."""
    try:
        return _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(tag_non_finite(value))


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``) with the settings above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not the psycopg2 default
    engine = create_engine(parsed, json_serializer=dumps_payload, **kwargs)
    if is_sqlite(engine):
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is switched off so that BEGIN IMMEDIATE below is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")
