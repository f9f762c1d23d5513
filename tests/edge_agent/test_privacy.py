"""Private mode: no location leaves the vehicle while private; distance and engine hours still do.

NMEA comes from the HIL GNSS simulator (GGA/RMC/VTG/GSA text, as a receiver writes it) driving a route
through the depot scenario's geofences, into the real pipeline, detectors and SQLite outbox.
"""

from __future__ import annotations

import calendar
import itertools
import math
import re
from pathlib import Path

import pytest

from edge_agent.cli import main as agent_main
from edge_agent.config import load_config
from edge_agent.counters import Counters
from edge_agent.detection.build import build_detectors
from edge_agent.errors import ConfigError
from edge_agent.model import TimedLine
from edge_agent.outbox import Outbox
from edge_agent.outbox.store import StoredRecord
from edge_agent.pipeline import Pipeline
from edge_agent.privacy import (
    LOCATION_KEYS,
    PrivacyGate,
    PrivacyPolicy,
    great_circle_m,
    parse_policy,
    parse_window,
    read_switch,
)
from edge_agent.replay import _drain
from edge_agent.sources.can_replay import CanReplaySource
from edge_agent.sources.nmea_replay import NmeaReplaySource
from firmware_profiles import load_profile
from hil.gnss_sim import GnssSimulator, Route

FENCES = Path(__file__).parents[2] / "hil" / "scenarios" / "depot_fences.geojson"
WAYPOINTS = [(52.3700, 4.8900), (52.3700, 4.9341), (52.3970, 4.9341)]  # depot -> customer_a -> fuel_yard
#: Monday 2026-11-23 18:57:00 UTC: the schedule below ends three minutes into the drive.
START = calendar.timegm((2026, 11, 23, 18, 57, 0))
SCHEDULE = {"allowed": True, "outside_working_hours": True, "working_hours": ["Mon-Fri 06:00-19:00"]}


def _drive(policy: PrivacyPolicy, outbox: Outbox, *, switch: bool | None = None, start_s: int = 0,
           end_s: int | None = None) -> Pipeline:
    counters = Counters()
    profile = load_profile("heavy_truck_j1939")
    detectors = build_detectors(profile, None, counters, geofences=FENCES)
    pipeline = Pipeline(profile, outbox, counters, detectors=detectors, privacy=PrivacyGate(policy, switch))
    pipeline.restore_from_outbox()
    sim = GnssSimulator(Route(WAYPOINTS, 50 / 3.6), START)
    end = int(sim.route.duration_s) if end_s is None else end_s
    for t in range(start_s, end + 1):
        pipeline.on_lines([TimedLine(START + t, s) for s in sim.sentences(float(t))])
    pipeline.finish()
    return pipeline


def _records(outbox: Outbox) -> list[StoredRecord]:
    return outbox.claim(1_000_000)


def _located(records: list[StoredRecord]) -> list[StoredRecord]:
    return [r for r in records if r.kind == "position" or LOCATION_KEYS & set(r.payload)]


def _route_m(t0: float, t1: float) -> float:
    route = Route(WAYPOINTS, 50 / 3.6)
    pts = [route.at(float(t)) for t in range(int(t0), int(t1) + 1)]
    return sum(great_circle_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(pts))


