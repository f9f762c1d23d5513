"""A deterministic heavy-truck drive cycle: the vehicle-state timeline the truck ECU simulator plays.

The cycle is a list of segments (engine off, crank, idle, accelerate, cruise, decelerate), sampled
once at 10 Hz so that integrated quantities (odometer, engine hours, fuel used) are consistent with
speed and fuel rate, then looked up by time. Fault windows add DTCs and lamps for a span of time.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.model import J1939Dtc, Lamps, LampState
from hil.truck_ecu import TruckState

STEP_S = 0.1
IDLE_RPM = 650.0


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str  # "off" | "crank" | "idle" | "accelerate" | "cruise" | "decelerate"
    duration_s: float
    target_kmh: float = 0.0


@dataclass(frozen=True, slots=True)
class FaultWindow:
    start_s: float
    end_s: float
    dtc: J1939Dtc
    amber: bool = True
    red: bool = False


#: The demo cycle: 6 minutes idling at the depot, a drive with a stop, a faulty stretch, a final idle.
DEPOT_CYCLE: tuple[Segment, ...] = (
    Segment("off", 5), Segment("crank", 3), Segment("idle", 360),
    Segment("accelerate", 60, 85), Segment("cruise", 240), Segment("decelerate", 40, 0),
    Segment("idle", 45), Segment("accelerate", 30, 50), Segment("cruise", 120),
    Segment("decelerate", 20, 0), Segment("idle", 120), Segment("off", 10),
)
# J1939-71 SPN 110 engine coolant temperature, FMI 16 (above normal, moderately severe), and
# SPN 3226 aftertreatment outlet NOx, FMI 4 (voltage below normal): two at once forces a BAM DM1.
DEPOT_FAULTS: tuple[FaultWindow, ...] = (
    FaultWindow(520, 700, J1939Dtc(spn=110, fmi=16, oc=1)),
    FaultWindow(560, 640, J1939Dtc(spn=3226, fmi=4, oc=3)),
)


class DriveCycle:
    """Callable timeline ``t -> TruckState`` for a segment list."""

    def __init__(
        self, segments: Sequence[Segment] = DEPOT_CYCLE, faults: Sequence[FaultWindow] = DEPOT_FAULTS,
        *, start_hours: float = 12_345.6, start_odometer_m: float = 812_345_000.0,
        start_fuel_l: float = 198_765.5,
    ) -> None:
        self.faults = tuple(faults)
        self.duration_s = sum(s.duration_s for s in segments)
        self._times: list[float] = []
        self._states: list[dict[str, float]] = []
        hours, odo, fuel_used, coolant, fuel_level = start_hours, start_odometer_m, start_fuel_l, 15.0, 62.0
        speed, t = 0.0, 0.0
        for seg in segments:
            steps = max(1, round(seg.duration_s / STEP_S))
            v0 = speed
            for i in range(steps):
                frac = (i + 1) / steps
                running = seg.kind != "off"
                if seg.kind in ("accelerate", "decelerate"):
                    speed = v0 + (seg.target_kmh - v0) * frac
                elif seg.kind in ("off", "crank", "idle"):
                    speed = 0.0
                rpm = 0.0 if not running else (180.0 if seg.kind == "crank" else IDLE_RPM + 14.0 * speed)
                accel = 8.0 if seg.kind == "accelerate" else 0.0
                fuel_rate = 0.0 if not running else 3.2 + 0.33 * speed + accel
                if running:
                    hours += STEP_S / 3600.0
                    coolant = min(88.0, coolant + STEP_S * 0.12)
                odo += speed / 3.6 * STEP_S
                fuel_used += fuel_rate / 3600.0 * STEP_S
                fuel_level = max(0.0, fuel_level - fuel_rate / 3600.0 * STEP_S * 0.08)
                t += STEP_S
                self._times.append(round(t, 6))
                self._states.append(
                    {
                        "engine_speed": rpm,
                        "wheel_speed": speed,
                        "fuel_rate": fuel_rate,
                        "engine_load": 0.0 if not running else min(100.0, 18.0 + 0.5 * speed + 4 * accel),
                        "accelerator_pedal": 0.0 if speed == 0 else min(100.0, 20.0 + 5 * accel),
                        "engine_hours": hours,
                        "odometer": odo,
                        "total_fuel_used": fuel_used,
                        "coolant_temp": coolant,
                        "oil_temp": coolant + 4.0,
                        "oil_pressure": 0.0 if not running else 240.0 + 1.8 * speed,
                        "coolant_level": 96.0,
                        "battery_voltage": 27.8 if running else 24.6,
                        "keyswitch_voltage": 27.6,
                        "fuel_level": fuel_level,
                        "ambient_temp": 12.5,
                        "parking_brake": 1.0 if speed == 0 and seg.kind != "decelerate" else 0.0,
                        "brake_switch": 1.0 if seg.kind == "decelerate" else 0.0,
                        "pto_state": 0.0,
                        "cruise_active": 1.0 if seg.kind == "cruise" else 0.0,
                        "fuel_economy": speed / fuel_rate if fuel_rate > 0 and speed > 0 else 0.0,
                    }
                )

    def __call__(self, t: float) -> TruckState:
        i = min(bisect.bisect_left(self._times, t), len(self._times) - 1)
        # Ignition on from t=2 s (key turned), engine cranks in the "crank" segment.
        ignition = t >= 2.0 and (self._states[i]["engine_speed"] > 0 or t < self.duration_s - 10)
        active = tuple(f for f in self.faults if f.start_s <= t < f.end_s)
        lamps = Lamps(
            protect=LampState.OFF,
            amber_warning=LampState.ON if any(f.amber for f in active) else LampState.OFF,
            red_stop=LampState.ON if any(f.red for f in active) else LampState.OFF,
            mil=LampState.OFF,
        )
        return TruckState(ignition=ignition, values=self._states[i], lamps=lamps, dtcs=tuple(f.dtc for f in active))
