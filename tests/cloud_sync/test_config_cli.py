"""``fleet-cloud config push | show | reissue`` as real subprocesses, on SQLite, publishing to a real Mosquitto."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from cloud_sync.governance.audit import audit_log
from cloud_sync.store import make_engine, migrate
from edge_agent.wire.config import config_topic, open_config
from edge_agent.wire.sign import load_private_key
from tests.cloud_sync.helpers import SimDevice
from tests.cloud_sync.test_cli import ROOT, _env
from tests.mqtt_broker import Mosquitto

#: Longest the test waits for the retained config: a hang, not a speed bound.
WAIT_S = 30.0
GEOFENCES = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {"name": "depot"},
    "geometry": {"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.01, 0.0], [0.01, 0.01], [0.0, 0.0]]]}}]}


def config_cli(tmp_path: Path, *args: str, broker: Mosquitto | None = None) -> subprocess.CompletedProcess[str]:
    env = _env(FLEET_CLOUD_DATABASE_URL=f"sqlite:///{tmp_path / 'cloud.db'}", FLEET_CLOUD_CA_DIR=str(tmp_path / "ca"),
               **({"FLEET_CLOUD_CONFIG_BROKER": broker.address} if broker is not None else {}))
    return subprocess.run([sys.executable, "-m", "cloud_sync.cli", "config", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def setup_store(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    migrate(engine)
    SimDevice("truck-1").register(engine)
    engine.dispose()
    (tmp_path / "ca").mkdir()


def retained(broker: Mosquitto, topic: str) -> bytes:
    got: queue.Queue[bytes] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="config-cli-test", protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    host, port = broker.address.rsplit(":", 1)
    client.connect(host, int(port))
    client.loop_start()
    try:
        return got.get(timeout=WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def test_push_publishes_a_signed_retained_config_and_show_reads_it(tmp_path: Path, broker: Mosquitto) -> None:
    setup_store(tmp_path)
    (tmp_path / "thresholds.toml").write_text("idle_s = 240\ncoolant_max_c = 104.5\n")
    (tmp_path / "fences.geojson").write_text(json.dumps(GEOFENCES))
    pushed = config_cli(tmp_path, "push", "--device", "truck-1", "--profile", "light_obd2", "--thresholds-file",
                        str(tmp_path / "thresholds.toml"), "--geofences", str(tmp_path / "fences.geojson"),
                        "--ttl-days", "2", broker=broker)
    assert pushed.returncode == 0, pushed.stderr
    assert "saved config v1 for truck-1: published (retained)" in pushed.stdout
    key = load_private_key(tmp_path / "ca" / "config-signing.key")
    config = open_config(retained(broker, config_topic("truck-1")), key.public_key())
    assert (config.device_id, config.version, config.profile) == ("truck-1", 1, "light_obd2")
    assert config.thresholds == {"idle_s": 240.0, "coolant_max_c": 104.5} and config.geofences == GEOFENCES
    assert config.expires_at - config.issued_at == 2 * 86400
    shown = config_cli(tmp_path, "show", "--device", "truck-1", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["desired"]["version"] == 1 and view["desired"]["published_at"] is not None
    assert view["desired"]["created_by"].startswith("cli:") and view["applied"] is None and not view["in_sync"]
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    with engine.connect() as conn:
        actions = [(r.action, r.subject) for r in conn.execute(select(audit_log))]
    engine.dispose()
    assert ("cli config push", "truck-1") in actions


def test_bad_input_is_refused_with_the_reason_and_nothing_is_saved(tmp_path: Path) -> None:
    setup_store(tmp_path)
    (tmp_path / "t.json").write_text(json.dumps({"idle_s": "soon"}))
    bad = config_cli(tmp_path, "push", "--device", "truck-1", "--thresholds-file", str(tmp_path / "t.json"))
    assert bad.returncode == 2 and "threshold 'idle_s' must be a finite number" in bad.stderr
    unknown = config_cli(tmp_path, "push", "--device", "truck-9")
    assert unknown.returncode == 1 and "no device 'truck-9'" in unknown.stderr
    shown = config_cli(tmp_path, "show", "--device", "truck-1")
    assert shown.returncode == 0 and "desired  none" in shown.stdout
    # Without a broker the config is stored and said to be waiting; reissue finds nothing due yet.
    stored = config_cli(tmp_path, "push", "--device", "truck-1", "--profile", "light_obd2")
    assert stored.returncode == 0 and "stored, NOT published yet" in stored.stdout, stored.stdout + stored.stderr
    again = config_cli(tmp_path, "reissue")
    assert again.returncode == 0 and "0 config(s) re-issued" in again.stdout, again.stderr
