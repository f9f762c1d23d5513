"""``fleet-agent run`` as a real process: slcan adapter and GNSS receiver on real ptys, real signals.

The test plays the vehicle: it injects the simulated truck's frames through an slcan adapter
emulator and NMEA from a real receiver capture through a second pty, then checks what the daemon
counted, stored and reported, and how it handles SIGHUP, SIGTERM and SIGKILL.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from hil.record_truck import DEFAULT_START, truck_frames
from hil.slcan_adapter import SlcanEmulator
from tests.tiny_disk import tiny_disk as tiny_disk_mount

ROOT = Path(__file__).resolve().parents[2]
NMEA = ROOT / "tests" / "data" / "real" / "nmea" / "gnss_drive.nmea"
CONFIG = """
[agent]
device_id = "truck-test"
profile = "heavy_truck_j1939"
data_dir = "{data}"
status_interval_s = 0.2

[can]
interface = "slcan"
channel = "{can}"
bitrate = 250000
options = {{ sleep_after_open = 0 }}

[gnss]
port = "{gnss}"
baudrate = 9600

[outbox]
quota_mb = 16
flush_interval_s = 0.2

[detection.thresholds]
idle_min_duration_s = {idle_min}
"""


@dataclass
class Rig:
    can: SlcanEmulator
    gnss_master: int
    gnss_slave: int
    config: Path
    data: Path
    log: Path

    def write_config(self, idle_min: float = 300.0, text: str | None = None) -> None:
        body = text if text is not None else CONFIG.format(
            data=self.data, can=self.can.port, gnss=os.ttyname(self.gnss_slave), idle_min=idle_min
        )
        self.config.write_text(body)

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed with the rig
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )

    def status(self) -> dict[str, object]:
        try:
            data = json.loads((self.data / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        assert isinstance(data, dict)
        return data

    def counter(self, name: str) -> int:
        counters = self.status().get("counters", {})
        assert isinstance(counters, dict)
        return int(counters.get(name, 0))

    def wait(self, predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def send_nmea(self, lines: list[str]) -> None:
        os.write(self.gnss_master, "".join(line + "\r\n" for line in lines).encode("ascii"))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    emulator = SlcanEmulator()
    master, slave = os.openpty()
    rig = Rig(emulator, master, slave, tmp_path / "agent.toml", tmp_path / "data", tmp_path / "agent.log")
    rig.write_config()
    try:
        yield rig
    finally:
        emulator.close()
        for fd in (master, slave):
            os.close(fd)


def _nmea_lines() -> list[str]:
    return [ln.strip() for ln in NMEA.read_text(encoding="ascii", errors="replace").splitlines() if ln.startswith("$")]


def _inject(rig: Rig, frames: list, chunk: int = 100) -> None:  # type: ignore[type-arg]
    for i in range(0, len(frames), chunk):
        rig.can.inject(*frames[i : i + chunk])
        time.sleep(0.01)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_daemon_reads_decodes_stores_and_stops_cleanly(rig: Rig) -> None:
    frames = list(itertools.islice(truck_frames(seconds=60.0), 3000))
    proc = rig.start()
    try:
        assert rig.wait(lambda: rig.can.is_open), rig.log.read_text()
        assert rig.wait(lambda: bool(rig.status())), "no status file: " + rig.log.read_text()
        _inject(rig, frames)
        rig.send_nmea(_nmea_lines())
        assert rig.wait(lambda: rig.counter("frames") >= len(frames) and rig.counter("fixes") > 0), rig.status()

        # fleet-agent status reads the same file a person would.
        out = subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", "status", "--config", str(rig.config)],
            capture_output=True, text=True, cwd=ROOT, timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert "running" in out.stdout and "truck-test" in out.stdout

        # SIGHUP with a broken config keeps the running one; with a good one reloads it.
        rig.write_config(text="[agent\n")
        proc.send_signal(signal.SIGHUP)
        assert rig.wait(lambda: "reload refused" in rig.log.read_text()), rig.log.read_text()
        rig.write_config(idle_min=120.0)
        proc.send_signal(signal.SIGHUP)
        assert rig.wait(lambda: "reloaded thresholds" in rig.log.read_text()), rig.log.read_text()
        assert proc.poll() is None
    finally:
        rc = _stop(proc)
    assert rc == 0, rig.log.read_text()
    status = rig.status()
    counters = status["counters"]
    assert isinstance(counters, dict)
    assert counters["frames"] == len(frames)  # every injected frame read: nothing lost on the way in
    assert counters["frames_decoded"] > 0 and counters["fixes"] > 0
    with Outbox(rig.data / "outbox.db") as outbox:
        kinds = outbox.counts_by_kind()
        assert outbox.check() == "ok"
    assert kinds.get("sample", 0) > 0 and kinds.get("position", 0) > 0
    assert kinds.get("vehicle_id") == 1  # the VIN answer to the simulated request
    assert status["outbox"]["depth"] == sum(kinds.values())  # type: ignore[index]
    # Structured logs: every line the daemon wrote is one JSON object.
    for line in rig.log.read_text().splitlines():
        assert isinstance(json.loads(line), dict), line


def test_daemon_survives_sigkill_without_losing_committed_records(rig: Rig) -> None:
    frames = list(itertools.islice(truck_frames(seconds=120.0), 6000))
    proc = rig.start()
    try:
        assert rig.wait(lambda: rig.can.is_open), rig.log.read_text()
        _inject(rig, frames[:3000])
        assert rig.wait(lambda: rig.counter("frames") >= 3000)
        # The status file is written after a flush: what it reports is committed.
        assert rig.wait(lambda: int(rig.status().get("outbox", {}).get("depth", 0)) > 0)  # type: ignore[union-attr]
        committed = int(rig.status()["outbox"]["depth"])  # type: ignore[index]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    with Outbox(rig.data / "outbox.db") as outbox:
        assert outbox.check() == "ok"
        assert outbox.depth() >= committed
    proc = rig.start()
    try:
        assert rig.wait(lambda: rig.can.is_open), rig.log.read_text()
        # A fresh status file from the new process (its pid) before we inject more.
        assert rig.wait(lambda: rig.status().get("pid") == proc.pid)
        _inject(rig, frames[3000:])
        assert rig.wait(lambda: rig.counter("frames") >= 3000)
    finally:
        assert _stop(proc) == 0
    with Outbox(rig.data / "outbox.db") as outbox:
        assert outbox.check() == "ok"
        assert outbox.depth() > committed


def test_daemon_ends_a_trip_when_the_bus_falls_silent(rig: Rig) -> None:
    """Ignition off: no frame comes any more, and the trip ends by the daemon's own clock (a short trip
    and a 1 s silence threshold keep the test quick; the default is ``SILENCE_S``)."""
    rig.write_config(text=rig.config.read_text() + "trip_min_duration_s = 0.5\nbus_silence_s = 1.0\n")
    # The engine idling (the cycle cranks at 5 s): python-can stamps frames as they arrive, so they are
    # injected over about 1.5 s of bus time.
    frames = [f for f in truck_frames(seconds=20.0) if f.timestamp - DEFAULT_START >= 12.0][:1500]
    proc = rig.start()
    try:
        assert rig.wait(lambda: rig.can.is_open), rig.log.read_text()
        for i in range(0, len(frames), 100):
            rig.can.inject(*frames[i : i + 100])
            time.sleep(0.1)
        assert rig.wait(lambda: rig.counter("frames") >= len(frames))
        # No frame from now on. Without trip_ended the events are at most trip_started and a periodic meter.
        assert rig.wait(lambda: rig.counter("events") >= 3), rig.status()
    finally:
        assert _stop(proc) == 0
    with Outbox(rig.data / "outbox.db") as outbox:
        rows = outbox.claim(10**6)
    ended = [r for r in rows if r.kind == "trip_ended"]
    assert len(ended) == 1 and [r.kind for r in rows].count("trip_started") == 1
    trip = ended[0].payload
    # Ended at the last data, reported after the silence (the daemon's clock) without any new frame.
    assert trip["ended_at"] < ended[0].timestamp - 1.0
    assert 0.5 <= trip["duration_s"] == pytest.approx(trip["ended_at"] - trip["started_at"], abs=1e-3)


def test_bad_config_fails_at_start_naming_the_field(rig: Rig) -> None:
    rig.write_config(text=rig.config.read_text().replace('bitrate = 250000', 'bitrate = "fast"'))
    proc = rig.start()
    assert proc.wait(timeout=30) == 1
    assert "can.bitrate" in rig.log.read_text()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_disk_mount(tmp_path, "2m") as mount:
        yield mount


def test_daemon_on_a_full_disk_evicts_reports_and_keeps_running(rig: Rig, tiny_disk: Path) -> None:
    rig.write_config()
    rig.config.write_text(rig.config.read_text().replace("[outbox]\n", f'[outbox]\npath = "{tiny_disk}/outbox.db"\n'))
    frames = list(itertools.islice(truck_frames(), 40_000))
    proc = rig.start()
    try:
        assert rig.wait(lambda: rig.can.is_open), rig.log.read_text()
        assert rig.wait(lambda: (tiny_disk / "outbox.db.reserve").exists())
        # Something else on the vehicle fills the disk, leaving the outbox about 160 KiB to grow.
        free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
        (tiny_disk / "filler").write_bytes(bytes(max(0, free - 160 * 1024)))
        _inject(rig, frames, chunk=400)
        rig.send_nmea(_nmea_lines())
        assert rig.wait(lambda: rig.counter("frames") >= len(frames), timeout=60), rig.status()
        assert proc.poll() is None, rig.log.read_text()
    finally:
        rc = _stop(proc)
    assert rc == 0, rig.log.read_text()
    counters = rig.status()["counters"]
    assert isinstance(counters, dict)
    assert counters["frames"] == len(frames)
    assert counters["records_dropped"] > 0
    with Outbox(tiny_disk / "outbox.db") as outbox:
        assert outbox.check() == "ok"
        kinds = outbox.counts_by_kind()
        reports = [r for r in outbox.claim(100_000) if r.kind == "drop_report"]
    # What was dropped is itself recorded, lowest priority first; fault records are never dropped.
    assert reports and all(r.payload["reason"] == "disk_full" for r in reports)
    dropped = reports[0].payload["dropped"]
    assert isinstance(dropped, dict) and "sample" in dropped
    assert not set(dropped) & {"dtc_status", "dtc_appeared", "dtc_cleared", "drop_report"}
    assert kinds.get("dtc_status", 0) > 0
