"""``fleet-cloud`` as real subprocesses: migrate, add-device, revoke-device, and serve under uvicorn."""

from __future__ import annotations

import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import text

from cloud_sync.store import LATEST_VERSION, make_engine
from edge_agent.wire import batch_hash, decode_ack
from tests.cloud_sync.helpers import SimDevice
from tests.mqtt_broker import Proc

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_CLOUD_")}
    env.update({"PYTHONPATH": str(ROOT), **extra})
    return env


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloud_sync.cli", *args], capture_output=True, text=True,
                          env=env or _env(), cwd=ROOT, timeout=120)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cloud.db'}"


def test_migrate_is_idempotent(db_url):
    first = cli("--database-url", db_url, "migrate")
    # Every migration, from the first to the latest (a new migration appended must not break this test).
    assert first.returncode == 0 and f"applied {list(range(1, LATEST_VERSION + 1))}" in first.stdout
    again = cli("--database-url", db_url, "migrate")
    assert again.returncode == 0 and "current" in again.stdout


def test_add_device_and_revoke(db_url, tmp_path):
    dev = SimDevice("cli-dev")
    pem = tmp_path / "dev.pub.pem"
    pem.write_text(dev.public_pem)
    ok = cli("--database-url", db_url, "add-device", "--id", "cli-dev", "--public-key", str(pem), "--vin",
             "1M8GDM9AXKP042788", "--profile", "heavy_truck_j1939")
    assert ok.returncode == 0, ok.stderr
    dup = cli("--database-url", db_url, "add-device", "--id", "cli-dev", "--public-key", str(pem))
    assert dup.returncode == 1 and "already registered" in dup.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    bad = cli("--database-url", db_url, "add-device", "--id", "other", "--public-key", str(junk))
    assert bad.returncode == 2 and "Ed25519" in bad.stderr
    assert cli("--database-url", db_url, "revoke-device", "--id", "cli-dev").returncode == 0
    assert cli("--database-url", db_url, "revoke-device", "--id", "ghost").returncode == 1


def test_production_refuses_the_default_admin_token(db_url):
    r = cli("--database-url", db_url, "migrate", env=_env(FLEET_CLOUD_ENV="production"))
    assert r.returncode == 2 and "FLEET_CLOUD_ADMIN_TOKEN" in r.stderr


def _served_at(proc: subprocess.Popen[str]) -> str:
    """The address uvicorn reports it listens on ("Uvicorn running on http://127.0.0.1:PORT")."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # end of output: the server exited

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        line = lines.get(timeout=60)  # a server that says nothing for a minute is broken, not slow
        seen.append(line)
        found = re.search(r"Uvicorn running on (http://[0-9.]+:[0-9]+)", line)
        if found:
            return found.group(1)
        assert line, "".join(seen)


def test_serve_accepts_a_batch_over_http(db_url, tmp_path):
    dev = SimDevice("served-dev")
    pem = tmp_path / "dev.pub.pem"
    pem.write_text(dev.public_pem)
    assert cli("--database-url", db_url, "add-device", "--id", dev.device_id, "--public-key", str(pem)).returncode == 0
    # Port 0: the server binds a free port itself and says which (a port picked here first could be taken by
    # another test before uvicorn binds it, and the test would then talk to that other server).
    proc = subprocess.Popen([sys.executable, "-m", "cloud_sync.cli", "--database-url", db_url, "serve", "--port", "0"],
                            env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = _served_at(proc)
        blob = dev.batch(dev.records(random.Random(9), 25))
        r = httpx.post(f"{base}/v1/batches", content=blob, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200 and r.json()["status"] == "committed" and r.json()["stored"] == 25
        vehicles = httpx.get(f"{base}/v1/vehicles", headers={"Authorization": "Bearer changethis"}).json()
        assert vehicles["data"][0]["device"]["id"] == "served-dev" and vehicles["data"][0]["last_position"]
        assert "fleet_cloud_batches_committed_total 1" in httpx.get(f"{base}/metrics").text
        assert r.json()["batch_hash"] == batch_hash(blob).hex()  # the ack names the body it answers
        # A store that fails under the server answers 503 store_unavailable (the device sends again).
        engine = make_engine(db_url)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE batches RENAME TO batches_away"))
        engine.dispose()
        again = dev.batch(dev.records(random.Random(10), 5))
        r = httpx.post(f"{base}/v1/batches", content=again, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 503 and r.json()["reason"] == "store_unavailable"
        assert r.json()["batch_hash"] == batch_hash(again).hex()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_worker_subcommand_ingests_from_the_broker(db_url, tmp_path, broker):
    dev = SimDevice("mqtt-dev")
    pem = tmp_path / "dev.pub.pem"
    pem.write_text(dev.public_pem)
    assert cli("--database-url", db_url, "add-device", "--id", dev.device_id, "--public-key", str(pem)).returncode == 0
    # --database falls back to --database-url, as for every other command.
    worker = Proc("cloud_sync.cli", "--database-url", db_url, "worker", "--broker", broker.address,
                  "--client-id", "cli-worker", "--log-level", "WARNING", log_path=tmp_path / "worker.log")
    acks: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="mqtt-dev", protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: acks.put(bytes(msg.payload))
    try:
        assert json.loads(worker.wait_line('"subscribed"'))["client_id"] == "cli-worker"
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe(f"fleet/v1/{dev.device_id}/ack", qos=1)[1]
        blob = dev.batch(dev.records(random.Random(3), 12))
        client.publish(f"fleet/v1/{dev.device_id}/batch", blob, qos=1).wait_for_publish(10)
        ack = decode_ack(acks.get(timeout=60))
        assert (ack.status, ack.stored, ack.batch_hash) == ("committed", 12, batch_hash(blob))
    finally:
        client.loop_stop()
        client.disconnect()
        assert worker.terminate() == 0
    assert json.loads(worker.wait_line('"stopped"'))["metrics"]["batches_committed"] == 1
