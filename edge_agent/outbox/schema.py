"""The outbox's SQLite schema, connection settings and forward migrations.

The schema version lives in SQLite's ``user_version`` header field. ``MIGRATIONS[n]`` takes a
database from version ``n`` to ``n + 1``; each runs in its own transaction together with the new
``user_version``, so a power cut mid-migration leaves the previous version intact. A database written
by a newer agent (a version above ``SCHEMA_VERSION``) is refused rather than guessed at: downgrading
the agent must not silently corrupt an outbox full of unsent records.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import sqlite_utils

from edge_agent.errors import OutboxError

log = logging.getLogger(__name__)

#: The WAL file is truncated to this after checkpoints (SQLite keeps it at its peak size otherwise).
WAL_SIZE_LIMIT_BYTES = 256 * 1024
#: Pages after which a commit checkpoints the WAL (SQLite's default is 1000, about 4 MiB); a small
#: WAL leaves a full disk room to recover.
WAL_AUTOCHECKPOINT_PAGES = 64
#: How long a writer waits for another connection's lock before failing (milliseconds).
BUSY_TIMEOUT_MS = 5000

_V1 = """
-- One row per record. ``payload`` is last so scans over the small columns (eviction, claim) do not
-- read it. ``size`` is the byte count the quota charges (see rows.row_size).
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after deletes (sqlite.org/autoinc.html)
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    ts REAL NOT NULL,                      -- device time of the record
    received_at REAL NOT NULL,             -- edge wall-clock time of the append
    size INTEGER NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,  -- 1 while claimed by the uplink
    payload TEXT NOT NULL
);
-- Pending rows by (priority, id): eviction walks it upwards, claim per priority downwards.
CREATE INDEX records_pending ON records(priority, id) WHERE in_flight = 0;
-- The few rows in flight, so a reopen resets them without a table scan.
CREATE INDEX records_in_flight ON records(id) WHERE in_flight = 1;
-- The pending drop reports (at most one per reason), found without a scan.
CREATE INDEX records_drop_reports ON records(id) WHERE kind = 'drop_report' AND in_flight = 0;
-- Rows and bytes per kind, kept in the same transaction as every change to ``records`` so that
-- depth, bytes_used and counts_by_kind cost O(kinds), not a scan of a quarter-gigabyte table.
CREATE TABLE kind_totals (
    kind TEXT PRIMARY KEY,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
-- Small JSON documents committed with records: detector state, uplink sequence numbers.
CREATE TABLE state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

_V2 = """
-- Rows the cloud refused for their content (a permanent rejection, see uplink/rejects.py), moved out
-- of ``records`` so they are never claimed again. Kept, never deleted silently: the quota charges them
-- like any row and may evict them (into a drop report) like any row.
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,                -- the record's id in ``records`` (never reused)
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    ts REAL NOT NULL,
    received_at REAL NOT NULL,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,                  -- the cloud's rejection reason
    boot_epoch INTEGER NOT NULL,           -- the batch the cloud refused
    seq INTEGER NOT NULL,
    quarantined_at REAL NOT NULL,
    payload TEXT NOT NULL
);
-- Eviction walks it in (priority, id) order, as it walks ``records``.
CREATE INDEX quarantine_evict ON quarantine(priority, id);
-- Rows and bytes in quarantine, kept in the same transaction as every change to ``quarantine``.
CREATE TABLE quarantine_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO quarantine_totals (id, rows, bytes) VALUES (1, 0, 0);
"""

#: ``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``. Append only; never edit a shipped step.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)
#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


def open_database(path: Path) -> sqlite_utils.Database:
    """Open (creating if needed) the outbox at ``path``: WAL, ``synchronous=FULL``, migrated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves, so one append is exactly
        # one transaction and the write lock is taken up front (no deadlock on lock upgrade).
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    try:
        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # Some filesystems (network mounts) cannot hold a WAL; the rollback journal is still durable.
            log.warning("outbox %s: journal_mode is %s, not wal", path, mode)
        # FULL: in WAL mode the WAL is synced at every commit, so a commit survives a power cut; NORMAL
        # may lose the last commits (sqlite.org/pragma.html#pragma_synchronous).
        db.execute("PRAGMA synchronous = FULL")
        # After a checkpoint the WAL file is cut back to this size instead of keeping its peak size.
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise OutboxError(f"{path} is not a usable outbox database: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return db


#: Ids per millisecond of creation time: a recreated outbox starts above every id of an older one
#: unless that one appended more than this many records per millisecond of its life on average.
IDS_PER_MS = 1024


def first_record_id(now: float | None = None) -> int:
    """The id sequence's starting point for an outbox created at ``now`` (wall clock, seconds).

    At ``IDS_PER_MS`` the start stays below ``2**63`` for the next 280,000 years: ids remain 63-bit ints.
    """
    return int((time.time() if now is None else now) * 1000) * IDS_PER_MS


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    """Bring the database to ``SCHEMA_VERSION``; refuse one written by a newer agent."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise OutboxError(
            f"outbox {path} has schema version {version}, newer than this agent supports "
            f"({SCHEMA_VERSION}); refusing to open it. Upgrade the agent, or move the file aside "
            f"(its unsent records would be lost)."
        )
    for step in range(version, SCHEMA_VERSION):
        # executescript would COMMIT first; plain statements keep the step and its version atomic.
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[step]):
                db.execute(statement)
            if step == 0:
                # A new outbox numbers its records from the creation time, not from 1: the cloud keys
                # records by (device, record id), so an outbox file lost and recreated (a reflashed
                # SD card) must not reuse ids the cloud already holds, or new records would be taken
                # for duplicates and dropped.
                db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('records', ?)", [first_record_id()])
            db.execute(f"PRAGMA user_version = {step + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise
        log.info("outbox %s: migrated schema %d -> %d", path, step, step + 1)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``sqlite3.complete_statement`` knows SQL quoting)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current!r}")
    return out
