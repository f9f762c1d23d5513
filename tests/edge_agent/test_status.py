"""``fleet-agent status``'s view of the status file: staleness, counters, uplink."""

from __future__ import annotations

from pathlib import Path

from edge_agent.status import format_status, read_status, write_status


def test_status_round_trip_and_staleness(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status: dict[str, object] = {
        "device_id": "truck-1", "profile": "heavy_truck_j1939", "pid": 42, "written_at": 1000.0,
        "status_interval_s": 1.0, "uptime_s": 3600.0,
        "counters": {"frames": 10, "frames_decoded": 9, "decode_errors": {"can_short_frame": 1},
                     "batches_committed": 7, "records_dropped": 2},
        "outbox": {"depth": 5, "bytes": 900},
        "uplink": {"connected": False, "in_flight_batches": 1, "in_flight_records": 50},
    }
    write_status(path, status)
    assert read_status(path) == status
    fresh = format_status(read_status(path), now=1002.0)
    assert "truck-1 (heavy_truck_j1939), pid 42, running" in fresh
    assert "can_short_frame 1" in fresh and "5 records, 900 bytes, 2 dropped" in fresh
    assert "DISCONNECTED, 1 batches (50 records)" in fresh and "7 committed" in fresh
    stale = format_status(read_status(path), now=1100.0)
    assert "STALE (100 s old" in stale
    del status["uplink"]
    assert "not configured" in format_status(status, now=1000.0)


def test_status_shows_quarantine_distrust_and_ignored_acks() -> None:
    status: dict[str, object] = {
        "written_at": 1000.0, "counters": {"batches_quarantined": 2, "rejects_not_trusted": 3, "acks_hash_mismatch": 1},
        "uplink": {"connected": True, "quarantined_records": 4, "quarantined_bytes": 480},
    }
    text = format_status(status, now=1000.0)
    assert "quarantine      4 records, 480 bytes" in text and "2 batches this run" in text
    assert "DOES NOT TRUST THIS DEVICE: 3 batches refused" in text
    assert "acks ignored: 1 for other bytes, 0 without a hash" in text
    calm = format_status({"written_at": 1000.0, "counters": {}, "uplink": {"connected": True}}, now=1000.0)
    assert "quarantine      empty" in calm and "TRUST" not in calm and "acks ignored" not in calm
