"""The HIL rig: simulators plus a real ``fleet-agent run`` process, playing one scenario.

Time. The agent stamps CAN frames with the time python-can received them and GNSS fixes with the
NMEA time of day, and its detectors measure durations on those stamps. We keep *bus time = wall
time*: frames and NMEA sentences carry the real clock, so the agent sees nothing unusual. The
scenario's ``speedup`` acts only where the simulators generate data: scenario time runs ``speedup``
times faster than the wall clock, so a 5-minute idle at ``speedup = 30`` is 10 s of engine-running,
standing-still frames, a 3 km drive moves the GNSS position (and the odometer) 3 km in a few wall
seconds. Consequently the agent's thresholds (``[agent.thresholds]``) and the durations it reports
(``duration_s`` in events, which expectations compare) are wall/bus seconds, not scenario seconds.

Agent kills. ``kill_agent`` SIGKILLs the agent; the vehicle carries on for ``down_s`` scenario
seconds (frames and sentences sent meanwhile are lost, as they would be), then the rig pauses the
scenario clock, restarts the agent, waits until it has opened the CAN channel and written its
status, and resumes, so the agent's start-up time does not eat into the timeline.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hil
from edge_agent.model import RawFrame
from firmware_profiles import load_profile
from hil.can_link import CanLink, RigError, open_link
from hil.cloud import CloudSide
from hil.expect import ExpectationResult, StoredEvent, check, read_events
from hil.gnss_sim import Faults, GnssSimulator, Kinematics, Route, Window
from hil.obd_ecu import ObdEcu
from hil.scenario import EVENT_KINDS, Scenario
from hil.scenario_plan import Plan
from hil.truck_ecu import TruckEcu, TruckState

#: Longest wait for an agent to open its CAN channel and write its first status (imports, SQLite, ...).
START_TIMEOUT_S = 30.0
#: Longest wait for an agent to exit after SIGTERM (it flushes and writes a final status).
STOP_TIMEOUT_S = 20.0
#: Wall seconds after the timeline ends before SIGTERM, so the agent has read the last frames.
SETTLE_S = 1.0
#: The rig's loop period (wall seconds): injection bursts, OBD answers (well inside P2 = 50 ms).
TICK_S = 0.005
#: A generated frame this late (wall seconds) is dropped rather than sent: the clock was paused.
LATE_S = 0.25
BITRATE = {"heavy_truck_j1939": 250_000, "light_obd2": 500_000}  # J1939-11; ISO 15765-4 500 kbit/s


@dataclass(slots=True)
class RunResult:
    scenario: str
    results: list[ExpectationResult]
    wall_s: float
    agent_starts: int
    agent_exit: int | None
    frames_sent: int
    frames_dropped: int
    nmea_epochs: int
    counters: dict[str, object] = field(default_factory=dict)
    log_tail: str = ""
    #: where the expectations were checked: "outbox" (the agent's) or "cloud" (what the cloud stored)
    checked: str = "outbox"

    @property
    def passed(self) -> bool:
        return self.agent_exit == 0 and all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario, "passed": self.passed, "wall_s": round(self.wall_s, 2),
            "agent_starts": self.agent_starts, "agent_exit": self.agent_exit, "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped, "nmea_epochs": self.nmea_epochs,
            "expectations": [r.as_dict() for r in self.results], "counters": self.counters,
            "checked": self.checked,
        }


class _PlannedRoute(Route):
    """A ``Route`` for ``GnssSimulator`` whose ``t`` is wall seconds, mapped to the scenario's position."""

    def __init__(self, position: Callable[[float], Kinematics], duration_s: float) -> None:
        super().__init__([(0.0, 0.0)], 1.0)
        self._position = position
        self.duration_s = duration_s

    def at(self, t: float) -> Kinematics:
        return self._position(t)


