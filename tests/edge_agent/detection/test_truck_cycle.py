"""All detectors on a recorded capture of the simulated truck's depot drive cycle (hil/drive_cycle).

The cycle is known: ignition at 2 s, crank 5-8 s, idle 8-368 s at the depot, a drive with a 45 s stop,
a final 2-minute idle, engine off at 1043 s; SPN 110 active 520-700 s and SPN 3226 560-640 s.
"""

from __future__ import annotations

import pytest

from edge_agent.counters import Counters
from edge_agent.detection.build import build_detectors
from edge_agent.outbox import Outbox
from edge_agent.outbox.rows import StoredRecord
from edge_agent.pipeline import Pipeline
from edge_agent.sources.can_replay import CanReplaySource
from firmware_profiles import load_profile
from hil.record_truck import DEFAULT_START, truck_frames, write_candump

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[StoredRecord]:
    tmp = tmp_path_factory.mktemp("cycle")
    capture = tmp / "truck.log"
    write_candump(truck_frames(), capture)
    profile = load_profile("heavy_truck_j1939")
    counters = Counters()
    detectors = build_detectors(profile, None, counters)
    with Outbox(tmp / "outbox.db", counters=counters) as outbox:
        pipeline = Pipeline(profile, outbox, counters, detectors=detectors)
        source = CanReplaySource(capture, counters=counters)
        while (batch := source.read_batch(512)) is not None:
            pipeline.on_frames(batch)
        pipeline.finish()
        return [r for r in outbox.claim(1_000_000) if r.kind not in ("sample", "position", "dtc_status")]


def _at(value: object) -> float:
    assert isinstance(value, float)
    return value - DEFAULT_START


def test_the_depot_idle_is_one_idle_period(records: list[StoredRecord]) -> None:
    idle = [r for r in records if r.kind.startswith("idle_")]
    assert [r.kind for r in idle] == ["idle_started", "idle_ended"]  # the 45 s and 120 s stops are too short
    ended = idle[1].payload
    assert _at(ended["started_at"]) == pytest.approx(8.0, abs=0.5)
    assert _at(ended["ended_at"]) == pytest.approx(368.0, abs=1.5)
    assert ended["duration_s"] == pytest.approx(360.0, abs=2.0)
    assert ended["fuel_source"] == "measured"
    fuel = ended["fuel_l"]
    assert isinstance(fuel, float) and 0.05 < fuel < 2.0  # a heavy diesel's idle burn over 6 minutes


def test_dtcs_appear_and_clear_once_each(records: list[StoredRecord]) -> None:
    dtcs = sorted((r for r in records if r.kind.startswith("dtc_")), key=lambda r: r.timestamp)
    assert [(r.kind, r.payload["spn"]) for r in dtcs] == [
        ("dtc_appeared", 110), ("dtc_appeared", 3226), ("dtc_cleared", 3226), ("dtc_cleared", 110),
    ]
    assert _at(dtcs[0].payload["since"]) == pytest.approx(520.0, abs=1.5)
    assert _at(dtcs[3].payload["cleared_at"]) == pytest.approx(700.0, abs=1.5)
    assert dtcs[0].payload["lamps"] == {"mil": "off", "red_stop": "off", "amber_warning": "on", "protect": "off"}


def test_one_trip_with_bus_meters(records: list[StoredRecord]) -> None:
    assert [r.kind for r in records if r.kind.startswith("trip_")] == ["trip_started"]  # off for 10 s at the end
    meters = [r.payload for r in records if r.kind == "meter"]
    assert meters and all(m["odometer_source"] == "bus" and m["engine_hours_source"] == "bus" for m in meters)
