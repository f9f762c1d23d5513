"""HIL scenario files (TOML): a vehicle, a timeline of steps, optional geofences, and expectations.

A scenario says what the simulated vehicle does and which events the agent must end up with::

    [scenario]
    name = "depot_idle_fault"
    speedup = 30.0                  # scenario seconds per wall-clock second

    [vehicle]
    profile = "heavy_truck_j1939"   # or "light_obd2"
    start = [51.5007, -0.1246]      # lat, lon where the vehicle stands before the first drive

    [agent.thresholds]              # written verbatim into the agent's [detection.thresholds]
    idle_min_duration_s = 4.0

    geofences = "fences.geojson"    # a path (relative to this file), or a [geofences] GeoJSON table

    [[step]]
    action = "ignition_on"
    [[step]]
    action = "idle"
    minutes = 5
    [[step]]
    action = "drive"
    speed_kmh = 50
    waypoints = [[51.51, -0.12], [51.52, -0.12]]
    [[step]]
    action = "dtc"
    appears = true
    spn = 110
    fmi = 16

    [[expect]]
    kind = "idle_ended"
    count = 1
    where = { duration_s = { min = 6, max = 14 } }

Sequential steps (``ignition_on``, ``idle``, ``drive``, ``engine_off``, ``ignition_off``) follow
each other; overlay steps (``dtc``, ``gnss_lost``, ``kill_agent``, ``network_drop``) happen where they
stand in the list, or at an explicit ``at`` (scenario seconds from the start). Every error names the field.

An optional ``[cloud]`` table (``drain_timeout_s = 30``) adds Mosquitto, the cloud API and an ingest
worker, and enrols the device through the real provisioning commands (``hil.cloud``): the agent
uploads over its own cuttable link (``network_drop`` cuts it for ``minutes``/``seconds``), and the
expectations are checked through the cloud's HTTP API. There, ``kind = "cloud_health"`` checks the
device's data health as the API reports it (``where = { open_gaps = 0, dropped = 0,
records_received = { min = 100 }, batches_committed = { min = 3 } }``).
"""

from __future__ import annotations

import json
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError
from firmware_profiles import ProfileError, load_profile
from hil.scenario_expect import CLOUD_HEALTH, Expectation, parse_expectation
from hil.scenario_fields import ScenarioError, duration, latlon, non_negative, only, small_int

PROFILES = ("heavy_truck_j1939", "light_obd2")
SEQUENTIAL = ("ignition_on", "idle", "drive", "engine_off", "ignition_off")
OVERLAY = ("dtc", "gnss_lost", "kill_agent", "network_drop")
ACTIONS = SEQUENTIAL + OVERLAY
OBD_STATUSES = ("stored", "pending", "permanent")
#: SAE J2012 / ISO 15031-6 DTC text form: P, C, B or U, then four hex digits.
_OBD_CODE = re.compile(r"^[PCBU][0-9A-F]{4}$")
#: SAE J1939-73: the SPN is 19 bits, the FMI 5 bits.
MAX_SPN = (1 << 19) - 1
MAX_FMI = 31
#: NMEA receivers output 1 to 10 Hz (NMEA 0183 v4.10 leaves the rate to the receiver; these are the common ones).
GNSS_RATES = (1.0, 10.0)


@dataclass(frozen=True, slots=True)
class DtcChange:
    """A trouble code appearing or clearing: J1939 (``spn``/``fmi``) or OBD-II (``code``/``status``)."""

    appears: bool
    spn: int | None = None
    fmi: int | None = None
    code: str | None = None
    status: str = "stored"

    @property
    def key(self) -> str:
        return f"{self.spn}:{self.fmi}" if self.code is None else f"{self.code}:{self.status}"


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    action: str
    #: idle / engine_off / gnss_lost: how long (scenario s); kill_agent: how long the agent stays down.
    duration_s: float = 0.0
    at: float | None = None
    speed_kmh: float = 0.0
    waypoints: tuple[tuple[float, float], ...] = ()
    dtc: DtcChange | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    source: Path
    profile: str
    speedup: float
    start: tuple[float, float] | None
    vin: str
    steps: tuple[Step, ...]
    expectations: tuple[Expectation, ...]
    thresholds: Mapping[str, float]
    #: GeoJSON document text (validated), or None.
    geofences: str | None = None
    gnss_rate_hz: float = 5.0
    #: ``[cloud]``: also run Mosquitto + cloud store + ingest worker and check against the cloud (seconds
    #: the rig waits at the end for the agent's outbox to drain), or None: check the outbox.
    cloud_drain_s: float | None = None

    @property
    def is_obd(self) -> bool:
        return self.profile == "light_obd2"


# -- sections -------------------------------------------------------------------------------------


