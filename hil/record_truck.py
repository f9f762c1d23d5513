"""Record a candump capture of the simulated truck: ``python -m hil.record_truck OUT.log``.

Deterministic for the same arguments, so tests can regenerate a capture and compare. The engine
(source address 0x00) plays the depot drive cycle; a telematics unit at 0xF9 requests the VIN and
engine hours once per cycle, as the agent does at start.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import can

from edge_agent.model import RawFrame
from firmware_profiles import load_profile
from hil.drive_cycle import DriveCycle
from hil.truck_ecu import TruckEcu

#: 2025-11-24T12:00:00Z: captures carry a fixed, plausible epoch so replays are reproducible.
DEFAULT_START = 1_764_000_000.0
PGN_HOURS = 65253
PGN_LFC = 65257
PGN_VI = 65260


def truck_frames(cycles: int = 1, start: float = DEFAULT_START, seconds: float | None = None) -> Iterator[RawFrame]:
    """Frames of ``cycles`` back-to-back drive cycles (or only the first ``seconds``)."""
    ecu = TruckEcu(load_profile("heavy_truck_j1939"))
    cycle = DriveCycle()
    duration = cycle.duration_s if seconds is None else min(seconds, cycle.duration_s)
    requests = {3.0: PGN_VI, 3.5: PGN_HOURS, 4.0: PGN_LFC, duration - 12.0: PGN_HOURS}
    for n in range(cycles):
        yield from ecu.run(cycle, start + n * (cycle.duration_s + 1.0), duration, requests)


def write_candump(frames: Iterator[RawFrame], path: Path) -> int:
    """Write frames as a candump -L log through python-can; return how many."""
    n = 0
    with can.CanutilsLogWriter(str(path), channel="can0") as writer:
        for f in frames:
            writer.on_message_received(
                can.Message(timestamp=f.timestamp, arbitration_id=f.arbitration_id, data=f.data,
                            is_extended_id=f.is_extended, channel="can0")
            )
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cycles", type=int, default=1, help="drive cycles back to back")
    parser.add_argument("--seconds", type=float, help="only the first SECONDS of each cycle")
    args = parser.parse_args(argv)
    n = write_candump(truck_frames(args.cycles, seconds=args.seconds), args.out)
    print(f"{args.out}: {n} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