class HilRig:
    """Runs one scenario in ``workdir`` (agent.toml, data/, agent.log stay there for inspection)."""

    def __init__(self, scenario: Scenario, workdir: Path, *, can_interface: str = "slcan",
                 can_channel: str | None = None, echo: Callable[[str], None] | None = None) -> None:
        self.scenario = scenario
        self.plan = Plan(scenario)
        self.workdir = workdir
        self.data = workdir / "data"
        self.config = workdir / "agent.toml"
        self.log = workdir / "agent.log"
        self.can_interface = can_interface
        self.can_channel = can_channel
        self._echo = echo or (lambda _msg: None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.agent_starts = 0
        self._t0 = 0.0
        self._paused = 0.0

    # -- time -------------------------------------------------------------------------------------

    def scenario_time(self, wall_offset: float) -> float:
        """Scenario seconds at ``wall_offset`` seconds after the rig's start (pauses excluded)."""
        return max(wall_offset - self._paused, 0.0) * self.scenario.speedup

    # -- the agent --------------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return "hil-" + self.scenario.name

    def write_config(self, link: CanLink, gnss_port: str, uplink: list[str] | None = None) -> None:
        s = self.scenario
        q = json.dumps  # a JSON string is a valid TOML basic string
        lines = [
            "[agent]", f"device_id = {q(self.device_id)}", f"profile = {q(s.profile)}",
            f"data_dir = {q(str(self.data))}", "status_interval_s = 0.2", "",
            "[can]", f"interface = {q(link.interface)}", f"channel = {q(link.channel)}",
            f"bitrate = {BITRATE[s.profile]}",
        ]
        if link.options:
            lines.append("options = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in link.options.items()) + " }")
        lines += ["", "[gnss]", f"port = {q(gnss_port)}", "baudrate = 9600", "",
                  "[outbox]", "quota_mb = 64", "flush_interval_s = 0.2", "", "[detection]"]
        if s.geofences is not None:
            fences = self.workdir / "geofences.geojson"
            fences.write_text(s.geofences, encoding="utf-8")
            lines.append(f"geofences = {q(str(fences))}")
        lines.append("[detection.thresholds]")
        lines += [f"{k} = {v!r}" for k, v in s.thresholds.items()]
        if uplink:
            lines += ["", *uplink]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @staticmethod
    def child_env() -> dict[str, str]:
        """Our environment, with this checkout importable (the rig also runs from a source tree)."""
        env = dict(os.environ)
        root = str(Path(hil.__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def _start_agent(self, link: CanLink) -> None:
        link.reset_ready()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=self.child_env(),
            )
        self.agent_starts += 1
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RigError(f"fleet-agent exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            if link.ready() and self.status().get("pid") == self.proc.pid:
                self._echo(f"agent started (pid {self.proc.pid})")
                return
            time.sleep(0.02)
        raise RigError(f"fleet-agent did not open its CAN channel and write status in {START_TIMEOUT_S} s:\n"
                       f"{self.log_tail()}")

    def status(self) -> dict[str, object]:
        try:
            data = json.loads((self.data / "status.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _kill_agent(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._echo(f"agent SIGKILLed (pid {self.proc.pid})")

    def _stop_agent(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if (self.data / "outbox.db").exists():
            # Expectations count events: an earlier run's would be counted too.
            raise RigError(f"{self.data}: holds an outbox from an earlier run; give an empty --workdir")
        self.data.mkdir(exist_ok=True)
        link = open_link(self.can_interface, self.can_channel)
        gnss_master, gnss_slave = os.openpty()
        os.set_blocking(gnss_master, False)  # a stalled reader must never stall the rig
        started = time.monotonic()
        exit_code: int | None = None
        player: _Player | None = None
        cloud = CloudSide(self.workdir, self.device_id, self.child_env()) if self.scenario.cloud_drain_s else None
        events: list[StoredEvent] = []
        try:
            if cloud is not None:
                cloud.start()
                self._echo(f"cloud: mosquitto on 127.0.0.1:{cloud.port}, store {cloud.db}, worker started")
            self.write_config(link, os.ttyname(gnss_slave), cloud.uplink_toml() if cloud else None)
            self._start_agent(link)
            player = _Player(self, link, gnss_master)
            try:
                player.play()
            finally:
                player.stop()
            time.sleep(SETTLE_S)
            if cloud is not None:
                self._wait_drained(self.scenario.cloud_drain_s or 0.0)
            exit_code = self._stop_agent()
            self._echo(f"agent stopped (exit {exit_code})")
            if cloud is not None:
                events = cloud.events(EVENT_KINDS)
        finally:
            if exit_code is None:
                self._stop_agent()
            if cloud is not None:
                cloud.close()
            link.close()
            for fd in (gnss_master, gnss_slave):
                os.close(fd)
        if cloud is None:
            events = read_events(self.data / "outbox.db")
        counters = self.status().get("counters", {})
        return RunResult(
            self.scenario.name, check(self.scenario.expectations, events), time.monotonic() - started,
            self.agent_starts, exit_code, player.frames_sent if player else 0, player.frames_dropped if player else 0,
            player.epochs if player else 0, counters if isinstance(counters, dict) else {},
            "" if exit_code == 0 else self.log_tail(), "cloud" if cloud is not None else "outbox",
        )

    def _wait_drained(self, timeout_s: float) -> None:
        """Until the agent's outbox holds no event records: the cloud acked (committed) every one."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            outbox = self.status().get("outbox", {})
            by_kind = outbox.get("by_kind", {}) if isinstance(outbox, dict) else {}
            if isinstance(by_kind, dict) and not any(by_kind.get(k) for k in EVENT_KINDS):
                self._echo("cloud: every event record acked")
                return
            time.sleep(0.1)
        self._echo(f"cloud: events still in the outbox after {timeout_s} s; checking what the cloud has")


class _Stopped(Exception):
    """Ends the ECU thread from inside ``TruckEcu.run``'s timeline callback."""


class _Player:
    """Plays the plan: ECU frames, OBD answers, NMEA epochs and agent kills, on the rig's clock."""

    def __init__(self, rig: HilRig, link: CanLink, gnss_fd: int) -> None:
        self.rig, self.link, self.gnss_fd = rig, link, gnss_fd
        self.plan = rig.plan
        self.frames_sent = self.frames_dropped = self.epochs = 0
        s = rig.scenario
        profile = load_profile(s.profile)
        self.obd = ObdEcu(profile, 0, vin=s.vin, state=self.plan.obd_state(0.0)) if s.is_obd else None
        self.truck = None if s.is_obd else TruckEcu(profile, vin=s.vin)
        self.faults = Faults()
        wall_duration = self.plan.duration_s / s.speedup
        route = _PlannedRoute(lambda t: self.plan.position(rig.scenario_time(t)), 10 * wall_duration + 3600)
        self.gnss = GnssSimulator(route, 0.0, faults=self.faults)
        self._frames: queue.SimpleQueue[RawFrame] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ecu_thread = threading.Thread(target=self._ecu_loop, name="hil-truck-ecu", daemon=True)

    def play(self) -> None:
        rig, plan = self.rig, self.plan
        rig._t0 = t0 = time.time()
        self.gnss.start_utc = t0  # NMEA time of day = wall clock (bus time = wall time)
        if self.truck is not None:
            self._ecu_thread.start()
        kills = list(plan.kills)
        period = 1.0 / rig.scenario.gnss_rate_hz
        next_epoch = 0.0
        down_until: float | None = None
        while True:
            now = time.time()
            offset = now - t0
            t = rig.scenario_time(offset)
            if t >= plan.duration_s:
                return
            if down_until is None and kills and t >= kills[0].at:
                rig._echo(f"t={t:.0f} s: kill_agent (step {kills[0].step})")
                rig._kill_agent()
                down_until = now + kills.pop(0).down_s / rig.scenario.speedup
            elif down_until is not None and now >= down_until:
                pause = time.time()
                rig._start_agent(self.link)
                rig._paused += time.time() - pause
                down_until = None
                continue
            up = down_until is None
            if rig.proc is not None and up and rig.proc.poll() is not None:
                raise RigError(f"fleet-agent exited with {rig.proc.returncode} mid-scenario:\n{rig.log_tail()}")
            if self.truck is not None:
                burst: list[RawFrame] = []
                while not self._frames.empty():
                    f = self._frames.get_nowait()
                    if up and now - f.timestamp <= LATE_S:
                        burst.append(f)
                    else:
                        self.frames_dropped += 1
                self._send(burst)
            if self.obd is not None:
                self._serve_obd(t, now, up)
            if offset >= next_epoch:
                self.faults.lost_fix[:] = [Window(-1e18, 1e18)] if plan.gnss_lost_at(t) else []
                if up:
                    self._write_nmea(offset)
                next_epoch += period
            time.sleep(TICK_S)

    def _ecu_loop(self) -> None:
        """The truck ECU on its own thread, paced by the wall clock: each frame is made when it is due.

        ``TruckEcu.run`` asks the timeline for the state at every scheduled transmission; we block
        there until that instant, so the state is the scenario's *at* that moment (pauses included)
        and an ECU that is silent (ignition off) simply sleeps instead of running ahead.
        """
        assert self.truck is not None
        rig = self.rig

        def timeline(off: float) -> TruckState:
            delay = rig._t0 + off - time.time()
            if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                raise _Stopped
            return self.plan.truck_state(rig.scenario_time(off))

        try:
            for frame in self.truck.run(timeline, rig._t0, math.inf):
                self._frames.put(frame)
        except _Stopped:
            return

    def stop(self) -> None:
        self._stop.set()
        if self._ecu_thread.is_alive():
            self._ecu_thread.join(timeout=2.0)

    def _send(self, frames: list[RawFrame]) -> None:
        if frames:
            self.link.inject(frames)
            self.frames_sent += len(frames)

    def _serve_obd(self, t: float, now: float, up: bool) -> None:
        assert self.obd is not None
        self.obd.state = self.plan.obd_state(t)
        for frame in self.link.received():
            self.obd.on_frame(frame)
        answers = self.obd.tick(now)
        if up:
            self._send(answers)
        else:
            self.frames_dropped += len(answers)

    def _write_nmea(self, offset: float) -> None:
        data = "".join(s + "\r\n" for s in self.gnss.sentences(offset)).encode("ascii")
        try:
            os.write(self.gnss_fd, data)
            self.epochs += 1
        except BlockingIOError:
            pass  # the agent is not reading (restarting); a receiver's UART would drop these too