def _step(i: int, raw: object) -> Step:
    where = f"step[{i}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a table")
    action = raw.get("action")
    if action not in ACTIONS:
        raise ScenarioError(f"{where}.action: must be one of {', '.join(ACTIONS)}, got {action!r}")
    at = non_negative(raw, "at", where) if "at" in raw else None
    common = {"action", "at"} if action in OVERLAY else {"action"}
    if action in ("ignition_on", "ignition_off"):
        only(raw, common, where)
        return Step(i, action)
    if action in ("idle", "engine_off", "gnss_lost", "network_drop"):
        only(raw, common | {"minutes", "seconds"}, where)
        return Step(i, action, duration_s=duration(raw, where), at=at)
    if action == "kill_agent":
        only(raw, common | {"down_s"}, where)
        return Step(i, action, duration_s=non_negative(raw, "down_s", where, default=0.0), at=at)
    if action == "drive":
        only(raw, common | {"speed_kmh", "waypoints"}, where)
        points = raw.get("waypoints")
        if not isinstance(points, list) or not points:
            raise ScenarioError(f"{where}.waypoints: must be a non-empty list of [lat, lon]")
        waypoints = tuple(latlon(p, f"{where}.waypoints[{k}]") for k, p in enumerate(points))
        return Step(i, action, speed_kmh=non_negative(raw, "speed_kmh", where, positive=True), waypoints=waypoints)
    # dtc
    only(raw, common | {"appears", "spn", "fmi", "code", "status"}, where)
    appears = raw.get("appears")
    if not isinstance(appears, bool):
        raise ScenarioError(f"{where}.appears: must be true (appears) or false (clears)")
    if "code" in raw:
        code = raw["code"]
        if not isinstance(code, str) or not _OBD_CODE.match(code):
            raise ScenarioError(f"{where}.code: must be an OBD-II code like \"P0301\", got {code!r}")
        status = raw.get("status", "stored")
        if status not in OBD_STATUSES:
            raise ScenarioError(f"{where}.status: must be one of {', '.join(OBD_STATUSES)}, got {status!r}")
        return Step(i, action, at=at, dtc=DtcChange(appears, code=code, status=status))
    if "spn" not in raw:
        raise ScenarioError(f"{where}: give spn and fmi (J1939) or code (OBD-II)")
    dtc = DtcChange(appears, spn=small_int(raw, "spn", where, MAX_SPN), fmi=small_int(raw, "fmi", where, MAX_FMI))
    return Step(i, action, at=at, dtc=dtc)


def _geofences(raw: object, base: Path) -> str | None:
    # The agent's own loader checks the fences, so a scenario never starts an agent that would refuse them.
    from edge_agent.detection.geojson import load_geofences

    if raw is None:
        return None
    try:
        if isinstance(raw, str):
            path = base / raw  # an absolute ``raw`` stays absolute
            load_geofences(path)
            return path.read_text(encoding="utf-8")
        if not isinstance(raw, dict):
            raise ScenarioError("geofences: must be a GeoJSON file path or an inline [geofences] GeoJSON table")
        text = json.dumps(raw)
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "inline.geojson"
            probe.write_text(text, encoding="utf-8")
            load_geofences(probe)
        return text
    except ConfigError as exc:
        raise ScenarioError(f"geofences: {exc}") from exc


