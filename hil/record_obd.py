"""Record a candump capture of our OBD-II poller talking to simulated ECUs: ``python -m hil.record_obd OUT.log``.

A delivery van on the ``light_obd2`` profile: engine ECU (0x7E8, every profile PID, DTCs, VIN) and
transmission ECU (0x7E9, vehicle speed only). The drive: ignition off (the poller's discovery goes
unanswered and it falls back to slow probes), key on with the engine stopped (answers, rpm 0: no
polling), engine start and idle, a drive with changing speed and rpm, a misfire (P0301 stored) and a
catalyst fault (P0420 pending) appearing mid-drive, idle, engine off. Time is simulated in 1 ms steps
on a fixed epoch, so the same arguments always give the same file (tests regenerate and compare).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import can

from edge_agent.decoding.obd.isotp import is_request_id
from edge_agent.decoding.obd.poller import ObdPoller
from edge_agent.model import RawFrame
from firmware_profiles import Profile, load_profile
from hil.obd_ecu import ObdEcu, ObdVehicleState, simulate

#: 2025-11-24T13:00:00Z: a fixed, plausible epoch so replays are reproducible.
DEFAULT_START = 1_764_003_600.0
DEFAULT_SECONDS = 150.0
STEP_S = 0.001
VIN = "WF0XXXTTGXKA12345"
#: How often the vehicle state (speed, rpm, odometer, ...) is recomputed in simulated time.
STATE_EVERY_S = 0.1

KEY_ON, ENGINE_START, DRIVE_START, CRUISE, BRAKE, STOPPED, ENGINE_OFF, KEY_OFF, FAULTS = (
    5.0, 9.0, 40.0, 60.0, 95.0, 110.0, 135.0, 137.0, 65.0,
)


def van_speed(t: float) -> float:
    """Vehicle speed (km/h) at ``t`` seconds into the run."""
    if t < DRIVE_START or t >= STOPPED:
        return 0.0
    if t < CRUISE:
        return 50.0 * (t - DRIVE_START) / (CRUISE - DRIVE_START)
    if t < BRAKE:
        return 50.0 + 10.0 * math.sin((t - CRUISE) / 5.0)
    return 50.0 * (STOPPED - t) / (STOPPED - BRAKE)


def van_state(t: float, odometer_m: float) -> ObdVehicleState:
    """The whole vehicle state at ``t`` (odometer integrated by the caller)."""
    ignition = KEY_ON <= t < KEY_OFF
    running = ENGINE_START <= t < ENGINE_OFF
    speed = van_speed(t)
    values = {
        "engine_speed": round(750.0 + 40.0 * speed, 2) if running else 0.0,
        "wheel_speed": round(speed),
        "coolant_temp": round(20.0 + min(70.0, max(0.0, t - ENGINE_START) * 1.5)),
        "fuel_level": round(62.0 - 0.01 * max(0.0, t - ENGINE_START), 1),
        "engine_run_time": round(t - ENGINE_START) if running else 0.0,
        "odometer": odometer_m,
        "fuel_rate": round(0.8 + 0.12 * speed, 2) if running else 0.0,
        "battery_voltage": 14.2 if running else 12.4,
        "engine_load": round(20.0 + 0.8 * speed, 1) if running else 0.0,
        "throttle_position": round(15.0 + 0.5 * speed, 1) if running else 0.0,
        "intake_air_temp": 25.0,
        "mass_air_flow": round(3.0 + 0.4 * speed, 2) if running else 0.0,
        "ambient_temp": 18.0,
    }
    faults = running and t >= FAULTS
    return ObdVehicleState(
        ignition=ignition,
        values=values,
        stored=("P0301",) if faults else (),
        pending=("P0420",) if faults else (),
    )


def van_frames(
    seconds: float = DEFAULT_SECONDS, start: float = DEFAULT_START, extended: bool = False
) -> Iterator[RawFrame]:
    """Every frame on the bus, in time order: poller requests and flow control, ECU answers."""
    profile = load_profile("light_obd2")
    engine = ObdEcu(profile, 0, extended=extended, vin=VIN, state=van_state(0.0, 0.0))
    gearbox = ObdEcu(profile, 1, extended=extended, pids={0x0D}, state=van_state(0.0, 0.0))
    poller = ObdPoller(with_request_id(profile, 0x18DB33F1) if extended else profile)
    odometer_m = 48_213_400.0  # a van with 48,213 km on it
    every = round(STATE_EVERY_S / STEP_S)

    def on_step(i: int, t: float) -> None:
        nonlocal odometer_m
        if i % every:
            return
        odometer_m += van_speed(t) / 3.6 * STATE_EVERY_S
        state = van_state(t, round(odometer_m, -2))
        engine.state = state
        # The gearbox reports speed and has no faults of its own in this run.
        gearbox.state = replace(state, stored=(), pending=())

    yield from simulate(poller, [engine, gearbox], start, seconds, STEP_S, on_step)


def with_request_id(profile: Profile, request_id: int) -> Profile:
    """The same profile addressed with another functional id (0x18DB33F1: 29-bit, ISO 15765-4)."""
    if profile.obd is None:
        raise ValueError(f"profile {profile.name} is not an OBD-II profile")
    return replace(profile, obd=replace(profile.obd, request_id=request_id))


def write_candump(frames: Iterator[RawFrame], path: Path) -> int:
    """Write frames as a candump -L log through python-can; return how many.

    The capture is the telematics unit's view: its requests and flow control are marked ``T``
    (transmitted), the ECUs' answers ``R``.
    """
    n = 0
    with can.CanutilsLogWriter(str(path), channel="can0") as writer:
        for f in frames:
            writer.on_message_received(
                can.Message(timestamp=f.timestamp, arbitration_id=f.arbitration_id, data=f.data,
                            is_extended_id=f.is_extended, channel="can0",
                            is_rx=not is_request_id(f.arbitration_id, f.is_extended))
            )
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="simulated run length")
    parser.add_argument("--extended", action="store_true", help="29-bit addressing (0x18DB33F1 / 0x18DAF1xx)")
    args = parser.parse_args(argv)
    n = write_candump(van_frames(args.seconds, extended=args.extended), args.out)
    print(f"{args.out}: {n} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
