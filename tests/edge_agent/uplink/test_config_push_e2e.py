"""Signed config push end to end: staff PUT a config through the cloud API (TestClient, with its lifespan's
publisher), a real Mosquitto carries it, a real ``fleet-agent run`` process applies it, reports back in its
batches through the real ingest worker, and the API shows the applied version. A forged push is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from edge_agent.wire import generate_private_key, save_private_key
from edge_agent.wire.config import SignedConfig, config_topic, seal_config
from tests.edge_agent.uplink.conftest import DEVICE, Cloud, wait_for, write_agent_config

ROOT = Path(__file__).resolve().parents[3]
ADMIN = {"Authorization": "Bearer changethis"}  # the development admin token
PUSH_SECTION = """
[config_push]
fleet_key = "fleet-config.pub"
"""
FENCES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "depot", "name": "Depot", "radius_m": 250},
     "geometry": {"type": "Point", "coordinates": [11.576, 48.137]}}]}


def test_config_pushed_through_the_api_is_applied_and_reported(tmp_path: Path, cloud: Cloud,
                                                                pty: tuple[int, int]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    key = generate_private_key()
    save_private_key(key, data / "device.pem")
    cloud.register(DEVICE, key)
    cloud.start_worker()
    settings = Settings(ca_dir=tmp_path / "ca", config_broker=f"{cloud.broker.host}:{cloud.broker.port}")
    with TestClient(create_app(settings, cloud.engine)) as api:
        push = api.app.state.config_push  # type: ignore[attr-defined]
        # What enrolment hands the device: the fleet's config-signing public key, which it pins.
        (data / "fleet-config.pub").write_text(push.public_key_pem())
        assert api.get("/v1/config-signing-key").json()["public_key_pem"] == push.public_key_pem()
        config = tmp_path / "agent.toml"
        write_agent_config(config, data, os.ttyname(pty[1]), cloud.broker, extra=PUSH_SECTION)

        def status() -> dict[str, Any]:
            try:
                return json.loads((data / "status.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return {}

        def cloud_view() -> dict[str, Any]:
            r = api.get(f"/v1/vehicles/{DEVICE}/config", headers=ADMIN)
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        log = tmp_path / "agent.log"
        with open(log, "ab") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
                                    stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for(lambda: (status().get("uplink") or {}).get("connected", False), "the agent to connect")
            # Before any push the device reports it runs its agent.toml alone (version 0).
            wait_for(lambda: (cloud_view()["applied"] or {}).get("result") == "running", "the start report")
            r = api.put(f"/v1/vehicles/{DEVICE}/config", headers=ADMIN,
                        json={"thresholds": {"idle_min_duration_s": 90}, "geofences": FENCES})
            assert r.status_code == 200 and r.json()["desired"]["published_at"] is not None, r.text
            wait_for(lambda: (status().get("config") or {}).get("applied_version") == 1, "the agent to apply v1")
            wait_for(lambda: cloud_view()["in_sync"], "the cloud to show v1 applied")
            view = cloud_view()
            assert view["applied"]["applied_version"] == 1 and view["applied"]["result"] == "applied"
            assert (data / "config" / "current.cfg").exists()

            # A config signed by anyone but the fleet key, published on the device's topic: refused.
            now = time.time()
            forged = seal_config(SignedConfig(DEVICE, 2, now, now + 600, None, {"idle_min_duration_s": 1}),
                                 Ed25519PrivateKey.generate())
            intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=mqtt.MQTTv5)
            intruder.connect(cloud.broker.host, cloud.broker.port)
            intruder.loop_start()
            intruder.publish(config_topic(DEVICE), forged, qos=1).wait_for_publish(10)
            intruder.loop_stop()
            intruder.disconnect()
            wait_for(lambda: ((status().get("config") or {}).get("last_rejection") or {}).get("reason")
                     == "bad_signature", "the forged config to be refused")
            wait_for(lambda: (cloud_view()["applied"] or {}).get("result") == "rejected", "the refusal report")
            view = cloud_view()
            assert view["applied"]["applied_version"] == 1 and view["applied"]["offered_version"] is None
            assert view["desired"]["version"] == 1
            counters = status()["counters"]
            assert counters["config_applied"] == 1 and counters["config_rejected_bad_signature"] == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
        assert rc == 0, log.read_text()
        assert "config v1 applied" in log.read_text()
