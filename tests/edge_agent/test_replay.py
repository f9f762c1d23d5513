"""``fleet-agent replay`` end to end: bundled captures through the real CLI, outbox checked on disk."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from hil.record_truck import truck_frames, write_candump

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TRUCK = DATA / "sim" / "truck_j1939.log.gz"
VAN = DATA / "sim" / "van_obd2.log"
NMEA = DATA / "real" / "nmea" / "gnss_drive.nmea"
CORRUPT_CAN = DATA / "corrupt" / "can" / "mixed_bad_lines.log"


def _replay(*args: str | Path) -> tuple[dict[str, object], subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", *map(str, args), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc


def test_bundled_truck_capture_is_what_the_simulator_records(tmp_path: Path) -> None:
    """The bundled capture is reproducible: regenerating it gives the same bytes."""
    fresh = tmp_path / "truck.log"
    write_candump(truck_frames(), fresh)
    assert fresh.read_bytes() == gzip.decompress(TRUCK.read_bytes())


def test_truck_capture_with_gnss(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    summary, _ = _replay("--profile", "heavy_truck_j1939", "--can", TRUCK, "--gnss", NMEA, "--db", db)
    lines = gzip.decompress(TRUCK.read_bytes()).count(b"\n")
    assert summary["frames"] == lines
    assert summary["decode_errors"] == {"nmea_not_sentence": 9}  # the capture's '#' header lines
    assert summary["vins"] == ["1XKYDP9X0MJ000001"]
    dtcs = {(d["spn"], d["fmi"]) for d in summary["dtcs"]}  # type: ignore[union-attr]
    assert dtcs == {(110, 16), (3226, 4)}  # the drive cycle's two fault windows
    records = summary["records"]
    assert isinstance(records, dict)
    # DM1 states: none -> 110 -> 110+3226 -> 110 -> none (the ECU's DM1 with no DTC is stored once).
    assert records["dtc_status"] == 5
    assert records["vehicle_id"] == 1
    assert records["position"] == summary["fixes"] - summary["fixes_rejected"]  # type: ignore[operator]
    # The gate keeps far fewer samples than were decoded, but every signal at least once.
    assert 0 < int(summary["samples_stored"]) < int(summary["samples"]) / 10  # type: ignore[call-overload]
    events = summary["events"]
    assert isinstance(events, dict)
    # 6 minutes idling at the depot is over the profile's 5 minute threshold; the 2 minute idle is not.
    assert events.get("idle_started") == 1 and events.get("idle_ended") == 1
    with Outbox(db) as outbox:
        assert outbox.counts_by_kind() == records
        assert outbox.check() == "ok"
        signals = {r.payload["signal"] for r in outbox.claim(100_000) if r.kind == "sample"}
    assert {"engine_speed", "wheel_speed", "fuel_rate", "engine_hours", "odometer", "coolant_temp"} <= signals


def test_van_obd_capture(tmp_path: Path) -> None:
    summary, _ = _replay("--profile", "light_obd2", "--can", VAN, "--db", tmp_path / "van.db")
    assert summary["frames"] == VAN.read_text().count("\n")
    records = summary["records"]
    assert isinstance(records, dict)
    assert records.get("sample", 0) > 0
    assert len(summary["vins"]) == 1  # type: ignore[arg-type]


def test_corrupt_capture_is_counted_and_the_rest_decoded(tmp_path: Path) -> None:
    summary, _ = _replay("--profile", "heavy_truck_j1939", "--can", CORRUPT_CAN, "--db", tmp_path / "c.db")
    errors = summary["decode_errors"]
    assert isinstance(errors, dict)
    assert errors.get("can_log_malformed", 0) > 0
    assert int(summary["frames_decoded"]) > 0  # type: ignore[call-overload]


def test_text_summary_and_usage_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", "--profile", "heavy_truck_j1939", "--can", str(TRUCK),
         "--db", str(tmp_path / "t.db")], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SPN 110 FMI 16" in proc.stdout and "1XKYDP9X0MJ000001" in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", "--profile", "heavy_truck_j1939", "--can",
         str(tmp_path / "nope.log"), "--db", str(tmp_path / "t.db")], capture_output=True, text=True, cwd=ROOT,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("profile", ["no_such_profile"])
def test_unknown_profile_is_a_clear_error(profile: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", "--profile", profile, "--can", str(TRUCK),
         "--db", str(tmp_path / "t.db")], capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 1
    assert profile in proc.stderr and "Traceback" not in proc.stderr
