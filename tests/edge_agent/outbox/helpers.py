"""Shared helpers for the outbox tests: record builders and a raw look at the database file."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox, StoredRecord


def rec(kind: str, priority: Priority, ts: float, **payload: object) -> Record:
    return Record(kind, priority, ts, dict(payload))


def samples(n: int, start: float = 0.0, kind: str = "sample") -> list[Record]:
    """``n`` periodic records whose payloads all have the same length (so the same quota size)."""
    return [rec(kind, Priority.PERIODIC, start + i, seq=f"{int(start) + i:08d}") for i in range(n)]


def everything(outbox: Outbox) -> list[StoredRecord]:
    """Every row, pending or in flight, in claim order (priority, then id), read through a second
    connection so the outbox's own state is left alone."""
    rows = [
        StoredRecord(rid, kind, prio, ts, received, json.loads(payload), size)
        for rid, kind, prio, ts, received, size, _, payload in raw_rows(outbox.path)
    ]
    return sorted(rows, key=lambda r: (-r.priority, r.id))


def raw_rows(path: Path) -> list[tuple[int, str, int, float, float, int, int, str]]:
    """The records table as SQLite has it, through a separate connection."""
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.execute(
            "SELECT id, kind, priority, ts, received_at, size, in_flight, payload FROM records ORDER BY id"
        ))
