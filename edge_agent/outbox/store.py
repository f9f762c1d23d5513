"""``Outbox``: the durable SQLite buffer between the pipeline and the uplink.

One ``append`` is one transaction (records, drop report, totals and optional state together), so a
power cut leaves either all of it or none. Rows move pending -> in flight (``claim``) -> deleted
(``delete``, on the cloud's ack) or back to pending (``release``, or reopening after a crash), or,
refused by the cloud for their content, into the quarantine (``quarantine``, see ``quarantine.py``).

SQL rows stop here: callers see ``Record`` going in and ``StoredRecord`` coming out. One process
owns an outbox file (opening it resets every in-flight row); a lock makes one ``Outbox`` safe to share
between the pipeline thread and an uplink thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from edge_agent.counters import Counters
from edge_agent.errors import OutboxError
from edge_agent.model import Priority, Record
from edge_agent.outbox.evict import STORED_BYTES_SQL, add_totals, evict, stored_bytes
from edge_agent.outbox.quarantine import QuarantineTotals, quarantine_in
from edge_agent.outbox.quota import (
    DROP_REPORT_KIND,
    INCOMING,
    REASON_DISK_FULL,
    REASON_QUOTA,
    Candidate,
)
from edge_agent.outbox.rows import Prepared, StoredRecord, encode, prepare
from edge_agent.outbox.schema import open_database

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Times an append that hit a full disk evicts and retries before giving up with OutboxError.
DISK_FULL_RETRIES = 5
#: Least the first disk-full eviction frees (bytes); each retry doubles it, since freed row bytes
#: only become free pages once whole pages empty.
DISK_FULL_MIN_EVICT_BYTES = 64 * 1024
#: Bytes kept in a reserve file beside the outbox. On a full disk SQLite cannot even delete rows
#: (in WAL mode a delete appends pages to the WAL first), so the reserve is released to make room
#: for the eviction and the checkpoint that shrinks the WAL, then taken again when space returns.
RESERVE_BYTES = 512 * 1024
#: Highest priority a full disk may evict directly: samples, fixes and detection events, never
#: faults, compliance records or drop reports (those wait in the caller's buffer instead).
DISK_FULL_MAX_EVICT_PRIORITY = int(Priority.EVENT)
#: After a full disk the outbox keeps itself under this percentage of what it held at that moment.
DISK_LIMIT_FRACTION = 90
#: How often (seconds) a missing reserve file is re-created, if the disk has room for it again.
RESERVE_RETRY_S = 60.0

_CLAIM_COLUMNS = "id, kind, priority, ts, received_at, payload, size"


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


class Outbox:
    """Durable, quota-bounded, priority-ordered store of records waiting for the cloud."""

    def __init__(
        self, path: str | Path, *, quota_bytes: int | None = None, counters: Counters | None = None,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        if quota_bytes is not None and quota_bytes <= 0:
            raise OutboxError(f"outbox quota_bytes must be positive, got {quota_bytes}")
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.counters = counters if counters is not None else Counters()
        self._lock = threading.RLock()
        self.reserve_bytes = reserve_bytes
        self._reserve = self.path.with_name(self.path.name + ".reserve")
        self._next_reserve_try = 0.0
        #: Learned on the first full disk: the outbox then keeps itself this small, evicting inside the
        #: database (whose freed pages new rows reuse) instead of growing the file into a full disk.
        self._disk_limit: int | None = None
        self._db = open_database(self.path)
        self._conn: sqlite3.Connection | None = self._db.conn
        try:
            with self._write() as cur:
                # Rows claimed by an uplink that died with us were never acked: send them again.
                reset = cur.execute("UPDATE records SET in_flight = 0 WHERE in_flight = 1").rowcount
        except sqlite3.Error as exc:
            self.close()
            raise OutboxError(f"outbox {self.path}: cannot reset in-flight rows on open: {exc}") from exc
        #: Rows an uplink that died with the last process had claimed: the uplink then tells the cloud the
        #: batches it had in flight were abandoned (``edge_agent.uplink.notices``).
        self.reset_on_open: int = reset
        if reset:
            log.info("outbox %s: %d in-flight rows back to pending after restart", self.path, reset)
        self._take_reserve()

    # -- disk reserve ----------------------------------------------------------------------------

    def _take_reserve(self) -> None:
        """Create the reserve file if it is missing and the disk has room for it (never fails)."""
        if self.reserve_bytes <= 0 or self._reserve.exists() or time.monotonic() < self._next_reserve_try:
            return
        self._next_reserve_try = time.monotonic() + RESERVE_RETRY_S
        try:
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < 2 * self.reserve_bytes:
                return
            with open(self._reserve, "wb") as fh:
                fh.write(bytes(self.reserve_bytes))  # real blocks: a sparse file would reserve nothing
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            log.warning("outbox %s: cannot create disk reserve: %s", self.path, exc)

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("outbox %s: cannot release disk reserve: %s", self.path, exc)
            return False
        log.warning("outbox %s: disk full: released the %d byte reserve", self.path, self.reserve_bytes)
        return True

    def _learn_disk_limit(self) -> None:
        try:
            used = self.bytes_used()
        except OutboxError:
            return
        limit = max(DISK_FULL_MIN_EVICT_BYTES, used * DISK_LIMIT_FRACTION // 100)
        if self._disk_limit is None or limit < self._disk_limit:
            self._disk_limit = limit
            log.warning("outbox %s: disk full: keeping the outbox under %d bytes from now on", self.path, limit)

    def _checkpoint(self) -> None:
        """Move the WAL into the database so the next transaction rewrites the WAL from its start.

        RESTART, not TRUNCATE: on a full disk the WAL file's own blocks are the only room a write has;
        giving them back to the filesystem would let something else take them.
        """
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(RESTART)")

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction (the write lock up front), rolled back on any error."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn.cursor()
                conn.execute("COMMIT")
            except BaseException:
                # SQLITE_FULL may already have rolled the transaction back.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._connection().execute(sql, params))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: read failed: {exc}") from exc

    # -- append ----------------------------------------------------------------------------------

    def append(self, records: Sequence[Record], *, state: Mapping[str, Mapping[str, object]] | None = None) -> None:
        """Store ``records`` (and ``state`` key -> JSON document) in one transaction.

        Records that cannot be stored (payload not JSON, timestamp not finite) are counted under
        ``decode_errors["outbox_bad_record"]`` and skipped. Over the quota, the lowest-priority,
        oldest rows (possibly records of this append) are evicted into the drop report. On a full
        disk, rows are evicted (reason ``disk_full``) and the append retried; ``OutboxError`` if the
        disk stays full. A failed append changes nothing.
        """
        rows: list[Prepared] = []
        for r in records:
            row = prepare(r.kind, r.priority, r.timestamp, r.payload)
            if row is None:
                self.counters.decode_error("outbox_bad_record")
                log.warning("outbox: skipped unstorable %r record at %r", r.kind, r.timestamp)
            else:
                rows.append(row)
        states = self._encode_state(state or {})
        if not rows and not states:
            return
        incoming = sum(r.size for r in rows)
        for attempt in range(DISK_FULL_RETRIES + 1):
            try:
                with self._write() as cur:
                    dropped = self._append_in(cur, rows, incoming, states)
                break
            except sqlite3.Error as exc:
                if not _is_disk_full(exc):
                    raise OutboxError(f"outbox {self.path}: append failed: {exc}") from exc
                if attempt == DISK_FULL_RETRIES:
                    raise OutboxError(
                        f"outbox {self.path}: disk full; {len(rows)} records not stored after "
                        f"{DISK_FULL_RETRIES} evictions (stored rows are intact)"
                    ) from exc
                self._release_reserve()
                self._checkpoint()  # a WAL moved into the database file frees its own pages
                target = max(incoming, DISK_FULL_MIN_EVICT_BYTES) << attempt
                freed = self._evict_for_disk_full(target)
                self._checkpoint()
                self._learn_disk_limit()
                log.warning("outbox %s: disk full, evicted %d bytes and retrying", self.path, freed)
                if freed == 0:
                    raise OutboxError(
                        f"outbox {self.path}: disk full and nothing left to evict (every row is in flight "
                        f"or a drop report); {len(rows)} records not stored"
                    ) from exc
        self.counters.inc("records_appended", len(rows))
        if dropped:
            self.counters.inc("records_dropped", dropped)
        if not self._reserve.exists():
            self._take_reserve()

    def _append_in(self, cur: sqlite3.Cursor, rows: list[Prepared], incoming: int,
                   states: list[tuple[str, str, float]]) -> int:
        """The body of one append transaction; returns how many rows (stored or new) were evicted."""
        dropped = 0
        limit, reason = self.quota_bytes, REASON_QUOTA
        if self._disk_limit is not None and (limit is None or self._disk_limit < limit):
            limit, reason = self._disk_limit, REASON_DISK_FULL
        if limit is not None and rows:
            excess = stored_bytes(cur) + incoming - limit
            if excess > 0:
                new = (Candidate(r.priority, INCOMING, i, r.kind, r.ts, r.size)
                       for i, r in enumerate(rows) if r.kind != DROP_REPORT_KIND)
                tally, evicted = evict(cur, reason, excess, new)
                if tally.count:
                    skip = {c.order for c in evicted if c.age == INCOMING}
                    if skip:
                        rows = [r for i, r in enumerate(rows) if i not in skip]
                    dropped = tally.count
        if rows:
            now = time.time()
            cur.executemany(
                "INSERT INTO records (kind, priority, ts, received_at, size, payload) VALUES (?, ?, ?, ?, ?, ?)",
                [(r.kind, r.priority, r.ts, now, r.size, r.payload) for r in rows],
            )
            add_totals(cur, ((r.kind, r.size) for r in rows), +1)
        if states:
            cur.executemany(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                states,
            )
        return dropped

    def _evict_for_disk_full(self, target: int) -> int:
        """Evict about ``target`` bytes of stored rows in their own transaction; returns bytes freed."""
        try:
            with self._write() as cur:
                tally, _ = evict(cur, REASON_DISK_FULL, target, max_priority=DISK_FULL_MAX_EVICT_PRIORITY)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: disk full, and evicting to make room failed: {exc}") from exc
        if tally.count:
            self.counters.inc("records_dropped", tally.count)
        return tally.bytes

    # -- uplink ----------------------------------------------------------------------------------

    def claim(self, limit: int, *, max_bytes: int | None = None, min_priority: int | None = None) -> list[StoredRecord]:
        """Mark up to ``limit`` pending rows in flight and return them, highest priority then oldest first.

        ``max_bytes`` bounds the sum of their sizes, except that the first row is always returned (a
        row larger than a batch must still leave). ``min_priority`` skips lower-priority rows.
        """
        if limit <= 0:
            return []
        try:
            return self._with_room(lambda cur: self._claim_in(cur, limit, max_bytes, min_priority))
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: claim failed: {exc}") from exc

    def _claim_in(self, cur: sqlite3.Cursor, limit: int, max_bytes: int | None,
                  min_priority: int | None) -> list[StoredRecord]:
        out: list[StoredRecord] = []
        total = 0
        ceiling: int | None = None
        while len(out) < limit:
            # Walk priorities downwards through the (priority, id) index: O(log n) per level.
            row = cur.execute(
                "SELECT MAX(priority) FROM records WHERE in_flight = 0"
                + ("" if ceiling is None else " AND priority < ?"),
                () if ceiling is None else (ceiling,),
            ).fetchone()
            if row[0] is None or (min_priority is not None and row[0] < min_priority):
                break
            ceiling = int(row[0])
            full = False
            for rid, kind, prio, ts, received, payload, size in cur.execute(
                f"SELECT {_CLAIM_COLUMNS} FROM records WHERE in_flight = 0 AND priority = ? "
                "ORDER BY id LIMIT ?", (ceiling, limit - len(out)),
            ).fetchall():
                if max_bytes is not None and out and total + size > max_bytes:
                    full = True
                    break
                total += size
                out.append(StoredRecord(rid, kind, prio, ts, received, json.loads(payload), size))
            if full:
                break
        cur.executemany("UPDATE records SET in_flight = 1 WHERE id = ?", [(r.id,) for r in out])
        return out

    def _with_room(self, body: Callable[[sqlite3.Cursor], _T]) -> _T:
        """Run ``body`` in a write transaction; on a full disk free the reserve and WAL, then once more.

        Claims, releases and deletes must work on a full disk: they are how the uplink frees it.
        """
        try:
            with self._write() as cur:
                return body(cur)
        except sqlite3.Error as exc:
            if not _is_disk_full(exc):
                raise
        self._release_reserve()
        self._checkpoint()
        with self._write() as cur:
            return body(cur)

    def release(self, ids: Iterable[int]) -> None:
        """Put claimed rows back to pending (the uplink gave up on them for now)."""
        params = [(int(i),) for i in ids]
        try:
            self._with_room(lambda cur: cur.executemany(
                "UPDATE records SET in_flight = 0 WHERE id = ? AND in_flight = 1", params))
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: release failed: {exc}") from exc

    def delete(self, ids: Iterable[int]) -> None:
        """Remove rows for good (the cloud acked them). Unknown ids are ignored."""
        id_list = json.dumps([int(i) for i in ids])

        def body(cur: sqlite3.Cursor) -> None:
            gone = cur.execute(
                "SELECT kind, size FROM records WHERE id IN (SELECT value FROM json_each(?))", (id_list,)
            ).fetchall()
            cur.execute("DELETE FROM records WHERE id IN (SELECT value FROM json_each(?))", (id_list,))
            add_totals(cur, gone, -1)

        try:
            self._with_room(body)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: delete failed: {exc}") from exc

    def quarantine(self, ids: Iterable[int], reason: str, boot_epoch: int, seq: int) -> int:
        """Move rows the cloud refused for their content (``reason``) out of the queue into the
        quarantine, with a ``quarantine_report`` record for the cloud; returns how many moved."""
        try:
            moved = self._with_room(lambda cur: quarantine_in(cur, ids, reason, boot_epoch, seq))
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: quarantine failed: {exc}") from exc
        if moved:
            self.counters.inc("records_quarantined", moved)
        return moved

    def quarantined(self) -> QuarantineTotals:
        """Rows and quota bytes held in quarantine."""
        rows, size = self._read("SELECT rows, bytes FROM quarantine_totals WHERE id = 1")[0]
        return QuarantineTotals(int(rows), int(size))

    # -- state -----------------------------------------------------------------------------------

    def _encode_state(self, state: Mapping[str, Mapping[str, object]]) -> list[tuple[str, str, float]]:
        now = time.time()
        out = []
        for key, value in state.items():
            try:
                out.append((str(key), encode(value), now))
            except (TypeError, ValueError, RecursionError) as exc:
                raise OutboxError(f"outbox state {key!r} is not JSON-serialisable: {exc}") from exc
        return out

    def get_state(self, key: str) -> dict[str, object] | None:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        if not rows:
            return None
        value = json.loads(str(rows[0][0]))
        return value if isinstance(value, dict) else None

    def put_state(self, key: str, value: Mapping[str, object]) -> None:
        self.append([], state={key: value})

    # -- inspection ------------------------------------------------------------------------------

    def depth(self) -> int:
        """Rows stored (pending and in flight, drop reports included)."""
        return int(self._read("SELECT COALESCE(SUM(rows), 0) FROM kind_totals")[0][0])

    def bytes_used(self) -> int:
        """Bytes the quota charges for the stored and quarantined rows (``rows.row_size``); not the file size."""
        return int(self._read(STORED_BYTES_SQL)[0][0])

    def counts_by_kind(self) -> dict[str, int]:
        rows = self._read("SELECT kind, rows FROM kind_totals WHERE rows > 0 ORDER BY kind")
        return {str(k): int(n) for k, n in rows}

    def check(self) -> str:
        """``PRAGMA integrity_check`` ("ok" when sound), then the per-kind totals against the rows."""
        result = "\n".join(str(r[0]) for r in self._read("PRAGMA integrity_check"))
        if result != "ok":
            return result
        actual = self._read("SELECT kind, COUNT(*), SUM(size) FROM records GROUP BY kind ORDER BY kind")
        kept = self._read("SELECT kind, rows, bytes FROM kind_totals WHERE rows != 0 OR bytes != 0 ORDER BY kind")
        if actual != kept:
            return f"kind_totals disagree with records: totals {kept}, rows {actual}"
        held = self._read("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM quarantine")[0]
        if held != tuple(self.quarantined()):
            return f"quarantine_totals disagree with quarantine: totals {self.quarantined()}, rows {held}"
        return "ok"
