"""Steady-state benchmark (issue 3, benchmark 2): the daemon on a busy bus, as on the vehicle.

    python -m bench.bench_steady [--seconds 60] [--rate 2000] [--gnss-hz 10]

Starts a real ``fleet-agent run`` process whose CAN adapter is an slcan emulator on a pty and whose
GNSS receiver is the simulator on a second pty, feeds it ``--rate`` frames/s of the simulated
truck's J1939 traffic (a busy 500 kbit/s bus) and ``--gnss-hz`` NMEA epochs for ``--seconds``, and
reads the daemon's CPU time and memory from ``/proc``. Prints a table.

Target (issue 3): under 5 % of one core and under 60 MB RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.model import RawFrame
from hil.gnss_sim import GnssSimulator, PtyGnss, Route
from hil.record_truck import truck_frames
from hil.slcan_adapter import SlcanEmulator

ROOT = Path(__file__).resolve().parents[1]
#: Frames are written in ticks of this length (a real bus delivers them evenly; 20 ms is close).
TICK_S = 0.02
WARMUP_S = 5.0

CONFIG = """
[agent]
device_id = "bench-steady"
profile = "heavy_truck_j1939"
data_dir = "{data}"
status_interval_s = 1.0

[can]
interface = "slcan"
channel = "{can}"
bitrate = 500000
options = {{ sleep_after_open = 0 }}

[gnss]
port = "{gnss}"
baudrate = 115200

[outbox]
quota_mb = 64
"""


class UdpFeeder:
    """Frames onto python-can's ``udp_multicast`` bus (a private group per run), for the agent to read."""

    def __init__(self) -> None:
        import random

        import can

        self.port = f"239.74.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
        self._bus = can.Bus(interface="udp_multicast", channel=self.port)
        self._message = can.Message
        self.is_open = True  # the agent opens its own socket; there is nothing to wait for

    def inject(self, *frames: RawFrame) -> None:
        for f in frames:
            self._bus.send(self._message(arbitration_id=f.arbitration_id, data=f.data, is_extended_id=f.is_extended))

    def close(self) -> None:
        self._bus.shutdown()


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5) (12 and 13 after the ")" split).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mem_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=2000, help="CAN frames per second")
    parser.add_argument("--gnss-hz", type=float, default=10.0)
    parser.add_argument(
        "--transport", choices=("slcan", "udp_multicast"), default="slcan",
        help="slcan: a USB-serial adapter emulated on a pty (python-can reads it a byte at a time); "
        "udp_multicast: python-can's cross-process virtual bus (needs msgpack), closer to SocketCAN's cost",
    )
    parser.add_argument(
        "--dev-venv", dest="vehicle_image", action="store_false",
        help="let the agent import NumPy if this venv has it (the vehicle install has not)",
    )
    args = parser.parse_args(argv)

    frames = list(itertools.islice(truck_frames(cycles=3), int(args.rate * (args.seconds + WARMUP_S + 2))))
    per_tick = max(1, round(args.rate * TICK_S))
    can = SlcanEmulator() if args.transport == "slcan" else UdpFeeder()
    route = Route([(45.746, 4.842), (45.748, 4.844), (45.750, 4.850), (45.760, 4.860)], speed_mps=10.0)
    gnss = PtyGnss(GnssSimulator(route, time.time()), rate_hz=args.gnss_hz)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        config = Path(tmp) / "agent.toml"
        text = CONFIG.format(data=data, can=can.port, gnss=gnss.port)
        if args.transport == "udp_multicast":
            text = text.replace('interface = "slcan"', 'interface = "udp_multicast"').replace(
                "options = { sleep_after_open = 0 }\n", "")
        config.write_text(text)
        log = open(Path(tmp) / "agent.log", "wb")  # noqa: SIM115 - the child's log, closed below
        # FLEET_BENCH_PROFILE=out.prof runs the agent under cProfile (written when it stops on SIGTERM).
        profile = os.environ.get("FLEET_BENCH_PROFILE")
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        if args.vehicle_image:
            # The vehicle installs the base dependencies only, which do not include NumPy; this
            # development venv has it (for shapely), and sqlite-utils imports it when present.
            command = [sys.executable, "-c", "import sys; sys.modules['numpy'] = None; "
                       "from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"]
        else:
            command = [sys.executable, *prefix, "-m", "edge_agent.cli"]
        proc = subprocess.Popen([*command, "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not can.is_open and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # the agent's imports and sockets, before the first frame
            if not can.is_open:
                raise SystemExit("the agent did not open the CAN adapter: " + (Path(tmp) / "agent.log").read_text())
            gnss.start()
            sent = 0
            t0 = time.monotonic()
            measuring = False
            cpu0 = wall0 = 0.0
            sent0 = 0
            tick = 0
            while True:
                now = time.monotonic()
                if not measuring and now - t0 >= WARMUP_S:
                    measuring, cpu0, wall0, sent0 = True, _proc_cpu_s(proc.pid), now, sent
                if measuring and now - wall0 >= args.seconds:
                    break
                chunk = frames[sent : sent + per_tick]
                if not chunk:
                    break
                can.inject(*chunk)
                sent += len(chunk)
                tick += 1
                delay = t0 + tick * TICK_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            wall = time.monotonic() - wall0
            cpu = _proc_cpu_s(proc.pid) - cpu0
            rss, hwm = _proc_mem_mb(proc.pid)
            time.sleep(2.0)  # let the last status file land
            status = json.loads((data / "status.json").read_text())
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
            log.close()
            gnss.close()
            can.close()
    counters = status["counters"]
    rows = [
        ("frames injected / read by agent", f"{sent} / {counters.get('frames', 0)}"),
        ("frame rate offered (measured window)", f"{(sent - sent0) / wall:.0f} frames/s"),
        ("GNSS epochs / fixes", f"{gnss.epochs} / {counters.get('fixes', 0)}"),
        ("decode errors", json.dumps(counters.get("decode_errors", {}))),
        ("records in outbox", str(status["outbox"]["depth"])),
        ("agent CPU over window", f"{cpu:.2f} s in {wall:.1f} s = {100 * cpu / wall:.2f} % of one core"),
        ("agent RSS now / peak", f"{rss:.1f} MB / {hwm:.1f} MB"),
        ("agent exit code after SIGTERM", str(rc)),
        ("agent modules", "vehicle install (NumPy absent)" if args.vehicle_image else "this dev venv"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
