"""The quarantine: outbox rows the cloud refused for their content, kept aside and reported.

``quarantine_in`` runs inside the caller's transaction: it moves rows from ``records`` to the
``quarantine`` table (same id, kind, times, payload, plus the cloud's reason and the refused batch),
keeps ``kind_totals`` and ``quarantine_totals`` in step, and appends a ``quarantine_report`` record at
``Priority.DROP_REPORT`` so the cloud, and through it fleet staff, learn what was set aside:
``{"reason", "count", "quarantined": {kind: n}, "first_ts", "last_ts", "bytes", "batches", "last_batch":
[boot_epoch, seq]}`` (device times of the oldest and newest row; quota bytes; refused batches). As with
drop reports there is at most one pending report per reason: later quarantines merge into it until
the uplink claims it.

Quarantined rows are charged to the quota like any row; eviction may take them (they go before
unsent rows of the same priority) and accounts for them in a drop report as usual. A report that is
itself refused is quarantined without a new report, so a refused report cannot breed reports.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import NamedTuple

from edge_agent.model import Priority
from edge_agent.outbox.evict import add_totals
from edge_agent.outbox.rows import encode, row_size

log = logging.getLogger(__name__)

QUARANTINE_REPORT_KIND = "quarantine_report"

_IDS = "SELECT value FROM json_each(?)"
#: The newest unclaimed report of a reason; ``priority = ?`` lets SQLite walk the pending-rows index.
_PENDING_REPORT_SQL = (
    "SELECT id, payload, size FROM records WHERE priority = ? AND in_flight = 0 "
    f"AND kind = '{QUARANTINE_REPORT_KIND}' AND json_extract(payload, '$.reason') = ? ORDER BY id DESC LIMIT 1"
)


class QuarantineTotals(NamedTuple):
    """Rows and quota bytes held in quarantine."""

    rows: int
    bytes: int


def quarantine_in(cur: sqlite3.Cursor, ids: Iterable[int], reason: str, boot_epoch: int, seq: int) -> int:
    """Move the ``records`` rows ``ids`` into quarantine and report them; returns how many moved."""
    id_list = json.dumps(sorted({int(i) for i in ids}))
    moved = cur.execute(f"SELECT kind, size, ts FROM records WHERE id IN ({_IDS})", (id_list,)).fetchall()
    if not moved:
        return 0
    now = time.time()
    cur.execute(
        "INSERT INTO quarantine (id, kind, priority, ts, received_at, size, reason, boot_epoch, seq, "
        "quarantined_at, payload) SELECT id, kind, priority, ts, received_at, size, ?, ?, ?, ?, payload "
        f"FROM records WHERE id IN ({_IDS})", (reason, boot_epoch, seq, now, id_list))
    cur.execute(f"DELETE FROM records WHERE id IN ({_IDS})", (id_list,))
    add_totals(cur, ((kind, size) for kind, size, _ in moved), -1)
    cur.execute("UPDATE quarantine_totals SET rows = rows + ?, bytes = bytes + ? WHERE id = 1",
                (len(moved), sum(size for _, size, _ in moved)))
    reported = [(kind, size, ts) for kind, size, ts in moved if kind != QUARANTINE_REPORT_KIND]
    if reported:
        _append_report(cur, reported, reason, boot_epoch, seq, now)
    else:
        log.error("outbox: %d quarantine reports were themselves refused (%s); kept, not reported again",
                  len(moved), reason)
    return len(moved)


def _append_report(cur: sqlite3.Cursor, rows: list[tuple[str, int, float]], reason: str, boot_epoch: int,
                   seq: int, now: float) -> None:
    """Merge ``rows`` into the pending report of ``reason`` (one row per reason until the uplink claims
    it, as drop reports do), or start one."""
    pending = cur.execute(_PENDING_REPORT_SQL, (int(Priority.DROP_REPORT), reason)).fetchone()
    old: dict[str, object] = json.loads(pending[1]) if pending else {}
    by_kind: dict[str, int] = {}
    prior = old.get("quarantined")
    if isinstance(prior, dict):
        by_kind.update({str(k): int(v) for k, v in prior.items()})
    for kind, _, _ in rows:
        # A NUL in a kind may be why the cloud refused the row; the report must not repeat it.
        name = kind.replace("\x00", "\ufffd")
        by_kind[name] = by_kind.get(name, 0) + 1
    first, last = min(ts for _, _, ts in rows), max(ts for _, _, ts in rows)
    payload = {
        "reason": reason, "count": _int(old.get("count")) + len(rows), "quarantined": dict(sorted(by_kind.items())),
        "first_ts": min(first, _float(old.get("first_ts"), first)),
        "last_ts": max(last, _float(old.get("last_ts"), last)),
        "bytes": _int(old.get("bytes")) + sum(size for _, size, _ in rows),
        "batches": _int(old.get("batches")) + 1, "last_batch": [boot_epoch, seq],
    }
    text = encode(payload)
    size = row_size(QUARANTINE_REPORT_KIND, text)
    if pending:
        cur.execute("UPDATE records SET payload = ?, size = ?, ts = ?, received_at = ? WHERE id = ?",
                    (text, size, now, now, pending[0]))
        add_totals(cur, [(QUARANTINE_REPORT_KIND, size - int(pending[2]))], 0)
        return
    cur.execute("INSERT INTO records (kind, priority, ts, received_at, size, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (QUARANTINE_REPORT_KIND, int(Priority.DROP_REPORT), now, now, size, text))
    add_totals(cur, [(QUARANTINE_REPORT_KIND, size)], +1)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
