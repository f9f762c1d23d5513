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
status, and resumes, so the agent's start-up time does not eat into the timeline. A stall of the
rig's own loop (a loaded machine) holds the scenario clock the same way (``hil.player.StallHold``).

The cloud. With ``[cloud]`` (or a ``Cloud`` handed in, as the demo does for several rigs) the device
is enrolled through the real provisioning commands (``hil.cloud``), the agent uploads over mutual TLS
through its own ``NetworkLink`` (which ``network_drop`` cuts), and at the end, once the outbox has
drained, the expectations are checked on what the cloud's API reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hil
from hil.can_link import CanLink, RigError, open_link
from hil.cloud import Cloud
from hil.expect import ExpectationResult, StoredEvent, check, read_events
from hil.netproxy import NetworkLink
from hil.player import Player
from hil.scenario import Scenario
from hil.scenario_expect import CLOUD_HEALTH, EVENT_KINDS
from hil.scenario_plan import Plan

#: Longest wait for an agent to open its CAN channel and write its first status (imports, SQLite, ...).
START_TIMEOUT_S = 30.0
#: Longest wait for an agent to exit after SIGTERM (it flushes and writes a final status).
STOP_TIMEOUT_S = 20.0
#: Wall seconds after the timeline ends before SIGTERM, so the agent has read the last frames.
SETTLE_S = 1.0
#: Wall seconds the agent's outbox gets to drain into the cloud when the scenario does not say.
DEFAULT_DRAIN_S = 30.0
#: The agent's uplink timings under a HIL run: batches leave while the scenario runs, and a restored
#: link is found within a second (the defaults suit a vehicle, where minutes do not matter).
UPLINK_TIMINGS = {"linger_s": 0.2, "ack_timeout_s": 5.0, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0}
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
    #: where the expectations were checked: "outbox" (the agent's) or "cloud" (what the cloud's API reports)
    checked: str = "outbox"
    device_id: str = ""
    #: uplink connections the network link reset when the scenario dropped it
    network_resets: int = 0

    @property
    def passed(self) -> bool:
        return self.agent_exit == 0 and all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario, "passed": self.passed, "wall_s": round(self.wall_s, 2),
            "agent_starts": self.agent_starts, "agent_exit": self.agent_exit, "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped, "nmea_epochs": self.nmea_epochs,
            "expectations": [r.as_dict() for r in self.results], "counters": self.counters,
            "checked": self.checked, "device_id": self.device_id, "network_resets": self.network_resets,
        }


class HilRig:
    """Runs one scenario in ``workdir`` (agent.toml, data/, agent.log stay there for inspection)."""

    def __init__(self, scenario: Scenario, workdir: Path, *, can_interface: str = "slcan",
                 can_channel: str | None = None, echo: Callable[[str], None] | None = None,
                 cloud: Cloud | None = None, device_id: str | None = None) -> None:
        self.scenario = scenario
        self.cloud = cloud
        self._device_id = device_id or "hil-" + scenario.name
        #: the agent's cuttable path to the broker (cloud runs only)
        self.network: NetworkLink | None = None
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
        return self._device_id

    @property
    def uses_cloud(self) -> bool:
        return self.cloud is not None or self.scenario.cloud_drain_s is not None

    def write_config(self, link: CanLink, gnss_port: str, uplink: Mapping[str, Any] | None = None) -> None:
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
            lines += ["", "[uplink]", *(f"{k} = {json.dumps(v)}" for k, v in uplink.items())]
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

    def abort(self) -> None:
        """Stop the agent now, from another thread (the demo was interrupted mid-run)."""
        self._stop_agent()

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
        player: Player | None = None
        owned: Cloud | None = None
        cloud = self.cloud
        events: list[StoredEvent] = []
        try:
            uplink = None
            if self.uses_cloud:
                if cloud is None:
                    cloud = owned = Cloud(self.workdir / "cloud", self.child_env(), echo=self._echo)
                    owned.start()
                    self._echo(f"cloud: mosquitto (TLS) on 127.0.0.1:{cloud.broker_port}, API {cloud.url}, "
                               "ingest worker subscribed")
                uplink = self._enroll(cloud, link, os.ttyname(gnss_slave))
            self.write_config(link, os.ttyname(gnss_slave), uplink)
            self._start_agent(link)
            player = Player(self, link, gnss_master)
            try:
                player.play()
            finally:
                player.stop()
                hold = player.hold
                if hold is not None and hold.stalls:
                    self._echo(f"rig stalled {hold.stalls} times: scenario clock held {hold.held_s:.2f} s")
                if self.network is not None:
                    self.network.set_down(False)  # a drop that outlasts the timeline ends with it
            time.sleep(SETTLE_S)
            if cloud is not None:
                self._wait_drained(self.scenario.cloud_drain_s or DEFAULT_DRAIN_S)
            exit_code = self._stop_agent()
            self._echo(f"agent stopped (exit {exit_code})")
            if cloud is not None:
                events = cloud.events(self.device_id, EVENT_KINDS)
                events.append(StoredEvent(CLOUD_HEALTH, time.time(), cloud.health(self.device_id)))
        finally:
            if exit_code is None:
                self._stop_agent()
            if self.network is not None:
                self.network.close()
            if owned is not None:
                owned.close()
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
            self.device_id, self.network.resets if self.network else 0,
        )

    def _enroll(self, cloud: Cloud, link: CanLink, gnss_port: str) -> dict[str, Any]:
        """Provision the device (installer token, ``fleet-provision init`` + ``enroll``); its uplink goes
        through a ``NetworkLink`` of its own so the scenario can cut it."""
        s = self.scenario
        given = cloud.enroll(self.device_id, self.workdir / "identity", s.vin, s.profile, self.data,
                             can=(link.interface, link.channel), gnss_port=gnss_port)
        self.network = NetworkLink(("127.0.0.1", cloud.broker_port))
        self._echo(f"{self.device_id}: enrolled (VIN {s.vin}); uplink over TLS via 127.0.0.1:{self.network.port}")
        keys = ("signing_key", "tls_ca", "tls_cert", "tls_key")
        return {"host": "127.0.0.1", "port": self.network.port, **{k: given[k] for k in keys}, **UPLINK_TIMINGS}

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
