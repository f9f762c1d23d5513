"""The cloud half of a HIL run (a scenario's ``[cloud]``): Mosquitto, the cloud store and an ingest worker.

``CloudSide.start`` launches Mosquitto on a free loopback port, creates the cloud's SQLite store
(``fleet-cloud migrate``), registers the simulated device with a fresh Ed25519 key (``fleet-cloud
add-device``) and starts one ``cloud_sync.worker``; ``uplink_toml`` is the agent's ``[uplink]``
section. At the end the rig waits for the agent's outbox to drain (rows leave it only when the
cloud's ack says "committed"), and the expectations are checked against what the cloud stored,
read-only: events and the once-per-vehicle records, as the cloud's API would list them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.can_link import RigError, RigSkip
from hil.expect import StoredEvent

#: Longest wait for Mosquitto to accept connections.
BROKER_READY_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RigSkip("cloud: mosquitto is not installed (apt-get install mosquitto)")


class CloudSide:
    """Broker + store + worker for one device, all under ``workdir / "cloud"``."""

    def __init__(self, workdir: Path, device_id: str, env: dict[str, str]) -> None:
        self.dir = workdir / "cloud"
        self.device_id = device_id
        self.env = env
        self.port = _free_port()
        self.db = self.dir / "cloud.db"
        self.url = f"sqlite:///{self.db}"
        self.key = self.dir / "device.pem"
        self._procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.dir)
        self._procs.append(proc)
        return proc

    def _cli(self, *args: str) -> None:
        out = subprocess.run([sys.executable, "-m", "cloud_sync.cli", "--database-url", self.url, *args],
                             capture_output=True, text=True, env=self.env, cwd=self.dir, timeout=60)
        if out.returncode != 0:
            raise RigError(f"fleet-cloud {args[0]} failed ({out.returncode}): {out.stderr.strip()}")

    def start(self) -> None:
        binary = find_mosquitto()
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join([
            f"listener {self.port} 127.0.0.1",
            # As root, mosquitto would switch to user "mosquitto", who cannot write our directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "allow_anonymous true", "persistence false", f"log_dest file {self.dir / 'mosquitto.log'}",
        ]) + "\n")
        broker = self._spawn([binary, "-c", str(conf)], "mosquitto.out")
        end = time.monotonic() + BROKER_READY_S
        while True:
            if broker.poll() is not None:
                raise RigError(f"cloud: mosquitto exited with {broker.returncode} (see {self.dir})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > end:
                    raise RigError(f"cloud: mosquitto did not listen on {self.port} in {BROKER_READY_S} s") from None
                time.sleep(0.02)
        key = Ed25519PrivateKey.generate()
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        public = self.dir / "device.pub.pem"
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
        self._cli("migrate")
        self._cli("add-device", "--id", self.device_id, "--public-key", str(public))
        self._spawn([sys.executable, "-m", "cloud_sync.worker", "--broker", f"127.0.0.1:{self.port}",
                     "--database", self.url], "worker.log")

    def uplink_toml(self) -> list[str]:
        # Plain MQTT on loopback only; a short linger so batches leave while the scenario runs.
        return ["[uplink]", 'host = "127.0.0.1"', f"port = {self.port}", f"signing_key = {json.dumps(str(self.key))}",
                "linger_s = 0.2", "ack_timeout_s = 5.0", "reconnect_min_s = 0.1", "reconnect_max_s = 1.0"]

    def events(self, kinds: tuple[str, ...]) -> list[StoredEvent]:
        """What the cloud stored of ``kinds`` for our device, in device-time order."""
        if not self.db.exists():
            return []
        marks = ",".join("?" for _ in kinds)
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            # ``records`` holds every record the cloud committed (``events`` is its indexed subset).
            rows = conn.execute(
                f"SELECT kind, device_time, payload FROM records WHERE device_id = ? AND kind IN ({marks}) "
                "ORDER BY device_time, record_id", (self.device_id, *kinds),
            ).fetchall()
        finally:
            conn.close()
        out = []
        for kind, ts, payload in rows:
            data = json.loads(payload) if isinstance(payload, str) else payload
            out.append(StoredEvent(str(kind), float(ts), data if isinstance(data, dict) else {"_value": data}))
        return out

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
