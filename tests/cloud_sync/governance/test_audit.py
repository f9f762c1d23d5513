"""The hash-chained audit trail on SQLite and PostgreSQL: an intact chain verifies; an altered entry, a deleted
entry and a truncated tail are each detected and the first broken link is named; concurrent appends never fork."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import delete, update

from cloud_sync.governance import audit
from cloud_sync.governance.audit import audit_head, audit_log


def _fill(engine, n: int) -> list[audit.Entry]:
    with engine.begin() as conn:
        return [audit.append(conn, f"user-{i % 3}", "dispatcher", "GET /v1/vehicles/{device}/positions",
                             f"truck-{i}", {"query": {"from": str(i)}, "n": i, "ratio": i / 7})
                for i in range(n)]


def test_an_intact_chain_verifies_and_links_every_entry(engine):
    entries = _fill(engine, 12)
    assert [e.seq for e in entries] == list(range(1, 13))
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    with engine.connect() as conn:
        v = audit.verify(conn, [audit.Head(5, entries[4].hash), audit.Head(12, entries[-1].hash)])
    assert v.ok and v.count == 12 and v.head == audit.Head(12, entries[-1].hash)


@pytest.mark.parametrize("column, value", [("actor", "someone-else"), ("subject", "truck-99"), ("at", 0.0),
                                           ("detail", {"query": {"from": "0"}, "n": 4, "ratio": 0})])
def test_an_altered_entry_is_named(engine, column, value):
    _fill(engine, 10)
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values({column: value}))
    with engine.connect() as conn:
        v = audit.verify(conn)
    assert not v.ok and v.broken_seq == 5 and "altered" in v.reason and v.count == 4


def test_an_altered_entry_with_its_hash_recomputed_breaks_the_next_link(engine):
    _fill(engine, 10)
    with engine.begin() as conn:  # a forger who knows the scheme rehashes the entry ...
        e = audit.page(conn, 4, 1)[0]
        forged = audit.entry_hash(e.prev_hash, audit.canonical(e.seq, e.at, "mallory", e.role, e.action, e.subject,
                                                               e.detail))
        conn.execute(update(audit_log).where(audit_log.c.seq == 5).values(actor="mallory", hash=forged))
    with engine.connect() as conn:
        v = audit.verify(conn)
    assert not v.ok and v.broken_seq == 6 and "does not link" in v.reason  # ... and entry 6 gives it away


def test_a_deleted_entry_is_named(engine):
    _fill(engine, 10)
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 7))
    with engine.connect() as conn:
        v = audit.verify(conn)
    assert not v.ok and v.broken_seq == 7 and "missing" in v.reason and v.count == 6


def test_a_truncated_tail_is_detected_by_the_head_row_and_by_an_exported_head(engine):
    entries = _fill(engine, 10)
    exported = audit.read_exported([audit.export_line(audit.Head(10, entries[-1].hash)), ""])
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq > 8))
    with engine.connect() as conn:
        v = audit.verify(conn)
    assert not v.ok and v.broken_seq == 9 and "truncated" in v.reason and v.count == 8
    with engine.begin() as conn:  # a careful forger also rewinds the head row: only the export shows it
        conn.execute(update(audit_head).values(seq=8, hash=entries[7].hash))
    with engine.connect() as conn:
        assert audit.verify(conn).ok
        v = audit.verify(conn, exported)
    assert not v.ok and v.broken_seq == 9 and "exported head names entry 10" in v.reason


def test_a_rewritten_log_does_not_pass_through_an_exported_head(engine):
    entries = _fill(engine, 6)
    with engine.begin() as conn:  # drop everything and write a fresh, internally valid chain
        conn.execute(delete(audit_log))
        conn.execute(update(audit_head).values(seq=0, hash=audit.GENESIS))
    _fill(engine, 8)
    with engine.connect() as conn:
        assert audit.verify(conn).ok
        v = audit.verify(conn, [audit.Head(6, entries[-1].hash)])
    assert not v.ok and v.broken_seq == 6 and "rewritten" in v.reason


def test_concurrent_appends_form_one_chain(engine):
    def worker(k: int) -> None:
        for i in range(15):
            with engine.begin() as conn:
                audit.append(conn, f"worker-{k}", "admin", "POST /v1/users", str(i))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        v = audit.verify(conn)
    assert v.ok and v.count == 60


def test_malformed_exported_heads_are_refused():
    with pytest.raises(ValueError, match="line 2"):
        audit.read_exported(['{"seq": 1, "hash": "00"}', "not json"])
