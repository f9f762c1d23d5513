"""A scenario compiled to what the simulators play: vehicle state and position by scenario time.

Sequential steps become ``hil.drive_cycle`` segments (so odometer, engine hours and fuel used are
integrated consistently with speed and fuel rate); overlay steps become windows (trouble codes, lost
GNSS fix) and agent kills at fixed scenario times. The vehicle's position is the distance the
odometer says it has driven, measured along the polyline of every drive's waypoints, so the GNSS
track and the wheel speed on the bus always agree.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, replace

from edge_agent.model import J1939Dtc, Lamps, LampState
from hil.drive_cycle import DriveCycle, FaultWindow, Segment
from hil.gnss_sim import Kinematics, bearing_deg, distance_m
from hil.obd_ecu import ObdVehicleState
from hil.scenario import Scenario, ScenarioError, Step
from hil.truck_ecu import TruckState

#: Scenario seconds of bus silence before the key is turned (the agent sees a vehicle wake up).
LEAD_IN_S = 2.0
#: ``ignition_on``: the starter turns the engine this long (scenario seconds) before it idles.
CRANK_S = 3.0
#: Scenario seconds after the last step, so the final state reaches the agent before it is stopped.
TAIL_S = 2.0
#: Acceleration and braking of a loaded vehicle (m/s^2): ~14 s from 0 to 50 km/h.
ACCEL_MPS2 = 1.0
#: Where the drive cycle starts counting; the plan measures distance from here.
START_ODOMETER_M = 812_345_000.0


@dataclass(frozen=True, slots=True)
class Kill:
    at: float
    down_s: float
    step: int


@dataclass(frozen=True, slots=True)
class CodeWindow:
    start: float
    end: float
    spn: int | None
    fmi: int | None
    code: str | None
    status: str


class Plan:
    """Scenario time ``t`` (seconds from the start) -> vehicle state, position, GNSS fault."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        segments: list[Segment] = [Segment("off", LEAD_IN_S)]
        cursor = LEAD_IN_S
        self.ignition: list[tuple[float, float]] = []
        self.gnss_lost: list[tuple[float, float]] = []
        self.network_drops: list[tuple[float, float]] = []
        self.kills: list[Kill] = []
        opened: dict[str, tuple[float, Step]] = {}
        self.codes: list[CodeWindow] = []
        path: list[tuple[float, float]] = [scenario.start] if scenario.start else []
        ign_on: float | None = None
        for step in scenario.steps:
            at = step.at if step.at is not None else cursor
            if step.action == "ignition_on":
                ign_on = cursor
                segments.append(Segment("crank", CRANK_S))
                cursor += CRANK_S
            elif step.action == "ignition_off":
                assert ign_on is not None
                self.ignition.append((ign_on, cursor))
                ign_on = None
                segments.append(Segment("off", 1.0))
                cursor += 1.0
            elif step.action == "idle":
                segments.append(Segment("idle", step.duration_s))
                cursor += step.duration_s
            elif step.action == "engine_off":
                segments.append(Segment("off", step.duration_s))
                cursor += step.duration_s
            elif step.action == "drive":
                if not path:
                    path.append(step.waypoints[0])
                legs = [path[-1], *step.waypoints]
                length = sum(distance_m(a, b) for a, b in itertools.pairwise(legs))
                path.extend(step.waypoints)
                drive = _drive_segments(length, step.speed_kmh)
                segments.extend(drive)
                cursor += sum(s.duration_s for s in drive)
            elif step.action == "gnss_lost":
                self.gnss_lost.append((at, at + step.duration_s))
            elif step.action == "network_drop":
                self.network_drops.append((at, at + step.duration_s))
            elif step.action == "kill_agent":
                self.kills.append(Kill(at, step.duration_s, step.index))
            elif step.action == "dtc":
                assert step.dtc is not None
                if step.dtc.appears:
                    opened[step.dtc.key] = (at, step)
                else:
                    t0, first = opened.pop(step.dtc.key)
                    if at < t0:
                        raise ScenarioError(f"step[{step.index}].at: clears before step[{first.index}] appears")
                    self._code(t0, at, first)
        end = cursor + TAIL_S
        for t0, first in opened.values():
            self._code(t0, math.inf, first)
        if ign_on is not None:
            self.ignition.append((ign_on, math.inf))
        for step in scenario.steps:
            if step.at is not None and step.at > end:
                raise ScenarioError(f"step[{step.index}].at: {step.at} s is past the timeline's end ({end:.1f} s)")
        segments.append(Segment("off", TAIL_S))
        self.duration_s = end
        self.kills.sort(key=lambda k: k.at)
        faults = [FaultWindow(c.start, c.end, J1939Dtc(c.spn, c.fmi, oc=1)) for c in self.codes
                  if c.spn is not None and c.fmi is not None]
        self.cycle = DriveCycle(segments, faults, start_odometer_m=START_ODOMETER_M)
        self._path = path
        self._cum = [0.0]
        for a, b in itertools.pairwise(path):
            self._cum.append(self._cum[-1] + distance_m(a, b))

    def _code(self, start: float, end: float, step: Step) -> None:
        d = step.dtc
        assert d is not None
        self.codes.append(CodeWindow(start, end, d.spn, d.fmi, d.code, d.status))

    def ignition_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.ignition)

    def truck_state(self, t: float) -> TruckState:
        """The J1939 truck at scenario time ``t``: drive-cycle values, our ignition, DTCs and lamps."""
        state = self.cycle(t)
        active = [f for f in self.cycle.faults if f.start_s <= t < f.end_s]
        lamps = Lamps(LampState.OFF, LampState.ON if active else LampState.OFF, LampState.OFF, LampState.OFF)
        return replace(state, ignition=self.ignition_at(t), lamps=lamps)

    def obd_state(self, t: float) -> ObdVehicleState:
        """The OBD-II van at scenario time ``t``, in the light_obd2 profile's signal names."""
        v = self.cycle(t).values
        running = v["engine_speed"] > 0
        speed = v["wheel_speed"]
        values = {
            "engine_speed": v["engine_speed"], "wheel_speed": round(speed), "coolant_temp": round(v["coolant_temp"]),
            "fuel_level": round(v["fuel_level"], 1), "odometer": round(v["odometer"], -2),
            "engine_run_time": round((v["engine_hours"] - self.cycle(0.0).values["engine_hours"]) * 3600.0),
            "fuel_rate": round(v["fuel_rate"] * 0.25, 2),  # a van burns about a quarter of a truck's fuel
            "battery_voltage": 14.2 if running else 12.4, "engine_load": v["engine_load"],
            "throttle_position": round(15.0 + 0.5 * speed, 1) if running else 0.0, "intake_air_temp": 25.0,
            "mass_air_flow": round(3.0 + 0.4 * speed, 2) if running else 0.0, "ambient_temp": 18.0,
        }
        codes: dict[str, list[str]] = {s: [] for s in ("stored", "pending", "permanent")}
        for c in self.codes:
            if c.code is not None and c.start <= t < c.end:
                codes[c.status].append(c.code)
        return ObdVehicleState(ignition=self.ignition_at(t), values=values, stored=tuple(codes["stored"]),
                               pending=tuple(codes["pending"]), permanent=tuple(codes["permanent"]))

    def gnss_lost_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.gnss_lost)

    def network_down_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.network_drops)

    def position(self, t: float) -> Kinematics:
        """Where the vehicle is: the odometer's distance along the route's polyline."""
        values = self.cycle(t).values
        speed = values["wheel_speed"] / 3.6
        if len(self._path) == 1:
            return Kinematics(self._path[0][0], self._path[0][1], speed, 0.0)
        d = min(max(values["odometer"] - START_ODOMETER_M, 0.0), self._cum[-1])
        i = min(max(bisect.bisect_right(self._cum, d) - 1, 0), len(self._path) - 2)
        a, b = self._path[i], self._path[i + 1]
        span = self._cum[i + 1] - self._cum[i]
        f = (d - self._cum[i]) / span if span > 0 else 0.0
        return Kinematics(a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), speed, bearing_deg(a, b))


def _drive_segments(length_m: float, speed_kmh: float) -> list[Segment]:
    """Accelerate, cruise and brake so that exactly ``length_m`` is covered (triangular when short)."""
    v = speed_kmh / 3.6
    ramp = v / ACCEL_MPS2
    cruise = length_m / v - ramp  # the two ramps together cover v * ramp
    if cruise < 0:
        v = math.sqrt(length_m * ACCEL_MPS2)  # never reach the set speed: accelerate, then brake
        ramp, cruise = v / ACCEL_MPS2, 0.0
    out = [Segment("accelerate", ramp, v * 3.6)]
    if cruise > 0:
        out.append(Segment("cruise", cruise))
    out.append(Segment("decelerate", ramp, 0.0))
    return out
