"""The cloud the provisioning tests talk to: ``fleet-cloud serve`` under uvicorn (SQLite store, fleet CA
directory) and a real Mosquitto configured by ``fleet-cloud broker-config`` from the same CA; the
ingest worker on its own certificate is started on demand (``Cloud.start_worker``)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_sync.broker_config import BrokerFiles
from provisioning.enroll import AGENT_TOML, dumps_toml
from tests.mqtt_broker import READY_TIMEOUT_S, Mosquitto, Proc, free_port, mosquitto_or_skip

REPO = Path(__file__).resolve().parents[2]
VIN = "1M8GDM9AXKP042788"
PROFILE = "heavy_truck_j1939"


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **(env or {})})


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return run("provisioning.cli", *args)


def enroll_args(d: Path, cloud_url: str, token: str, vin: str = VIN, profile: str = PROFILE,
                *extra: str) -> list[str]:
    return ["enroll", "--dir", str(d), "--cloud", cloud_url, "--token", token, "--vehicle", vin, "--profile",
            profile, "--data-dir", str(d.parent / "data"), *extra]


def enrolled(cloud: Cloud, d: Path, vin: str = VIN, profile: str = PROFILE) -> Path:
    assert provision("init", "--dir", str(d)).returncode == 0
    out = provision(*enroll_args(d, cloud.url, cloud.token(), vin, profile))
    assert out.returncode == 0, out.stderr
    return d


def rewire(d: Path, channel: str, gnss_port: str | None, bitrate: int | None = 250_000) -> None:
    """Point the enrolled agent.toml at this test's adapter and receiver (as an installer would edit it)."""
    doc: dict[str, Any] = tomllib.loads((d / AGENT_TOML).read_text())
    doc["can"] = {"interface": "slcan", "channel": channel, **({"bitrate": bitrate} if bitrate else {})}
    doc.pop("gnss", None)
    if gnss_port is not None:
        doc["gnss"] = {"port": gnss_port}
    (d / AGENT_TOML).write_text(dumps_toml(doc))


@dataclass
class Cloud:
    url: str
    db_url: str
    env: dict[str, str]
    broker: Mosquitto
    files: BrokerFiles
    tmp: Path
    worker: Proc | None = field(default=None)

    def token(self, depot: str = "depot-east") -> str:
        out = run("cloud_sync.cli", "--database-url", self.db_url, "installer-token", "--depot", depot, "--ttl",
                  "15m", "--json", env=self.env)
        assert out.returncode == 0, out.stderr
        return str(json.loads(out.stdout)["token"])

    def start_worker(self) -> Proc:
        """The MQTT ingest worker on the broker's ingest certificate (one per cloud, started once)."""
        if self.worker is None:
            self.worker = Proc("cloud_sync.worker", "--broker", f"127.0.0.1:{self.broker.port}", "--database",
                               self.db_url, "--client-id", "ingest-provisioning", "--log-level", "WARNING",
                               "--tls-ca", str(self.files.ca), "--tls-cert", str(self.files.ingest_cert),
                               "--tls-key", str(self.files.ingest_key), log_path=self.tmp / "worker.log")
            self.worker.wait_line('"subscribed"')
        return self.worker


@contextmanager
def running_cloud(tmp: Path) -> Iterator[Cloud]:
    db_url = f"sqlite:///{tmp / 'cloud.db'}"
    broker = Mosquitto(mosquitto_or_skip(), tmp / "mosq")
    env = {"FLEET_CLOUD_CA_DIR": str(tmp / "ca"), "FLEET_CLOUD_BROKER_HOST": "127.0.0.1",
           "FLEET_CLOUD_BROKER_PORT": str(broker.port)}
    out = run("cloud_sync.cli", "--database-url", db_url, "broker-config", "--out", str(tmp / "broker"), "--port",
              str(broker.port), "--bind", "127.0.0.1", "--user", pwd.getpwuid(os.getuid()).pw_name, env=env)
    assert out.returncode == 0, out.stderr
    files = BrokerFiles(*(tmp / "broker" / n for n in ("mosquitto.conf", "acl", "ca.pem", "crl.pem", "server.crt",
                                                      "server.key", "ingest.crt", "ingest.key")))
    broker.config = files.conf
    broker.start()
    port = free_port()
    with open(tmp / "cloud.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.cli", "--database-url", db_url, "serve", "--port",
                                 str(port)], cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    cloud = Cloud(url, db_url, env, broker, files, tmp)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S * 2
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, (tmp / "cloud.log").read_text()
                assert time.monotonic() < deadline, "the cloud did not start"
                time.sleep(0.05)
        yield cloud
    finally:
        if cloud.worker is not None:
            cloud.worker.terminate()
        proc.terminate()
        proc.wait(timeout=10)
        broker.stop()
