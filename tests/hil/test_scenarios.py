"""HIL scenarios end to end: the bundled ones through the real ``fleet-hil`` CLI and a real agent
process, an unmet expectation failing the run, transports that cannot run here, and scenario-file
validation naming the field at fault."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hil.scenario import ScenarioError, bundled_scenarios, load_scenario, parse_scenario
from hil.scenario_plan import Plan

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


# Tests that run an agent process run its detectors' native kernels (compiled, or the pure twins under
# FLEET_PURE_PYTHON=1, which the agent inherits). The depot scenario (the one with idle, faults,
# geofences and trips) is marked native so CI's twin run plays it too; the others exercise the rig,
# not the kernels, and run once (CI's time budget). van_obd and depot_day are played, with their
# expectations, by the demo's test (tests/hil/test_demo.py), through the cloud.
@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param("depot_idle_fault", marks=pytest.mark.native)])
def test_bundled_scenario_passes_through_the_cli(name: str, tmp_path: Path) -> None:
    out = _cli("run", name, "--json", "--workdir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    scenario = load_scenario(bundled_scenarios()[name])
    assert result["passed"] is True and result["agent_exit"] == 0
    assert len(result["expectations"]) == len(scenario.expectations) > 0
    assert all(e["passed"] for e in result["expectations"]), result["expectations"]
    kills = sum(s.action == "kill_agent" for s in scenario.steps)
    assert result["agent_starts"] == 1 + kills
    assert result["frames_sent"] > 0 and result["nmea_epochs"] > 0
    # The agent's own counters: every frame it read decoded, nothing counted as a decode error.
    assert result["counters"]["decode_errors"] == {}, result["counters"]
    assert (tmp_path / "data" / "outbox.db").is_file() and (tmp_path / "agent.log").is_file()


SHORT = """
[scenario]
name = "short_truck"
speedup = 30.0

[vehicle]
profile = "heavy_truck_j1939"
start = [52.37, 4.89]

[agent.thresholds]
idle_min_duration_s = 2.0

[[step]]
action = "ignition_on"
[[step]]
action = "idle"
minutes = 2
[[step]]
action = "ignition_off"

[[expect]]
kind = "idle_started"
count = 1

[[expect]]
kind = "dtc_appeared"
count = 0

[[expect]]
kind = "geofence_entered"
min = 1
where = { fence_id = "nowhere" }

