"""Evictions and the per-kind totals, inside the caller's transaction.

``evict`` deletes stored rows in eviction order (``quota.eviction_order``), marks which records of
the current append are to be left out, and merges everything into the pending drop report of its
reason. ``add_totals`` keeps ``kind_totals`` in step with every insert, update and delete of
``records``; it is only ever called in the same transaction as the change it accounts for.
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator

from edge_agent.model import Priority
from edge_agent.outbox.quota import DROP_REPORT_KIND, QUARANTINED, STORED, Candidate, DropTally, eviction_order
from edge_agent.outbox.rows import encode, row_size

log = logging.getLogger(__name__)

_EVICT_SQL = (
    "SELECT priority, 0, id, kind, ts, size FROM records "
    f"WHERE in_flight = 0 AND kind != '{DROP_REPORT_KIND}' ORDER BY priority, id"
)
_EVICT_QUARANTINE_SQL = "SELECT priority, -1, id, kind, ts, size FROM quarantine ORDER BY priority, id"
_PENDING_REPORT_SQL = (
    "SELECT id, payload, size FROM records "
    f"WHERE kind = '{DROP_REPORT_KIND}' AND in_flight = 0 AND json_extract(payload, '$.reason') = ? "
    "ORDER BY id DESC LIMIT 1"
)
_TOTALS_SQL = (
    "INSERT INTO kind_totals (kind, rows, bytes) VALUES (?, ?, ?) "
    "ON CONFLICT (kind) DO UPDATE SET rows = rows + excluded.rows, bytes = bytes + excluded.bytes"
)


def evict(cur: sqlite3.Cursor, reason: str, excess: int, incoming: Iterable[Candidate] = (),
          max_priority: int | None = None) -> tuple[DropTally, list[Candidate]]:
    """Evict at least ``excess`` bytes (plus the drop report's growth) in eviction order.

    ``max_priority`` leaves stored rows above it alone (a full disk never costs a fault record).

    Deletes the stored victims and writes the drop report; returns the tally and every victim
    (the caller leaves out the victims that were records of its own append).
    """
    tally = DropTally(reason)
    evicted: list[Candidate] = []
    report = cur.execute(_PENDING_REPORT_SQL, (reason,)).fetchone()
    old_payload: dict[str, object] | None = json.loads(report[1]) if report else None
    old_size = int(report[2]) if report else 0
    # The report grows as kinds are added: once enough is freed, check its real size, go on if short.
    growth = 0
    freed = 0
    reader = cur.connection.execute(_EVICT_SQL)
    quarantined = cur.connection.execute(_EVICT_QUARANTINE_SQL)
    try:
        # Both streams come sorted by (priority, age, id); quarantined rows (age -1) go first.
        stored: Iterator[Candidate] = heapq.merge((Candidate(*row) for row in quarantined),
                                                  (Candidate(*row) for row in reader))
        if max_priority is not None:
            stored = (c for c in stored if c.priority <= max_priority)
        for victim in eviction_order(stored, incoming):
            tally.add(victim)
            evicted.append(victim)
            freed += victim.size
            if freed >= excess + growth:
                growth = row_size(DROP_REPORT_KIND, encode(tally.merged_into(old_payload))) - old_size
                if freed >= excess + growth:
                    break
    finally:
        reader.close()
        quarantined.close()
    # Exhausting the candidates is allowed: drop reports and rows in flight may exceed the quota.
    if not tally.count:
        return tally, evicted
    new_payload = tally.merged_into(old_payload)
    victims = [c for c in evicted if c.age == STORED]
    if victims:
        cur.executemany("DELETE FROM records WHERE id = ?", [(c.order,) for c in victims])
        add_totals(cur, ((c.kind, c.size) for c in victims), -1)
    refused = [c for c in evicted if c.age == QUARANTINED]
    if refused:
        cur.executemany("DELETE FROM quarantine WHERE id = ?", [(c.order,) for c in refused])
        cur.execute("UPDATE quarantine_totals SET rows = rows - ?, bytes = bytes - ? WHERE id = 1",
                    (len(refused), sum(c.size for c in refused)))
    text = encode(new_payload)
    size = row_size(DROP_REPORT_KIND, text)
    ts = new_payload["last_ts"]
    assert isinstance(ts, float)
    if report:
        cur.execute("UPDATE records SET payload = ?, size = ?, ts = ?, received_at = ? WHERE id = ?",
                    (text, size, ts, time.time(), report[0]))
        add_totals(cur, [(DROP_REPORT_KIND, size - old_size)], 0)
    else:
        cur.execute(
            "INSERT INTO records (kind, priority, ts, received_at, size, payload) VALUES (?, ?, ?, ?, ?, ?)",
            (DROP_REPORT_KIND, int(Priority.DROP_REPORT), ts, time.time(), size, text),
        )
        add_totals(cur, [(DROP_REPORT_KIND, size)], +1)
    # At the quota every append evicts; say so once per drop report, not once per append.
    log.log(logging.DEBUG if report else logging.WARNING, "outbox: evicted %d records (%d bytes) for %s",
            tally.count, tally.bytes, reason)
    return tally, evicted


def add_totals(cur: sqlite3.Cursor, rows: Iterable[tuple[str, int]], sign: int) -> None:
    """Add (sign=+1) or remove (-1) rows of (kind, size) from kind_totals; sign 0 adds bytes only."""
    totals: dict[str, list[int]] = {}
    for kind, size in rows:
        t = totals.get(kind)
        if t is None:
            totals[kind] = [sign, size if sign >= 0 else -size]
        else:
            t[0] += sign
            t[1] += size if sign >= 0 else -size
    cur.executemany(_TOTALS_SQL, [(k, n, b) for k, (n, b) in totals.items()])


#: What the quota charges: the rows of ``records`` (by kind) and of the quarantine.
STORED_BYTES_SQL = ("SELECT (SELECT COALESCE(SUM(bytes), 0) FROM kind_totals) "
                    "+ (SELECT bytes FROM quarantine_totals WHERE id = 1)")


def stored_bytes(cur: sqlite3.Cursor) -> int:
    """What the quota charges for every stored row, from ``kind_totals`` and ``quarantine_totals``."""
    return int(cur.execute(STORED_BYTES_SQL).fetchone()[0])
