"""The audit trail: an append-only, hash-chained log of administrative actions and reads of personal data.

Entry ``n`` (``seq`` 1, 2, ...) stores ``hash = SHA-256(prev_hash || canonical(entry))`` where ``prev_hash`` is
entry ``n - 1``'s hash (32 zero bytes for the first) and ``canonical`` is the entry's fields (seq, time, actor,
role, action, subject, detail) as sorted, compact JSON. Changing any field of any entry changes its hash and
breaks every later link; deleting an entry leaves a hole in ``seq``. ``verify`` walks the chain and names the
first broken link.

Deleting the newest entries (truncating the tail) leaves a valid shorter chain, so the head (``seq``, hash) is
also kept in ``audit_head`` (updated with every append, in the same transaction) and exported now and then
outside the database (``export_head``, ``fleet-cloud audit export-head``): a chain shorter than, or not passing
through, an exported head is truncated or rewritten. The export is only as safe as where it is written
(append-only storage, another host, a ticket system).

Appends are serialised by locking the one ``audit_head`` row (a row lock on PostgreSQL, the database write lock
on SQLite), so concurrent requests never fork the chain. Entries name subjects by id (device id, user name),
never by personal attributes, so they stay verifiable after a driver's data is erased elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Double,
    Integer,
    LargeBinary,
    String,
    Table,
    insert,
    select,
    update,
)

from cloud_sync.store import schema

GENESIS = bytes(32)
HEAD_ROW_ID = 1
MAX_ACTOR_CHARS = 128
MAX_ACTION_CHARS = 200
MAX_SUBJECT_CHARS = 200
#: Rows read per round trip by ``verify`` (bounded memory whatever the log's length).
VERIFY_CHUNK = 5_000
MAX_PAGE = 1_000

audit_log = Table(
    "audit_log",
    schema.metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Double, nullable=False),
    Column("actor", String(MAX_ACTOR_CHARS), nullable=False),
    Column("role", String(32), nullable=False),
    Column("action", String(MAX_ACTION_CHARS), nullable=False),
    Column("subject", String(MAX_SUBJECT_CHARS)),
    Column("detail", JSON(none_as_null=True), nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_head = Table(
    "audit_head",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: float
    actor: str
    role: str
    action: str
    subject: str | None
    detail: Mapping[str, Any]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Head:
    seq: int  # also the number of entries: seq starts at 1 and has no holes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    count: int  # entries that verified before the first broken link (all of them when ok)
    head: Head  # the last verified entry
    broken_seq: int | None = None  # the first broken link
    reason: str = ""


def canonical(seq: int, at: float, actor: str, role: str, action: str, subject: str | None,
              detail: Mapping[str, Any]) -> bytes:
    fields = {"seq": seq, "at": at, "actor": actor, "role": role, "action": action, "subject": subject,
              "detail": detail}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(prev_hash + body).digest()


def init_head(conn: Connection) -> None:
    """Create the head row of an empty log (the migration calls this once)."""
    conn.execute(insert(audit_head).values(id=HEAD_ROW_ID, seq=0, hash=GENESIS))


def append(conn: Connection, actor: str, role: str, action: str, subject: str | None = None,
           detail: Mapping[str, Any] | None = None, *, now: float | None = None) -> Entry:
    """Append one entry in the caller's transaction (commit it with the action it records)."""
    detail = dict(detail or {})
    # Lock the head first: on SQLite this write takes the database lock before anything is read.
    conn.execute(update(audit_head).where(audit_head.c.id == HEAD_ROW_ID).values(seq=audit_head.c.seq))
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ROW_ID)
                        .with_for_update()).one()
    seq, at = head.seq + 1, time.time() if now is None else now
    actor, action = actor[:MAX_ACTOR_CHARS], action[:MAX_ACTION_CHARS]
    subject = None if subject is None else subject[:MAX_SUBJECT_CHARS]
    digest = entry_hash(head.hash, canonical(seq, at, actor, role, action, subject, detail))
    conn.execute(insert(audit_log).values(seq=seq, at=at, actor=actor, role=role, action=action, subject=subject,
                                          detail=detail, prev_hash=head.hash, hash=digest))
    conn.execute(update(audit_head).where(audit_head.c.id == HEAD_ROW_ID).values(seq=seq, hash=digest))
    return Entry(seq, at, actor, role, action, subject, detail, head.hash, digest)


def entry_from_row(row: Any) -> Entry:
    return Entry(row.seq, row.at, row.actor, row.role, row.action, row.subject, row.detail, bytes(row.prev_hash),
                 bytes(row.hash))


def _rows(conn: Connection) -> Iterator[Entry]:
    after = 0
    while True:
        chunk = [entry_from_row(r) for r in conn.execute(select(audit_log).where(audit_log.c.seq > after)
                                                 .order_by(audit_log.c.seq).limit(VERIFY_CHUNK))]
        yield from chunk
        if len(chunk) < VERIFY_CHUNK:
            return
        after = chunk[-1].seq


def page(conn: Connection, after: int = 0, limit: int = 100) -> list[Entry]:
    """Entries with ``seq > after``, oldest first."""
    query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(min(limit, MAX_PAGE))
    return [entry_from_row(r) for r in conn.execute(query)]


def stored_head(conn: Connection) -> Head:
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ROW_ID)).first()
    return Head(0, GENESIS) if row is None else Head(row.seq, bytes(row.hash))


def verify(conn: Connection, exported: Iterable[Head] = ()) -> Verdict:
    """Walk the whole chain; the first broken link, if any, with why. ``exported`` heads (from
    ``export_head``) must each still be on the chain: a chain that ends before one was truncated."""
    last = Head(0, GENESIS)
    for e in _rows(conn):
        expected = last.seq + 1
        if e.seq != expected:
            return Verdict(False, last.seq, last, expected, f"entry {expected} is missing (next stored is {e.seq})")
        if e.prev_hash != last.hash:
            return Verdict(False, last.seq, last, e.seq, f"entry {e.seq} does not link to entry {last.seq}")
        body = canonical(e.seq, e.at, e.actor, e.role, e.action, e.subject, e.detail)
        if entry_hash(e.prev_hash, body) != e.hash:
            return Verdict(False, last.seq, last, e.seq, f"entry {e.seq} was altered (its hash does not match)")
        last = Head(e.seq, e.hash)
    head = stored_head(conn)
    if head != last:
        return Verdict(False, last.seq, last, last.seq + 1,
                       f"the log ends at entry {last.seq} but its head says entry {head.seq}: truncated")
    for mark in exported:
        if mark.seq > last.seq:
            return Verdict(False, last.seq, last, last.seq + 1,
                           f"an exported head names entry {mark.seq}; the log ends at {last.seq}: truncated")
        row = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == mark.seq)).first()
        if mark.seq and (row is None or bytes(row.hash) != mark.hash):
            return Verdict(False, last.seq, last, mark.seq,
                           f"entry {mark.seq} differs from its exported head: the log was rewritten")
    return Verdict(True, last.seq, last)


def export_line(head: Head, *, now: float | None = None) -> str:
    """One JSON line recording the head, for an append-only file or an external sink."""
    return json.dumps({"seq": head.seq, "hash": head.hash.hex(), "at": time.time() if now is None else now},
                      separators=(",", ":"))


def read_exported(lines: Iterable[str]) -> list[Head]:
    """Heads from ``export_line`` lines; blank lines are skipped, anything else malformed raises ValueError."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(Head(int(obj["seq"]), bytes.fromhex(obj["hash"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"exported head line {n} is not one export_line wrote: {exc}") from None
    return out
