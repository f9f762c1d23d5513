"""build_detectors from real profiles and a real agent.toml, run through the pipeline into SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.counters import Counters
from edge_agent.detection.build import build_detectors
from edge_agent.detection.geofence import GeofenceDetector
from edge_agent.detection.idle import IdleDetector
from edge_agent.errors import ConfigError
from edge_agent.model import TimedLine
from edge_agent.outbox import Outbox
from edge_agent.pipeline import DETECTOR_STATE_KEY, Pipeline
from edge_agent.replay import ReplayOptions, run_replay
from firmware_profiles import load_profile

# The detectors run native/ kernels: CI runs these compiled and with FLEET_PURE_PYTHON=1.
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parents[3]
NMEA = ROOT / "tests" / "data" / "real" / "nmea" / "gnss_drive.nmea"
VAN_CAPTURE = ROOT / "tests" / "data" / "sim" / "van_obd2.log"
EXAMPLE = ROOT / "deploy" / "geofences.example.geojson"
# The yard's west edge is halfway along the capture's 6.5 m creep east (see test_geofence).
YARD = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "id": "yard", "properties": {"name": "Yard"},
    "geometry": {"type": "Polygon", "coordinates": [[
        [37.62150, 55.6860], [37.6230, 55.6860], [37.6230, 55.6870], [37.62150, 55.6870], [37.62150, 55.6860],
    ]]},
}]}
AGENT_TOML = """
[agent]
device_id = "truck-7"
profile = "heavy_truck_j1939"
data_dir = "data"

[gnss]
port = "/dev/ttyUSB0"

[detection]
geofences = "fences.geojson"

[detection.thresholds]
idle_min_duration_s = 120
geofence_hysteresis_m = 1
geofence_min_dwell_s = 2
"""


@pytest.mark.parametrize("profile", ["heavy_truck_j1939", "light_obd2"])
def test_profiles_get_idle_faults_and_trips(profile: str) -> None:
    detectors = build_detectors(load_profile(profile), None, Counters())
    assert set(detectors) == {"idle", "faults", "trips"}
    with_fences = build_detectors(load_profile(profile), None, Counters(), geofences=EXAMPLE)
    assert set(with_fences) == {"idle", "faults", "trips", "geofence"}


def test_bad_geofence_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None}]}))
    with pytest.raises(ConfigError, match=r"features\[0\]"):
        build_detectors(load_profile("light_obd2"), None, Counters(), geofences=bad)


def _lines() -> list[TimedLine]:
    return [TimedLine(1401092000.0 + i, line) for i, line in enumerate(NMEA.read_text(encoding="ascii").splitlines())]


def test_config_thresholds_and_geofences_through_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fences.geojson").write_text(json.dumps(YARD))
    config_path = tmp_path / "agent.toml"
    config_path.write_text(AGENT_TOML)
    config = load_config(config_path)
    profile = load_profile(config.profile)
    counters = Counters()
    detectors = build_detectors(profile, config, counters)
    idle = detectors["idle"]
    assert isinstance(idle, IdleDetector) and idle.min_duration_s == 120.0  # the config's, over the profile's 300
    geofence = detectors["geofence"]
    assert isinstance(geofence, GeofenceDetector) and geofence.hysteresis_m == 1.0
    db = tmp_path / "outbox.db"
    with Outbox(db, counters=counters) as outbox:
        pipeline = Pipeline(profile, outbox, counters, detectors=detectors)
        pipeline.on_lines(_lines())
        pipeline.finish()
        events = [r for r in outbox.claim(1000) if r.kind.startswith("geofence_")]
        saved = outbox.get_state(DETECTOR_STATE_KEY)
    assert [(r.kind, r.payload["fence_id"], r.payload["entered_at"]) for r in events] == [
        ("geofence_entered", "yard", 1401092055.0)
    ]
    assert saved is not None and "yard" in json.dumps(saved["geofence"])
    # A restarted agent resumes from the committed state: the same fixes again enter nothing new.
    with Outbox(db, counters=counters) as outbox:
        pipeline = Pipeline(profile, outbox, counters, detectors=build_detectors(profile, config, counters))
        pipeline.restore_from_outbox()
        pipeline.on_lines(_lines())
        pipeline.finish()
        assert outbox.counts_by_kind().get("geofence_entered") == 1


def test_replay_of_the_van_capture_reports_dtcs_and_a_trip(tmp_path: Path) -> None:
    summary = run_replay(ReplayOptions(profile="light_obd2", db=tmp_path / "o.db", can=VAN_CAPTURE, gnss=NMEA,
                                       geofences=EXAMPLE))
    events = summary["events"]
    assert isinstance(events, dict)
    assert events.get("dtc_appeared") == 2  # P0301 stored, P0420 pending: each once, not once per poll
    assert events.get("trip_started") == 1
