"""A real Mosquitto for tests: a temp config on a free loopback port, persistence on, kill -9 and restart.

``mosquitto_or_skip`` finds the binary (``/usr/sbin/mosquitto`` or on PATH); without one the tests
skip with the reason, except under ``CI=true`` where they fail (CI installs Mosquitto).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: Longest a broker may take to accept connections after a (re)start before the test fails.
READY_TIMEOUT_S = 15.0
#: Fresh ports a first start tries when its port was taken between ``free_port`` and Mosquitto's bind
#: (tests run in parallel under pytest-xdist, and any process may be handed the same ephemeral port).
BIND_ATTEMPTS = 5
#: MQTT 3.1.1 CONNECT (protocol level 4, clean session, keep-alive 60 s, empty client id: the broker
#: assigns one), the CONNACK that accepts it, and DISCONNECT (MQTT 3.1.1 sections 3.1, 3.2, 3.14).
MQTT_PROBE_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
MQTT_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
MQTT_DISCONNECT = b"\xe0\x00"


def find_mosquitto() -> str | None:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_or_skip() -> str:
    binary = find_mosquitto()
    if binary is None:
        message = "mosquitto not installed (apt-get install mosquitto, or scripts/bootstrap.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One broker process; ``kill`` (SIGKILL) and ``start`` again keep the port and persistence dir."""

    def __init__(self, binary: str, workdir: Path, *, acl: str | None = None,
                 max_packet_size: int | None = None, extra_config: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        lines = [
            "",  # the listener line, filled in by _write_config (a first start may move to another port)
            # Run as root, mosquitto would switch to user "mosquitto", who cannot write our temp dir.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir / 'data'}/",
            # Save the in-memory state every second: a kill -9 then loses at most the last second
            # (the uplink's ack timeout recovers whatever it loses).
            "autosave_interval 1",
            f"log_dest file {workdir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_queued_messages 10000",
        ]
        if acl is not None:
            (workdir / "acl").write_text(acl)
            lines.append(f"acl_file {workdir / 'acl'}")
        if max_packet_size is not None:
            lines.append(f"max_packet_size {max_packet_size}")
        lines.extend(extra_config)  # last: a further ``listener`` block may follow
        self._lines = lines
        self.config = workdir / "mosquitto.conf"
        self._written = self._write_config()

    def _write_config(self) -> str:
        self._lines[0] = f"listener {self.port} 127.0.0.1"
        text = "\n".join(self._lines) + "\n"
        self.config.write_text(text)
        return text

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        for _ in range(BIND_ATTEMPTS - 1):
            if not self._port_taken_at_first_start():
                return
            # Nobody can know the port yet (a restart keeps its port: clients reconnect to it).
            self.port = free_port()
            self._written = self._write_config()
        self._start_once()

    def _port_taken_at_first_start(self) -> bool:
        """Start; True when this first start of our own config lost its port to another process."""
        first = self.starts == 0
        try:
            self._start_once()
            return False
        except RuntimeError as exc:
            own_config = self.config == self.workdir / "mosquitto.conf" and self.config.read_text() == self._written
            if first and own_config and "Address already in use" in str(exc):
                self.starts = 0
                return True
            raise

    def _start_once(self) -> None:
        log = self.workdir / "mosquitto.log"
        log_size = log.stat().st_size if log.exists() else 0
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = log.read_bytes()[log_size:][-2000:].decode(errors="replace") if log.exists() else ""
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {said}")
            if self._accepts():
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not accept connections on {self.address} within {READY_TIMEOUT_S} s")

    def _accepts(self) -> bool:
        """Our broker answers on the port: with our own (plain, anonymous) config an MQTT CONNECT gets its
        CONNACK, so a process that took the port first is not mistaken for the broker; a config from
        elsewhere (TLS listener) only gets a TCP connect."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                if self.config != self.workdir / "mosquitto.conf" or self.config.read_text() != self._written:
                    return True
                conn.settimeout(2.0)
                conn.sendall(MQTT_PROBE_CONNECT)
                answer = conn.recv(4)
                conn.sendall(MQTT_DISCONNECT)
                return answer == MQTT_CONNACK_ACCEPTED
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye, no final save (what a power cut or OOM kill does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def started(tmp_path: Path, **kwargs: object) -> Mosquitto:
    """A running broker in ``tmp_path`` (callers stop it)."""
    broker = Mosquitto(mosquitto_or_skip(), tmp_path, **kwargs)  # type: ignore[arg-type]
    broker.start()
    return broker


REPO = Path(__file__).resolve().parents[1]


class Proc:
    """A Python child process (``python -m module args``) whose stdout lines are collected as they come."""

    def __init__(self, module: str, *args: str, log_path: Path | None = None) -> None:
        import sys
        import threading

        self.lines: list[str] = []
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        stderr = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=stderr)
        if log_path is not None:
            stderr.close()  # type: ignore[union-attr]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_line(self, needle: str, timeout: float = READY_TIMEOUT_S * 2) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.proc.args!r} printed no line with {needle!r} (exit {self.proc.poll()}): "
                             f"{self.lines[-5:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return int(self.proc.returncode)


def ingest_worker(broker: Mosquitto, database_url: str, client_id: str, log_path: Path | None = None) -> Proc:
    """A ``python -m cloud_sync.worker`` process, returned once its shared subscription is in place."""
    worker = Proc("cloud_sync.worker", "--broker", broker.address, "--database", database_url,
                  "--client-id", client_id, "--log-level", "WARNING", log_path=log_path)
    worker.wait_line('"subscribed"')
    return worker