def parse_scenario(data: Mapping[str, Any], source: Path) -> Scenario:
    """Validate a parsed scenario document; ``source`` anchors relative paths and names it in errors."""
    only(data, {"scenario", "vehicle", "agent", "geofences", "step", "expect", "cloud"}, "scenario file")
    head = data.get("scenario", {})
    if not isinstance(head, dict):
        raise ScenarioError("scenario: must be a table")
    only(head, {"name", "description", "speedup", "gnss_rate_hz"}, "scenario")
    name = head.get("name", source.stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError("scenario.name: must be a non-empty string")
    speedup = non_negative(head, "speedup", "scenario", positive=True, default=1.0)
    rate = non_negative(head, "gnss_rate_hz", "scenario", positive=True, default=5.0)
    if not GNSS_RATES[0] <= rate <= GNSS_RATES[1]:
        raise ScenarioError(f"scenario.gnss_rate_hz: NMEA receivers output 1 to 10 Hz, got {rate}")
    vehicle = data.get("vehicle")
    if not isinstance(vehicle, dict):
        raise ScenarioError("vehicle: required table with profile = \"heavy_truck_j1939\" or \"light_obd2\"")
    only(vehicle, {"profile", "start", "vin"}, "vehicle")
    profile = vehicle.get("profile")
    if profile not in PROFILES:
        raise ScenarioError(f"vehicle.profile: must be one of {', '.join(PROFILES)}, got {profile!r}")
    start = latlon(vehicle["start"], "vehicle.start") if "start" in vehicle else None
    vin = vehicle.get("vin", "1XKYDP9X0MJ000001" if profile == "heavy_truck_j1939" else "WF0XXXTTGXKA12345")
    if not isinstance(vin, str) or len(vin) != 17 or not vin.isascii():
        raise ScenarioError(f"vehicle.vin: must be 17 ASCII characters (ISO 3779), got {vin!r}")
    agent = data.get("agent", {})
    if not isinstance(agent, dict):
        raise ScenarioError("agent: must be a table")
    only(agent, {"thresholds"}, "agent")
    thresholds_raw = agent.get("thresholds", {})
    if not isinstance(thresholds_raw, dict):
        raise ScenarioError("agent.thresholds: must be a table of name = number")
    thresholds = {k: non_negative(thresholds_raw, k, "agent.thresholds") for k in thresholds_raw}
    try:
        known = set(load_profile(profile).thresholds) | _OPTIONAL_THRESHOLDS
    except ProfileError as exc:  # pragma: no cover - bundled profiles always load
        raise ScenarioError(f"vehicle.profile: {exc}") from exc
    for key in thresholds:
        if key not in known:
            raise ScenarioError(f"agent.thresholds.{key}: not a threshold the agent knows "
                                f"(one of {', '.join(sorted(known))})")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError("step: a scenario needs at least one [[step]]")
    steps = tuple(_step(i, s) for i, s in enumerate(raw_steps))
    _check_steps(steps, profile == "light_obd2", start)
    raw_expect = data.get("expect", [])
    if not isinstance(raw_expect, list):
        raise ScenarioError("expect: must be an array of [[expect]] tables")
    expectations = tuple(parse_expectation(i, e) for i, e in enumerate(raw_expect))
    description = head.get("description", "")
    cloud_drain_s = None
    if "cloud" in data:
        cloud = data["cloud"]
        if not isinstance(cloud, dict):
            raise ScenarioError("cloud: must be a table ([cloud], optionally with drain_timeout_s)")
        only(cloud, {"drain_timeout_s"}, "cloud")
        cloud_drain_s = non_negative(cloud, "drain_timeout_s", "cloud", positive=True, default=30.0)
    else:
        for st in steps:
            if st.action == "network_drop":
                raise ScenarioError(f"step[{st.index}] (network_drop): needs a [cloud] table (without one the "
                                    "agent has no network to lose)")
        for e in expectations:
            if e.kind == CLOUD_HEALTH:
                raise ScenarioError(f"expect[{e.index}].kind: cloud_health needs a [cloud] table")
    return Scenario(
        name=name, description=str(description), source=source, profile=profile, speedup=speedup,
        start=start, vin=vin, steps=steps, expectations=expectations, thresholds=thresholds,
        geofences=_geofences(data.get("geofences"), source.parent), gnss_rate_hz=rate, cloud_drain_s=cloud_drain_s,
    )


#: Thresholds detectors read with a default (not in the profiles' [thresholds]); see edge_agent/detection/.
_OPTIONAL_THRESHOLDS = {
    "idle_end_debounce_s", "fault_debounce_s", "trip_engine_on_rpm", "trip_min_duration_s", "trip_end_debounce_s",
    "meter_interval_s", "geofence_hysteresis_m", "geofence_min_dwell_s", "geofence_min_quality", "geofence_max_hdop",
    "idle_max_wheel_speed_kmh", "idle_max_gnss_speed_mps", "idle_fuel_rate_lph",
}


def _check_steps(steps: tuple[Step, ...], obd: bool, start: tuple[float, float] | None) -> None:
    """Consistency the parser alone cannot see: ignition order, DTC kinds, where the vehicle is."""
    ignition = False
    active: set[str] = set()
    for s in steps:
        where = f"step[{s.index}] ({s.action})"
        if s.action == "ignition_on":
            if ignition:
                raise ScenarioError(f"{where}: the ignition is already on")
            ignition = True
        elif s.action == "ignition_off":
            if not ignition:
                raise ScenarioError(f"{where}: the ignition is already off")
            ignition = False
        elif s.action in ("idle", "drive", "engine_off") and not ignition:
            raise ScenarioError(f"{where}: the ignition is off; add an ignition_on step before it")
        elif s.action == "dtc":
            assert s.dtc is not None
            if obd != (s.dtc.code is not None):
                want = "code (OBD-II, e.g. \"P0301\")" if obd else "spn and fmi (J1939)"
                raise ScenarioError(f"step[{s.index}].dtc: this vehicle's profile needs {want}")
            if s.dtc.appears:
                active.add(s.dtc.key)
            elif s.dtc.key not in active:
                raise ScenarioError(f"{where}: clears {s.dtc.key}, which no earlier step made appear")
            else:
                active.discard(s.dtc.key)
    if start is None and not any(s.action == "drive" for s in steps):
        raise ScenarioError("vehicle.start: required when no drive step gives a position")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise ``ScenarioError`` naming the file and the field."""
    src = Path(path)
    try:
        data = tomllib.loads(src.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{src}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{src}: not valid TOML: {exc}") from exc
    try:
        return parse_scenario(data, src.resolve())
    except ScenarioError as exc:
        raise ScenarioError(f"{src}: {exc}") from exc


BUNDLED = Path(__file__).resolve().parent / "scenarios"


def bundled_scenarios() -> dict[str, Path]:
    """Scenario name (file stem) -> path, for the scenarios shipped under ``hil/scenarios/``."""
    return {p.stem: p for p in sorted(BUNDLED.glob("*.toml"))}


def resolve_scenario(name_or_path: str) -> Path:
    """A bundled scenario by name, or a path to a file."""
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"{name_or_path}: no such file, and not a bundled scenario "
                            f"({', '.join(bundled) or 'none'})")
    return path
