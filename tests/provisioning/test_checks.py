"""How ``fleet-provision check`` shows results and progress (the checks themselves: test_check.py)."""

from __future__ import annotations

import io

from provisioning.check_can import candidates
from provisioning.checks import TerminalProgress, as_json, failed, passed, render_line, render_summary, skipped


def test_progress_prints_each_phase_once_per_interval_and_nothing_when_quiet() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out)
    for _ in range(500):  # a probe loop reporting every few milliseconds
        progress("asking the OBD-II ECUs (functional 01 00, then the VIN)...")
    progress("waiting for a GNSS fix on /dev/ttyS1: 0 s of 90 s, no NMEA yet")
    assert out.getvalue().splitlines() == ["asking the OBD-II ECUs (functional 01 00, then the VIN)...",
                                           "waiting for a GNSS fix on /dev/ttyS1: 0 s of 90 s, no NMEA yet"]
    quiet = io.StringIO()
    TerminalProgress(quiet, quiet=True)("waiting for CAN traffic: 1 s")
    assert quiet.getvalue() == ""


def test_lines_summary_and_json() -> None:
    results = [passed("CAN traffic", "900 frames"), failed("VIN", "reports X", "enrol again with --vehicle X"),
               skipped("GNSS fix", "no [gnss] section")]
    assert render_line(results[1]) == "[FAIL] VIN: reports X\n       fix: enrol again with --vehicle X"
    assert render_summary(results) == "1 of 3 checks failed (VIN): fix them and re-run"
    assert render_summary([results[0], results[2]]) == "all 1 checks passed (1 skipped)"
    doc = as_json("dev-1", results)
    assert doc["ok"] is False and [c["status"] for c in doc["checks"]] == ["pass", "fail", "skip"]


def test_bitrates_tried_configured_first_and_only_where_the_driver_sets_them() -> None:
    assert candidates("slcan", None, "obd2") == [None, 500_000, 250_000, 1_000_000]
    assert candidates("slcan", 250_000, "j1939") == [250_000, 500_000, 1_000_000]
    assert candidates("socketcan", 250_000, "j1939") == [250_000]
