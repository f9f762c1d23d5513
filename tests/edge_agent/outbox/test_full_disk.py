"""The outbox on a real filesystem that fills up (a small tmpfs), not a simulated page limit."""

from __future__ import annotations

import os
from pathlib import Path

from edge_agent.counters import Counters
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from tests.tiny_disk import tiny_disk


def _batch(i: int) -> list[Record]:
    rows = [Record("sample", Priority.PERIODIC, i * 100.0 + j, {"signal": "rpm", "value": j, "unit": "rpm",
                                                                  "source": "j1939:0x00"}) for j in range(100)]
    if i % 50 == 0:
        rows.append(Record("dtc_status", Priority.FAULT, float(i), {"spn": 110, "fmi": 16, "n": i}))
    return rows


def test_a_full_disk_is_survived_like_a_quota(tmp_path: Path) -> None:
    with tiny_disk(tmp_path, "2m") as disk:
        counters = Counters()
        with Outbox(disk / "outbox.db", counters=counters) as outbox:
            assert (disk / "outbox.db.reserve").exists()
            for i in range(1000):  # 100,000 samples: about 13 MB of rows into a 2 MiB filesystem
                outbox.append(_batch(i))
            kinds = outbox.counts_by_kind()
            assert outbox.check() == "ok"
            # Drop reports are claimed first (highest priority). Claiming all 10,000 rows at once would
            # rewrite most pages, which a full 2 MiB disk has no room for; the uplink claims a batch.
            reports = [r for r in outbox.claim(10) if r.kind == "drop_report"]
        st = os.statvfs(disk)
    appended, dropped = counters.get("records_appended"), counters.get("records_dropped")
    # Every record handed in is either stored or accounted for in a drop report.
    assert appended == 100_000 + 20
    assert kinds["sample"] + kinds["dtc_status"] + dropped == appended
    # Only the lowest priority went: every fault is still there.
    assert kinds["dtc_status"] == 20
    [report] = reports
    assert report.payload["reason"] == "disk_full"
    assert report.payload["dropped"] == {"sample": dropped}
    assert st.f_bavail * st.f_frsize < 2 * 1024 * 1024  # the disk really was the limit


def test_reopen_after_a_full_disk_keeps_what_was_committed(tmp_path: Path) -> None:
    with tiny_disk(tmp_path, "2m") as disk:
        with Outbox(disk / "outbox.db", reserve_bytes=256 * 1024) as outbox:
            for i in range(300):
                outbox.append(_batch(i))
            before = outbox.counts_by_kind()
        with Outbox(disk / "outbox.db", reserve_bytes=256 * 1024) as outbox:
            assert outbox.counts_by_kind() == before
            assert outbox.check() == "ok"
            outbox.append(_batch(300))
            assert outbox.counts_by_kind()["dtc_status"] == 7
