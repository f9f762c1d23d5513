"""Outbox basics on a real SQLite file: order, ids, in-flight rows, state, schema versions, bad input."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.errors import OutboxError
from edge_agent.model import Priority, Record
from edge_agent.outbox import SCHEMA_VERSION, Outbox
from edge_agent.outbox.schema import first_record_id
from tests.edge_agent.outbox.helpers import everything, raw_rows, rec, samples


def test_creates_parent_dirs_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "outbox.db"
    with Outbox(path) as outbox:
        assert path.exists()
        assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert outbox._db.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_append_stores_compact_json_with_device_and_wall_times(tmp_path: Path) -> None:
    counters = Counters()
    before = time.time()
    with Outbox(tmp_path / "o.db", counters=counters) as outbox:
        outbox.append([rec("position", Priority.PERIODIC, 1234.5, lat=52.5, lon=13.4, note="é")])
    after = time.time()
    [(rid, kind, prio, ts, received_at, size, in_flight, payload)] = raw_rows(tmp_path / "o.db")
    assert (kind, prio, ts, in_flight) == ("position", 10, 1234.5, 0)
    # Ids start from the creation time (see first_record_id), not from 1.
    assert first_record_id(before) < rid <= first_record_id(after) + 1
    assert before <= received_at <= after
    assert payload == '{"lat":52.5,"lon":13.4,"note":"\\u00e9"}'
    assert json.loads(payload)["note"] == "é"
    assert size > len(payload)
    assert counters.get("records_appended") == 1


def test_claim_orders_by_priority_then_oldest_and_release_delete(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.append([
            rec("sample", Priority.PERIODIC, 1.0, n=1),
            rec("idle", Priority.EVENT, 2.0, n=2),
            rec("dtc", Priority.FAULT, 3.0, n=3),
            rec("sample", Priority.PERIODIC, 4.0, n=4),
        ])
        outbox.append([rec("idle", Priority.EVENT, 0.5, n=5), rec("dtc", Priority.FAULT, 9.0, n=6)])
        # Priority, then age in the outbox (id), not device time: n=5 is older on the bus, newer here.
        first = outbox.claim(3)
        assert [r.payload["n"] for r in first] == [3, 6, 2]
        assert [r.priority for r in first] == [30, 30, 20]
        assert [r.payload["n"] for r in outbox.claim(10)] == [5, 1, 4]
        assert outbox.claim(10) == []
        outbox.release([first[1].id, first[2].id])
        again = outbox.claim(10)
        assert [r.payload["n"] for r in again] == [6, 2]
        outbox.delete([first[0].id, again[0].id])
        assert outbox.depth() == 4
        assert outbox.counts_by_kind() == {"idle": 2, "sample": 2}
        assert outbox.check() == "ok"


def test_claim_respects_max_bytes_and_min_priority(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        outbox.append([*samples(10), rec("dtc", Priority.FAULT, 0.0, big="x" * 500)])
        rows = everything(outbox)
        sample_size = rows[1].size
        assert {r.size for r in rows[1:]} == {sample_size} and rows[0].size > 500
        assert [r.kind for r in outbox.claim(100, max_bytes=1)] == ["dtc"]  # the first row always leaves
        got = outbox.claim(100, max_bytes=3 * sample_size + sample_size // 2)
        assert [r.payload["seq"] for r in got] == ["00000000", "00000001", "00000002"]
        assert outbox.claim(100, min_priority=Priority.EVENT) == []
        assert len(outbox.claim(100, min_priority=Priority.PERIODIC)) == 7


def test_ids_are_monotonic_and_never_reused_after_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        outbox.append(samples(5))
        ids = [r.id for r in outbox.claim(10)]
        assert ids == sorted(ids) and len(set(ids)) == 5
        outbox.delete(ids)
        assert outbox.depth() == 0
    with Outbox(path) as outbox:
        outbox.append(samples(3, start=100))
        new_ids = [r.id for r in everything(outbox)]
    assert min(new_ids) > max(ids)
    assert new_ids == sorted(new_ids)


def test_rows_in_flight_return_to_pending_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    outbox = Outbox(path)
    outbox.append(samples(4))
    claimed = outbox.claim(2)
    assert [r[6] for r in raw_rows(path)] == [1, 1, 0, 0]
    outbox._conn.close()  # type: ignore[union-attr]  # a crash: no release, no clean close
    with Outbox(path) as reopened:
        assert [r[6] for r in raw_rows(path)] == [0, 0, 0, 0]
        assert [r.id for r in reopened.claim(2)] == [r.id for r in claimed]


def test_state_round_trip_and_atomic_with_append(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        assert outbox.get_state("detectors") is None
        outbox.put_state("uplink", {"seq": 7})
        outbox.append(samples(2), state={"detectors": {"idle": {"since": 12.5}}, "uplink": {"seq": 8}})
    with Outbox(path) as outbox:
        assert outbox.get_state("detectors") == {"idle": {"since": 12.5}}
        assert outbox.get_state("uplink") == {"seq": 8}
        assert outbox.depth() == 2
        # State that cannot be stored fails the whole append: neither records nor state change.
        with pytest.raises(OutboxError, match="not JSON-serialisable"):
            outbox.append(samples(3, start=10), state={"uplink": {"seq": {1, 2}}})
        assert outbox.depth() == 2
        assert outbox.get_state("uplink") == {"seq": 8}


def test_unstorable_records_are_counted_and_skipped(tmp_path: Path) -> None:
    counters = Counters()
    with Outbox(tmp_path / "o.db", counters=counters) as outbox:
        outbox.append([
            rec("sample", Priority.PERIODIC, 1.0, v=1),
            rec("sample", Priority.PERIODIC, float("nan"), v=2),  # no device time
            rec("sample", Priority.PERIODIC, 3.0, v={3}),  # a set is not JSON
            Record("", Priority.PERIODIC, 4.0, {"v": 4}),  # no kind
            rec("sample", Priority.PERIODIC, 5.0, v=5),
        ])
        assert [r.payload["v"] for r in everything(outbox)] == [1, 5]
    assert counters.decode_errors() == {"outbox_bad_record": 3}
    assert counters.get("records_appended") == 2


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        outbox.append(samples(2))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
    with pytest.raises(OutboxError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than .* \({SCHEMA_VERSION}\)"):
        Outbox(path)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 2


def test_an_existing_empty_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
        conn.commit()
    with Outbox(path) as outbox:
        outbox.append(samples(1))
        assert outbox.depth() == 1
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(OutboxError, match="not a usable outbox database"):
        Outbox(path)


def test_closed_outbox_raises(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.close()
    outbox.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        outbox.append(samples(1))
    with pytest.raises(OutboxError, match="closed"):
        outbox.depth()


def test_check_reports_totals_that_disagree_with_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as outbox:
        outbox.append(samples(3))
        assert outbox.check() == "ok"
        assert outbox.bytes_used() == sum(r[5] for r in raw_rows(path))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE kind_totals SET rows = rows + 1")
        conn.commit()
    with Outbox(path) as outbox:
        assert outbox.check().startswith("kind_totals disagree")


def test_bad_quota_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="quota_bytes"):
        Outbox(tmp_path / "o.db", quota_bytes=0)


def test_a_recreated_outbox_never_reuses_ids_the_cloud_may_hold(tmp_path: Path) -> None:
    """A lost outbox file (reflashed card) must not restart ids at 1: the cloud keys records by id."""
    with Outbox(tmp_path / "old.db") as outbox:
        outbox.append([rec("sample", Priority.PERIODIC, float(i), v=i) for i in range(5000)])
        old_max = max(r.id for r in outbox.claim(10_000))
    (tmp_path / "old.db").unlink()
    time.sleep(0.01)
    with Outbox(tmp_path / "old.db") as outbox:
        outbox.append([rec("sample", Priority.PERIODIC, 1.0, v=1)])
        [new] = outbox.claim(10)
    assert new.id > old_max
