"""Quota eviction, coalesced drop reports and a full disk (``PRAGMA max_page_count``), on real SQLite.

The accounting identity every test checks: records appended = records kept + records dropped (+ acked
and deleted), and the drop reports' counts per kind are exactly the records missing per kind.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.counters import Counters
from edge_agent.errors import OutboxError
from edge_agent.model import Priority, Record
from edge_agent.outbox import DROP_REPORT_KIND, Outbox, StoredRecord
from tests.edge_agent.outbox.helpers import everything, raw_rows, rec, samples


def split(rows: list[StoredRecord]) -> tuple[list[StoredRecord], list[StoredRecord]]:
    reports = [r for r in rows if r.kind == DROP_REPORT_KIND]
    return [r for r in rows if r.kind != DROP_REPORT_KIND], reports


def dropped_by_kind(reports: list[StoredRecord]) -> Counter[str]:
    total: Counter[str] = Counter()
    for r in reports:
        dropped = r.payload["dropped"]
        assert isinstance(dropped, dict)
        total.update(dropped)
        assert r.payload["count"] == sum(dropped.values())
    return total


def key(r: Record | StoredRecord) -> tuple[str, object]:
    return (r.kind, r.payload.get("seq"))


def assert_accounted(appended: list[Record], outbox: Outbox, counters: Counters, deleted: int = 0) -> None:
    kept, reports = split(everything(outbox))
    dropped = dropped_by_kind(reports)
    missing = Counter(r.kind for r in appended) - Counter(r.kind for r in kept)
    if not deleted:
        assert dropped == missing
    assert counters.get("records_appended") == len(appended) == len(kept) + dropped.total() + deleted
    assert counters.get("records_dropped") == dropped.total()
    assert outbox.check() == "ok"


def test_eviction_is_lowest_priority_then_oldest_and_minimal(tmp_path: object) -> None:
    counters = Counters()
    path = f"{tmp_path}/o.db"
    periodic = samples(30)
    events = [rec("idling", Priority.EVENT, 100.0 + i, seq=f"e{i:07d}") for i in range(10)]
    faults = [rec("dtc_on", Priority.FAULT, 200.0 + i, seq=f"f{i:07d}") for i in range(10)]
    with Outbox(path, counters=counters) as probe:
        probe.append(periodic[:1])
        size = probe.bytes_used()  # every record here has the same size
    # Room for the 50 records (kinds of equal length: equal sizes) and a drop report, minus 12 records.
    quota = 50 * size - 12 * size + 200
    path = f"{tmp_path}/q.db"
    counters = Counters()
    with Outbox(path, quota_bytes=quota, counters=counters) as outbox:
        # Interleaved so that age and priority disagree: events and faults are older than half the samples.
        appended = periodic[:15] + events + faults + periodic[15:]
        for i in range(0, len(appended), 5):
            outbox.append(appended[i : i + 5])
        kept, reports = split(everything(outbox))
        assert outbox.bytes_used() <= quota
        assert len(reports) == 1 and reports[0].payload["reason"] == "quota"
        lost = [r for r in appended if key(r) not in {key(k) for k in kept}]
        # Only the oldest periodic records went, a prefix of them, and no more than needed.
        assert lost == periodic[: len(lost)] and len(lost) >= 12
        assert outbox.bytes_used() + size > quota
        assert reports[0].payload["first_ts"] == 0.0 and reports[0].payload["last_ts"] == lost[-1].timestamp
        assert reports[0].payload["bytes"] == len(lost) * size
        assert_accounted(appended, outbox, counters)


def test_drop_report_is_coalesced_in_place_until_claimed(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", quota_bytes=4000, counters=counters) as outbox:
        appended: list[Record] = []
        report_ids: set[int] = set()
        for batch in range(20):
            new = samples(10, start=batch * 10)
            appended += new
            outbox.append(new)
            _, reports = split(everything(outbox))
            assert len(reports) <= 1
            report_ids.update(r.id for r in reports)
        assert len(report_ids) == 1  # one row, updated in place
        assert_accounted(appended, outbox, counters)
        first = outbox.claim(1)
        assert first[0].kind == DROP_REPORT_KIND  # highest priority leaves first
        more = samples(20, start=1000)
        appended += more
        outbox.append(more)
        # The claimed report is no longer pending: the next eviction starts a new one.
        _, reports = split(everything(outbox))
        assert len(reports) == 2 and {r.id for r in reports} >= {first[0].id}
        assert max(r.id for r in reports) > first[0].id
        assert_accounted(appended, outbox, counters)
        outbox.delete([first[0].id])  # the cloud acked the first report
        kept, reports = split(everything(outbox))
        assert len(kept) + dropped_by_kind(reports).total() + dropped_by_kind(first).total() == len(appended)


def test_claimed_rows_are_never_evicted(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", quota_bytes=3000, counters=counters) as outbox:
        first = samples(20)
        outbox.append(first)
        in_flight = outbox.claim(5)  # the five oldest, lowest priority: the first victims otherwise
        assert [r.payload["seq"] for r in in_flight] == [f"{i:08d}" for i in range(5)]
        outbox.append(samples(40, start=100))
        kept, _ = split(everything(outbox))
        seqs = {r.payload["seq"] for r in kept}
        assert {r.payload["seq"] for r in in_flight} <= seqs
        assert f"{5:08d}" not in seqs  # the oldest pending one did go
        assert_accounted(first + samples(40, start=100), outbox, counters)


def test_an_append_larger_than_the_quota_keeps_its_highest_priority_newest(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", quota_bytes=2000, counters=counters) as outbox:
        batch = [*samples(100), rec("dtc", Priority.FAULT, 50.0, seq="fault")]
        outbox.append(batch)  # no exception
        kept, reports = split(everything(outbox))
        assert outbox.bytes_used() <= 2000
        assert ("dtc", "fault") in {key(r) for r in kept}
        kept_samples = sorted(str(r.payload["seq"]) for r in kept if r.kind == "sample")
        assert kept_samples == [f"{i:08d}" for i in range(100 - len(kept_samples), 100)]  # the newest
        assert dropped_by_kind(reports) == Counter({"sample": 100 - len(kept_samples)})
        assert_accounted(batch, outbox, counters)


def test_only_reports_and_claimed_rows_left_may_exceed_the_quota(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", quota_bytes=1500, counters=counters) as outbox:
        outbox.append(samples(15))
        outbox.append(samples(15, start=15))
        held = outbox.claim(1000)  # report and every row in flight
        assert held[0].kind == DROP_REPORT_KIND
        outbox.append(samples(10, start=100))  # all of it is dropped, and reported
        kept, reports = split(everything(outbox))
        assert {r.id for r in kept} == {r.id for r in held if r.kind != DROP_REPORT_KIND}
        assert dropped_by_kind(reports).total() == 40 - len(kept)
        assert_accounted(samples(15) + samples(15, start=15) + samples(10, start=100), outbox, counters)


def test_disk_full_evicts_reports_and_retries(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", counters=counters) as outbox:
        outbox._db.execute("PRAGMA max_page_count = 80")  # ~320 KiB with 4 KiB pages: a full disk
        appended: list[Record] = []
        faults = [rec("dtc", Priority.FAULT, float(i), seq=f"f{i}") for i in range(5)]
        outbox.append(faults)
        appended += faults
        for b in range(60):
            batch = samples(100, start=b * 100)
            outbox.append(batch)  # never raises: rows are evicted instead
            appended += batch
        kept, reports = split(everything(outbox))
        assert [r.payload["reason"] for r in reports] == ["disk_full"]
        assert {key(f) for f in faults} <= {key(r) for r in kept}  # higher priority survived
        # The newest batch is always there; the oldest samples went first.
        kept_seqs = sorted(int(str(r.payload["seq"])) for r in kept if r.kind == "sample")
        assert kept_seqs == list(range(6000 - len(kept_seqs), 6000))
        assert_accounted(appended, outbox, counters)


def test_disk_full_with_nothing_to_evict_drops_the_new_records_and_keeps_committed_rows(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", counters=counters) as outbox:
        outbox._db.execute("PRAGMA max_page_count = 40")
        for b in range(30):
            outbox.append(samples(100, start=b * 100))
        before = everything(outbox)
        outbox.claim(1_000_000)  # everything in flight: nothing stored may be evicted
        dropped_before = counters.get("records_dropped")
        # The disk limit learned at the first full disk applies: the new samples themselves are the
        # lowest priority, oldest-or-equal candidates, so they are dropped and reported.
        outbox.append(samples(2000, start=10_000))
        assert counters.get("records_dropped") - dropped_before == 2000
        assert outbox.check() == "ok"
        outbox.release([r.id for r in before])
        kept = everything(outbox)
        assert [r for r in kept if r.kind != "drop_report"] == [r for r in before if r.kind != "drop_report"]
        reports = [r for r in kept if r.kind == "drop_report"]
        assert {r.payload["reason"] for r in reports} == {"disk_full"}
        assert sum(int(str(r.payload["count"])) for r in reports) == counters.get("records_dropped")


def test_disk_full_with_nothing_to_evict_on_first_contact_raises(tmp_path: object) -> None:
    counters = Counters()
    with Outbox(f"{tmp_path}/o.db", counters=counters) as outbox:
        outbox._db.execute("PRAGMA max_page_count = 40")
        outbox.append(samples(100))
        before = everything(outbox)
        outbox.claim(1_000_000)
        with pytest.raises(OutboxError, match="disk full"):
            outbox.append(samples(3000, start=10_000))
        assert outbox.check() == "ok"
        outbox.release([r.id for r in before])
        assert everything(outbox) == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), quota=st.integers(600, 6000))
def test_random_workload_keeps_the_books(tmp_path_factory: pytest.TempPathFactory, seed: int, quota: int) -> None:
    rng = random.Random(seed)
    counters = Counters()
    path = tmp_path_factory.mktemp("rand") / "o.db"
    appended: list[Record] = []
    deleted = 0
    with Outbox(path, quota_bytes=quota, counters=counters) as outbox:
        for step in range(40):
            action = rng.random()
            if action < 0.6:
                batch = [
                    rec(rng.choice(["sample", "idle", "dtc"]), rng.choice(list(Priority)), float(step),
                        seq=f"{step}:{i}", pad="x" * rng.randrange(0, 200))
                    for i in range(rng.randrange(1, 30))
                ]
                outbox.append(batch)
                appended += batch
                if outbox.bytes_used() > quota:  # allowed only when nothing evictable is left
                    assert all(row[6] == 1 or row[1] == DROP_REPORT_KIND for row in raw_rows(path))
            elif action < 0.8:
                outbox.claim(rng.randrange(1, 10))
            elif action < 0.9:
                claimed = outbox.claim(rng.randrange(1, 10))
                outbox.release([r.id for r in claimed])
            else:
                acked = [r for r in outbox.claim(rng.randrange(1, 5)) if r.kind != DROP_REPORT_KIND]
                outbox.delete([r.id for r in acked])
                deleted += len(acked)
        kept, reports = split(everything(outbox))
        assert len(appended) == len(kept) + dropped_by_kind(reports).total() + deleted
        assert counters.get("records_dropped") == dropped_by_kind(reports).total()
        assert outbox.check() == "ok"
