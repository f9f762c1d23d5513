"""``fleet-agent run``: the unattended loop.

One thread: read a batch of CAN frames (blocking at most ``POLL_S``), take whatever GNSS lines are
waiting, hand both to the pipeline, let the OBD-II poller send its requests, and on a fixed cadence
commit buffered records, rewrite the status file and ping the systemd watchdog. The MQTT uplink (if
configured) is ticked every round: its network thread only queues events, the work is done here.
When no CAN frame has come for ``SILENCE_S`` (threshold ``bus_silence_s``: the ignition is off), the
detectors are ticked once at the bus time the silence has reached, so a trip or idle period ends seconds
after the key is turned, not when the bus wakes again. SIGTERM/SIGINT stop the loop after a final flush;
SIGHUP reloads geofences and thresholds without a restart.
A signed config pushed by the cloud (``edge_agent.config_push``) is applied between two rounds.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import replace
from types import FrameType

from edge_agent import systemd
from edge_agent.app import Agent, build_agent
from edge_agent.config import AgentConfig, load_config
from edge_agent.config_push.apply import build_effective
from edge_agent.decoding.obd.poller import drive
from edge_agent.detection import SILENCE_S
from edge_agent.errors import FleetError, OutboxError
from edge_agent.privacy import read_switch
from edge_agent.sources import FrameSink
from edge_agent.status import write_status

log = logging.getLogger(__name__)

#: Longest a CAN read blocks, so signals, flushes and GNSS are served at least this often.
POLL_S = 0.05
#: With an OBD-II poller the read blocks less, so responses are timed against P2 closely.
OBD_POLL_S = 0.01
BATCH_FRAMES = 512
#: A persistent outbox failure (a disk that stays full) is logged at most this often.
OUTBOX_ERROR_LOG_S = 60.0


class Daemon:
    """Drives an ``Agent`` until asked to stop."""

    def __init__(self, agent: Agent, config_path: str) -> None:
        self.agent = agent
        self.config_path = config_path
        self._stop = False
        self._reload = False
        self._started = time.time()
        self._started_cpu = time.process_time()
        # Monotonic time the last CAN frame was read, and whether this silence has been ticked yet.
        self._last_frame_mono: float | None = None
        self._silence_ticked = False

    def request_stop(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        log.info("signal %s: stopping after a final flush", signum)
        self._stop = True

    def request_reload(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        self._reload = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def reload(self) -> None:
        """SIGHUP: re-read the config's thresholds and geofences; keep sources and the outbox."""
        self._reload = False
        try:
            config = load_config(self.config_path)
            pushed = self.agent.config_push.running if self.agent.config_push is not None else None
            # A pushed config (edge_agent.config_push) stays on top of agent.toml's thresholds and geofences.
            _profile, detectors = build_effective(config, pushed, self.agent.counters)
            self.agent.pipeline.replace_detectors(detectors)
            self.agent.config = replace(self.agent.config, thresholds=config.thresholds, geofences=config.geofences)
            if self.agent.pipeline.privacy is not None:
                self.agent.pipeline.privacy.policy = config.privacy
        except FleetError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        log.info("reloaded thresholds and geofences from %s", self.config_path)

    def status(self) -> dict[str, object]:
        agent = self.agent
        now = time.time()
        return {
            "device_id": agent.config.device_id,
            "profile": agent.profile.name,
            "pid": os.getpid(),
            "written_at": now,
            "uptime_s": round(now - self._started, 1),
            "cpu_s": round(time.process_time() - self._started_cpu, 3),
            "status_interval_s": agent.config.status_interval_s,
            "counters": agent.counters.snapshot(),
            "outbox": {"depth": agent.outbox.depth(), "bytes": agent.outbox.bytes_used(),
                       "by_kind": agent.outbox.counts_by_kind()},
            "uplink": agent.uplink.status() if agent.uplink is not None else None,
            "config": agent.config_push.status() if agent.config_push is not None else None,
            "privacy": agent.pipeline.privacy.state() if agent.pipeline.privacy is not None else None,
        }

    def _acquire(self, agent: Agent) -> None:
        """One read of every source into the pipeline (and the OBD poller's turn)."""
        pipeline = agent.pipeline
        if agent.can is not None:
            # The OBD poller must answer first frames and send requests within P2 (50 ms).
            frames = agent.can.read_batch(BATCH_FRAMES, OBD_POLL_S if agent.poller else POLL_S)
            if frames:
                pipeline.on_frames(frames)
                self._last_frame_mono, self._silence_ticked = time.monotonic(), False
            else:
                self._tick_silence(agent)
            if agent.poller is not None and isinstance(agent.can, FrameSink):
                # python-can stamps received frames with time.time(); the poller shares that clock.
                drive(agent.poller, frames or [], agent.can, time.time())
        else:
            time.sleep(POLL_S)
        if agent.gnss is not None:
            lines = agent.gnss.read_lines(0.0)
            if lines:
                pipeline.on_lines(lines)

    def _tick_silence(self, agent: Agent) -> None:
        """No frame this read: past the silence threshold tick the detectors once, at the last frame's bus
        time plus the time since it came (monotonic, so a wall-clock step cannot fake or hide a silence)."""
        if self._last_frame_mono is None or self._silence_ticked:
            return
        limit = agent.config.thresholds.get("bus_silence_s", SILENCE_S)
        limit = limit if limit > 0.0 else SILENCE_S
        silent_s = time.monotonic() - self._last_frame_mono
        if silent_s > limit:
            self._silence_ticked = True
            pipeline = agent.pipeline
            pipeline.tick_silence(pipeline.last_frame_ts + silent_s, limit)

    def _write_status(self) -> None:
        try:
            write_status(self.agent.config.status_path, self.status())
        except OSError as exc:
            # The status file is for people; a full disk must not stop the agent over it.
            self.agent.counters.inc("status_write_errors")
            log.warning("cannot write status file %s: %s", self.agent.config.status_path, exc)

    def run(self) -> int:
        agent, cfg = self.agent, self.agent.config
        pipeline = agent.pipeline
        next_flush = next_status = next_outbox_log = time.monotonic()
        watchdog = systemd.watchdog_interval_s()
        next_watchdog = time.monotonic()
        if agent.uplink is not None:
            agent.uplink.start()
        systemd.notify("READY=1")
        log.info("running: device %s", cfg.device_id)
        while not self._stop:
            if self._reload:
                self.reload()
            if agent.config_push is not None:
                agent.config_push.tick()
                pipeline = agent.pipeline  # a pushed profile restarts the pipeline
            now = time.monotonic()
            try:
                self._acquire(agent)
                if now >= next_flush:
                    pipeline.flush()
                    next_flush = now + cfg.flush_interval_s
            except OutboxError as exc:
                # A disk that stays full after eviction: keep reading (records wait in the pipeline's
                # buffer and the next flush retries), say so once per interval, never crash the loop.
                agent.counters.inc("outbox_errors")
                if now >= next_outbox_log:
                    log.error("outbox write failed, will retry: %s", exc)
                    next_outbox_log = now + OUTBOX_ERROR_LOG_S
                next_flush = now + cfg.flush_interval_s
            if agent.uplink is not None:
                agent.uplink.tick(now)
            if now >= next_status:
                if pipeline.privacy is not None:
                    pipeline.set_private_switch(read_switch(cfg.data_dir))
                self._write_status()
                next_status = now + cfg.status_interval_s
            if watchdog is not None and now >= next_watchdog:
                systemd.notify("WATCHDOG=1")
                next_watchdog = now + watchdog
        systemd.notify("STOPPING=1")
        try:
            pipeline.finish()
        except OutboxError as exc:
            agent.counters.inc("outbox_errors")
            log.error("final flush failed; records not yet committed are lost: %s", exc)
            self._write_status()
            return 1
        self._write_status()
        log.info("stopped cleanly")
        return 0


def run_daemon(config_path: str) -> int:
    """Entry point of ``fleet-agent run``."""
    config: AgentConfig = load_config(config_path)
    agent = build_agent(config)
    daemon = Daemon(agent, config_path)
    daemon.install_signals()
    try:
        return daemon.run()
    finally:
        agent.close()