[[expect]]
kind = "idle_started"
count = 1
where = { duration_s = { min = 600 } }
"""


def test_unmet_expectations_report_fail_and_exit_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    path.write_text(SHORT)
    out = _cli("run", str(path), "--json", "--workdir", str(tmp_path / "run"))
    assert out.returncode == 1, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["passed"] is False and result["agent_exit"] == 0
    verdicts = [(e["kind"], e["passed"], e["count"]) for e in result["expectations"]]
    assert verdicts == [
        ("idle_started", True, 1), ("dtc_appeared", True, 0),
        ("geofence_entered", False, 0), ("idle_started", False, 0),
    ]
    # A failed expectation shows what the agent did report of that kind.
    assert result["expectations"][3]["seen"][0]["duration_s"] < 600
    # The human form says FAIL per failed expectation, too.
    text = _cli("run", str(path), "--workdir", str(tmp_path / "run2"))
    assert text.returncode == 1
    marks = [line.split()[0] for line in text.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert marks == ["PASS", "PASS", "FAIL", "FAIL"], text.stdout
    assert "short_truck: FAILED (2/4)" in text.stdout


def test_run_scenario_fixture(run_scenario, tmp_path: Path) -> None:
    path = tmp_path / "short.toml"
    # Only the expectations that hold: the idle starts; it has not ended (the ignition went off with
    # the engine idling, and the agent ends an idle period only on the next samples or a 30 s gap).
    path.write_text(SHORT.split("[[expect]]")[0] + '[[expect]]\nkind = "idle_started"\ncount = 1\n'
                    '[[expect]]\nkind = "idle_ended"\ncount = 0\n')
    result = run_scenario(path)
    assert result.passed, result.as_dict()
    assert [r.count for r in result.results] == [1, 0]


def test_socketcan_without_the_interface_skips_with_the_reason(tmp_path: Path) -> None:
    out = _cli("run", "van_obd", "--json", "--can-interface", "socketcan", "--can-channel", "vcan-absent7")
    assert out.returncode == 77, out.stdout + out.stderr
    assert "no network interface 'vcan-absent7'" in json.loads(out.stdout)["skipped"]


def test_virtual_bus_is_refused_for_a_separate_agent_process() -> None:
    out = _cli("run", "van_obd", "--json", "--can-interface", "virtual")
    assert out.returncode == 2
    assert "only inside one process" in json.loads(out.stdout)["error"]


def test_hil_rig_fixture_skips_on_missing_socketcan(hil_rig) -> None:
    rig = hil_rig("van_obd", can_interface="socketcan", can_channel="vcan-absent7")
    from hil.can_link import RigSkip

    with pytest.raises(RigSkip, match="vcan-absent7"):
        rig.run()


def test_list_and_check() -> None:
    listed = _cli("list")
    assert listed.returncode == 0
    assert "depot_idle_fault" in listed.stdout and "van_obd" in listed.stdout
    checked = _cli("check", "depot_idle_fault")
    assert checked.returncode == 0
    assert "kill agent" in checked.stdout and "SPN 110 FMI 16" in checked.stdout


# -- validation -------------------------------------------------------------------------------------

BASE = tomllib.loads(SHORT)


def _mutated(path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(BASE))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("vehicle.profile", "bus_j1939", "vehicle.profile: must be one of"),
        ("scenario.speedup", 0, "scenario.speedup: must be > 0"),
        ("scenario.speedup", "fast", "scenario.speedup: must be a number"),
        ("scenario.gnss_rate_hz", 20, "scenario.gnss_rate_hz: NMEA receivers output 1 to 10 Hz"),
        ("vehicle.start", [95.0, 4.0], "vehicle.start: [lat, lon] out of range"),
        ("vehicle.vin", "SHORT", "vehicle.vin: must be 17"),
        ("agent.thresholds.idle_min_duration_s", "long", "agent.thresholds.idle_min_duration_s: must be a number"),
        ("agent.thresholds.idle_minimum", 3, "agent.thresholds.idle_minimum: not a threshold"),
        ("step.1.action", "nap", "step[1].action: must be one of"),
        ("step.1.minutes", -2, "step[1].minutes: must be > 0"),
        ("step.1.seconds", 30, "step[1]: give exactly one of minutes, seconds"),
        ("step.0.colour", "red", "step[0].colour: unknown field"),
        ("step.0", {"action": "drive", "speed_kmh": 50, "waypoints": [[52.4, "x"]]},
         "step[0].waypoints[0]: must be [lat, lon]"),
        ("step.0", {"action": "dtc", "appears": True, "code": "P0301"}, "step[0].dtc: this vehicle's profile needs"),
        ("step.0", {"action": "dtc", "appears": True, "spn": 600000, "fmi": 1}, "step[0].spn: must be an integer"),
        ("step.0", {"action": "dtc", "appears": False, "spn": 110, "fmi": 16}, "clears 110:16, which no earlier"),
        ("step.0", {"action": "idle", "minutes": 1}, "step[0] (idle): the ignition is off"),
        ("step.2", {"action": "ignition_on"}, "step[2] (ignition_on): the ignition is already on"),
        ("step.2", {"action": "kill_agent", "at": 99999}, "step[2].at: 99999.0 s is past the timeline's end"),
        ("expect.0.kind", "idle", "expect[0].kind: must be one of"),
        ("expect.0.min", 1, "expect[0].count: give count, or min and/or max"),
        ("expect.2.where", {"distance_m": {"min": 5, "max": 1}}, "expect[2].where.distance_m.max: must be >= min"),
        ("expect.2.where", {"distance_m": {"low": 5}}, "expect[2].where.distance_m.low: unknown field"),
        ("geofences", "missing.geojson", "geofences: "),
        ("geofences", {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                                   "geometry": {"type": "Line"}}]}, "geofences: "),
        ("step", _DELETE, "step: a scenario needs at least one"),
        ("cloud", {"drain_timeout_s": 0}, "cloud.drain_timeout_s: must be > 0"),
        ("cloud", {"broker": "x"}, "cloud.broker: unknown field"),
        ("step.2", {"action": "network_drop", "minutes": 10}, "step[2] (network_drop): needs a [cloud] table"),
        ("expect.0.kind", "cloud_health", "expect[0].kind: cloud_health needs a [cloud] table"),
    ],
)
def test_validation_names_the_field(path: str, value: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as err:
        Plan(parse_scenario(_mutated(path, value), tmp_path / "s.toml"))
    assert message in str(err.value)


def test_cli_check_reports_the_field_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SHORT.replace('minutes = 2', 'minutes = "two"'))
    out = _cli("check", str(path))
    assert out.returncode == 2
    assert f"{path}: step[1].minutes: must be a number" in out.stderr
    assert _cli("check", str(tmp_path / "absent.toml")).returncode == 2
    path.write_text("[scenario\n")
    out = _cli("run", str(path))
    assert out.returncode == 2 and "not valid TOML" in out.stderr


def test_plan_position_follows_the_odometer() -> None:
    scenario = load_scenario(bundled_scenarios()["depot_idle_fault"])
    plan = Plan(scenario)
    first = plan.position(0.0)
    assert (first.lat, first.lon) == scenario.start
    last = plan.position(plan.duration_s)
    assert (round(last.lat, 4), round(last.lon, 4)) == (52.397, 4.9341)
    # Moving positions only while the wheel speed says so.
    for t in range(0, int(plan.duration_s), 7):
        a, b = plan.position(t), plan.position(t + 1.0)
        moved = (a.lat, a.lon) != (b.lat, b.lon)
        assert moved == (plan.truck_state(t + 0.5).values["wheel_speed"] > 0), t
