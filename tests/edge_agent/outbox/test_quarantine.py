"""The quarantine on real SQLite: rows refused for their content leave the queue, are reported, stay
charged to the quota, are evicted only into a drop report, and an outbox of schema 1 gains the table."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from edge_agent.counters import Counters
from edge_agent.model import Priority
from edge_agent.outbox import DROP_REPORT_KIND, QUARANTINE_REPORT_KIND, SCHEMA_VERSION, Outbox, QuarantineTotals
from edge_agent.outbox.schema import MIGRATIONS, _statements
from tests.edge_agent.outbox.helpers import everything, rec, samples


def quarantined_rows(path: Path) -> list[tuple[int, str, str, int, int, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return list(conn.execute("SELECT id, kind, reason, boot_epoch, seq, payload FROM quarantine ORDER BY id"))


def test_refused_rows_move_to_quarantine_with_a_report(tmp_path: Path) -> None:
    counters = Counters()
    with Outbox(tmp_path / "o.db", counters=counters) as outbox:
        outbox.append([*samples(5), rec("note", Priority.EVENT, 7.5, text="bad\x00")])
        claimed = outbox.claim(10)
        bad = [r for r in claimed if r.kind in ("note", "sample")][:2]  # a note and the oldest sample
        outbox.release([r.id for r in claimed if r not in bad])
        used = outbox.bytes_used()
        assert outbox.quarantine([r.id for r in bad], "unstorable", 42, 7) == 2

        rows = quarantined_rows(outbox.path)
        assert [(i, k, reason, e, s) for i, k, reason, e, s, _ in rows] == sorted(
            (r.id, r.kind, "unstorable", 42, 7) for r in bad)
        assert outbox.quarantined() == QuarantineTotals(2, sum(r.size for r in bad))
        left = everything(outbox)
        assert {r.id for r in left}.isdisjoint(r.id for r in bad)  # never claimed again
        (report,) = [r for r in left if r.kind == QUARANTINE_REPORT_KIND]
        assert report.priority == Priority.DROP_REPORT
        assert report.payload == {"reason": "unstorable", "count": 2, "quarantined": {"note": 1, "sample": 1},
                                  "first_ts": 0.0, "last_ts": 7.5, "bytes": sum(r.size for r in bad),
                                  "batches": 1, "last_batch": [42, 7]}
        # Still charged to the quota: only the report came on top.
        assert outbox.bytes_used() == used + report.size
        assert outbox.depth() == 4 + 1  # the queue: four samples and the report
        assert counters.get("records_quarantined") == 2
        assert outbox.check() == "ok"
        assert outbox.quarantine([bad[0].id], "unstorable", 42, 7) == 0  # already moved: nothing happens


def test_quarantines_merge_into_the_pending_report_of_their_reason(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.append(samples(4))
        rows = outbox.claim(4)
        outbox.quarantine([rows[0].id], "unstorable", 1, 1)
        outbox.quarantine([rows[1].id], "unstorable", 1, 2)
        outbox.quarantine([rows[2].id], "malformed", 1, 3)
        reports = {r.payload["reason"]: r.payload for r in everything(outbox) if r.kind == QUARANTINE_REPORT_KIND}
        assert reports["unstorable"]["count"] == 2 and reports["unstorable"]["batches"] == 2
        assert reports["unstorable"]["last_batch"] == [1, 2] and reports["malformed"]["count"] == 1
        claimed = outbox.claim(10, min_priority=Priority.DROP_REPORT)  # the uplink takes the reports ...
        outbox.quarantine([rows[3].id], "unstorable", 1, 4)  # ... so the next quarantine starts a new one
        fresh = [r.payload for r in everything(outbox) if r.kind == QUARANTINE_REPORT_KIND and r not in claimed]
        assert len(claimed) == 2 and [p["count"] for p in fresh if p["last_batch"] == [1, 4]] == [1]
        assert outbox.check() == "ok"


def test_a_refused_report_is_kept_without_breeding_reports(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.append(samples(1))
        (row,) = outbox.claim(1)
        outbox.quarantine([row.id], "unstorable", 1, 1)
        (report,) = outbox.claim(1)
        assert report.kind == QUARANTINE_REPORT_KIND
        outbox.quarantine([report.id], "unstorable", 1, 2)
        assert outbox.depth() == 0 and outbox.quarantined().rows == 2
        assert outbox.check() == "ok"


def test_quota_evicts_quarantined_rows_first_into_a_drop_report(tmp_path: Path) -> None:
    counters = Counters()
    with Outbox(tmp_path / "o.db", counters=counters) as outbox:
        outbox.append(samples(10, kind="old"))
        old = outbox.claim(10)
        outbox.quarantine([r.id for r in old], "unstorable", 1, 1)
        (report,) = outbox.claim(1)
        outbox.delete([report.id])  # the cloud took the quarantine report
        per_row = old[0].size
        outbox.quota_bytes = outbox.bytes_used() + 3 * per_row
        outbox.append(samples(6, start=100))
        # Six more rows over a quota with room for three: three quarantined rows (before any unsent row
        # of their priority) make room, and a drop report says so.
        assert outbox.quarantined().rows <= 10 - 3
        kept = [r for r in everything(outbox) if r.kind == "sample"]
        assert len(kept) == 6
        (drop,) = [r for r in everything(outbox) if r.kind == DROP_REPORT_KIND]
        dropped = 10 - outbox.quarantined().rows
        assert drop.payload["dropped"] == {"old": dropped} and counters.get("records_dropped") == dropped
        assert outbox.bytes_used() <= outbox.quota_bytes + drop.size
        assert outbox.check() == "ok"


def test_an_outbox_of_schema_1_gains_the_quarantine_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in _statements(MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute("INSERT INTO records (kind, priority, ts, received_at, size, payload) "
                     "VALUES ('sample', 10, 1.0, 1.0, 60, '{\"n\":1}')")
        conn.execute("INSERT INTO kind_totals VALUES ('sample', 1, 60)")
        conn.execute("PRAGMA user_version = 1")
    with Outbox(path) as outbox:
        assert outbox._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
        assert outbox.depth() == 1 and outbox.quarantined() == QuarantineTotals(0, 0)
        (row,) = outbox.claim(1)
        outbox.quarantine([row.id], "invalid_record", 3, 4)
        assert outbox.quarantined().rows == 1 and outbox.check() == "ok"