def test_public_drive_stores_positions_and_geofence_crossings(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        _drive(PrivacyPolicy(), outbox, switch=True)  # the switch means nothing where policy forbids
        kinds = outbox.counts_by_kind()
    assert kinds["position"] > 400
    assert kinds.get("geofence_entered", 0) >= 2
    assert "privacy_mode" not in kinds and "private_interval" not in kinds


def test_driver_switch_sends_no_location_but_the_distance(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        pipeline = _drive(PrivacyPolicy(allowed=True), outbox, switch=True)
        records = _records(outbox)
    assert pipeline.privacy is not None
    pending_km = float(pipeline.privacy.state()["distance_m"]) / 1000  # type: ignore[arg-type]
    assert _located(records) == []
    kinds = {r.kind for r in records}
    assert not any(k.startswith("geofence") for k in kinds)
    modes = [r.payload for r in records if r.kind == "privacy_mode"]
    assert modes == [{"private": True, "reason": "driver"}]
    intervals = [r.payload for r in records if r.kind == "private_interval"]
    assert intervals and intervals[-1]["final"] is False  # still private at the end of input
    # Reported every PRIVATE_REPORT_S; the rest waits in the committed state for the next report.
    travelled = sum(float(p["distance_km"]) for p in intervals) + pending_km  # type: ignore[arg-type]
    assert travelled == pytest.approx(_route_m(0, Route(WAYPOINTS, 50 / 3.6).duration_s) / 1000, rel=0.02)


def test_schedule_ends_working_hours_mid_drive(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        pipeline = _drive(parse_policy(SCHEDULE), outbox)
        records = _records(outbox)
    assert pipeline.privacy is not None
    pending_km = float(pipeline.privacy.state()["distance_m"]) / 1000  # type: ignore[arg-type]
    boundary = START + 180
    located = _located(records)
    assert located and max(r.timestamp for r in located) < boundary
    assert all(r.timestamp >= boundary for r in records if r.kind == "private_interval")
    modes = [(r.timestamp, r.payload) for r in records if r.kind == "privacy_mode"]
    assert modes == [(boundary, {"private": True, "reason": "schedule"})]
    # The fuel yard lies after the boundary: its crossing is not reported.
    fences = {r.payload.get("geofence_id") or r.payload.get("id") for r in records if r.kind.startswith("geofence")}
    assert "fuel_yard" not in fences
    travelled = pending_km + sum(
        float(r.payload["distance_km"]) for r in records if r.kind == "private_interval")  # type: ignore[arg-type]
    assert travelled == pytest.approx(_route_m(180, Route(WAYPOINTS, 50 / 3.6).duration_s) / 1000, rel=0.02)


def test_private_mode_survives_a_restart_without_a_second_start_event(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as outbox:
        _drive(PrivacyPolicy(allowed=True), outbox, switch=True, end_s=200)
    with Outbox(tmp_path / "o.db") as outbox:
        _drive(PrivacyPolicy(allowed=True), outbox, switch=None, start_s=201)  # driver cleared the switch
        records = _records(outbox)
    modes = [r.payload for r in records if r.kind == "privacy_mode"]
    assert modes == [{"private": True, "reason": "driver"}, {"private": False, "reason": "schedule"}]
    finals = [r.payload for r in records if r.kind == "private_interval" and r.payload["final"]]
    assert len(finals) == 1
    assert [r for r in records if r.kind == "position" and r.timestamp < START + 201] == []


def _replay_truck(tmp_path: Path, name: str, privacy: PrivacyGate) -> list[StoredRecord]:
    data = Path(__file__).parents[1] / "data"
    counters = Counters()
    profile = load_profile("heavy_truck_j1939")
    with Outbox(tmp_path / f"{name}.db") as outbox:
        pipeline = Pipeline(profile, outbox, counters, detectors=build_detectors(profile, None, counters),
                            privacy=privacy)
        can = CanReplaySource(data / "sim" / "truck_j1939.log.gz", pace="fast", counters=counters)
        gnss = NmeaReplaySource(data / "real" / "nmea" / "gnss_drive.nmea", pace="fast", counters=counters)
        try:
            _drain(pipeline, can, gnss)
            pipeline.finish()
        finally:
            can.close()
            gnss.close()
        return _records(outbox)


def test_private_truck_keeps_engine_hours_odometer_and_faults(tmp_path: Path) -> None:
    public = _replay_truck(tmp_path, "public", PrivacyGate(PrivacyPolicy()))
    private = _replay_truck(tmp_path, "private", PrivacyGate(PrivacyPolicy(allowed=True), switch=True))
    assert any(r.kind == "position" for r in public)
    assert _located(private) == []

    def kept(records: list[StoredRecord]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in records:
            if r.kind in ("sample", "meter", "dtc_status", "trip_started", "trip_ended", "idle_started"):
                out[r.kind] = out.get(r.kind, 0) + 1
        return out

    assert kept(private) == kept(public)
    signals = {r.payload["signal"] for r in private if r.kind == "sample"}
    assert {"engine_hours", "odometer"} <= signals


@pytest.mark.parametrize(("spec", "days", "start", "end"), [
    ("Mon-Fri 6:00-19:00", {0, 1, 2, 3, 4}, (6, 0), (19, 0)),
    ("sat 07:30-12:00", {5}, (7, 30), (12, 0)),
    ("Sun-Mon 22:00-06:00", {6, 0}, (22, 0), (6, 0)),  # the day range wraps over the week's end
    ("Fri 00:00-24:00", {4}, (0, 0), (0, 0)),  # the whole day
])
def test_windows_parse(spec: str, days: set[int], start: tuple[int, int], end: tuple[int, int]) -> None:
    window = parse_window(spec)
    assert (set(window.days), (window.start.hour, window.start.minute), (window.end.hour, window.end.minute)) == (
        days, start, end)


@pytest.mark.parametrize("spec", ["Mon-Fri", "Xyz 06:00-07:00", "Mon 25:00-26:00", "Mon 06:00-06:00", "Mon 6-7"])
def test_bad_windows_are_refused_with_the_field(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"privacy\.working_hours"):
        parse_window(spec)


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    policy = parse_policy({"allowed": True, "outside_working_hours": True, "working_hours": ["Sun 22:00-06:00"],
                           "timezone": "Europe/Berlin"})
    monday_3am_berlin = calendar.timegm((2026, 11, 23, 2, 0, 0))  # CET = UTC+1
    monday_7am_berlin = calendar.timegm((2026, 11, 23, 6, 0, 0))
    assert policy.private_at(monday_3am_berlin, None) == (False, "schedule")
    assert policy.private_at(monday_7am_berlin, None) == (True, "schedule")


@pytest.mark.parametrize(("table", "field"), [
    ({"allowed": "yes"}, "privacy.allowed"),
    ({"timezone": "Mars/Olympus"}, "privacy.timezone"),
    ({"outside_working_hours": True}, "privacy.outside_working_hours"),
    ({"color": 1}, "privacy.color"),
])
def test_bad_policy_names_the_field(table: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse_policy(table)


def _config(tmp_path: Path, allowed: bool) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[agent]
device_id = "dev-1"
profile = "heavy_truck_j1939"
data_dir = "{tmp_path / 'data'}"

[gnss]
port = "/dev/ttyUSB0"

[privacy]
allowed = {str(allowed).lower()}
""")
    return path


def test_cli_switch_is_refused_where_policy_forbids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, allowed=False)
    assert agent_main(["private", "on", "--config", str(path)]) == 1
    assert "policy does not allow" in capsys.readouterr().err
    assert read_switch(load_config(path).data_dir) is None


def test_cli_switch_on_off_auto(tmp_path: Path) -> None:
    path = _config(tmp_path, allowed=True)
    data_dir = load_config(path).data_dir
    data_dir.mkdir(parents=True)
    for mode, expected in (("on", True), ("off", False), ("auto", None)):
        assert agent_main(["private", mode, "--config", str(path)]) == 0
        assert read_switch(data_dir) is expected


def test_great_circle_matches_a_known_distance() -> None:
    # One degree of latitude on the mean sphere: 2 * pi * 6371.0088 km / 360 = 111.195 km.
    assert great_circle_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(2 * math.pi * 6_371_008.8 / 360)
