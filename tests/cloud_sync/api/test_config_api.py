"""Signed config pushes through the API (TestClient) over real SQLite and PostgreSQL stores, and a real Mosquitto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.store.devices import revoke_device
from edge_agent.wire import WireRecord
from edge_agent.wire.config import CONFIG_STATUS_KIND, MAX_CONFIG_BYTES, config_topic, open_config, status_payload
from edge_agent.wire.sign import load_public_key_pem
from tests.cloud_sync.helpers import T0, SimDevice
from tests.mqtt_broker import Mosquitto

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
STAFF = {"Authorization": "Bearer staff-secret-for-tests-0123456789"}
#: A hang guard for waits on a real broker, not a speed assertion.
WAIT_S = 30.0


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(environment="production", admin_token=ADMIN["Authorization"][7:],
                    staff_token=STAFF["Authorization"][7:], ca_dir=tmp_path / "ca", **extra)


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), engine)) as c:
        yield c


def _device(engine: Engine, name: str = "truck-1") -> SimDevice:
    dev = SimDevice(name)
    dev.register(engine, depot="north")
    return dev


def _fence(pad: int = 0) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "yard", "radius_m": 120, "pad": "x" * pad},
         "geometry": {"type": "Point", "coordinates": [11.5, 48.1]}}]}


def test_put_signs_stores_and_counts_versions(client: TestClient, engine: Engine) -> None:
    _device(engine)
    assert client.get("/v1/config-signing-key").status_code == 404  # nothing signed yet, nothing created
    body = {"thresholds": {"idle_min_duration_s": 120}, "geofences": _fence(), "ttl_s": 3600}
    r = client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["desired"]["version"] == 1 and doc["desired"]["thresholds"] == {"idle_min_duration_s": 120.0}
    assert doc["desired"]["published_at"] is None  # no broker configured: stored, waiting
    assert doc["desired"]["created_by"] == "settings:admin"
    assert doc["applied"] is None and doc["in_sync"] is False
    assert doc["desired"]["expires_at"] - doc["desired"]["issued_at"] == 3600
    assert client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json={"profile": "light_obd2"}
                      ).json()["desired"]["version"] == 2
    got = client.get("/v1/vehicles/truck-1/config", headers=STAFF).json()
    assert got["desired"]["version"] == 2 and got["desired"]["profile"] == "light_obd2"
    assert got["desired"]["geofences"] is None  # each version is whole, not a patch
    # The stored envelope verifies with the public key devices pin.
    key = load_public_key_pem(client.get("/v1/config-signing-key").json()["public_key_pem"].encode())
    push = client.app.state.config_push  # type: ignore[attr-defined]
    from cloud_sync.store.configs import latest_config
    with engine.connect() as conn:
        stored = latest_config(conn, "truck-1")
    assert stored is not None and open_config(stored.sealed, key).version == 2
    assert push.settings.key_path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("body", "status"), [
    ({"profile": "../etc"}, 422), ({"profile": "a.b"}, 422), ({"thresholds": {"x": "hot"}}, 422),
    ({"ttl_s": 1}, 422), ({"ttl_s": 10 * 365 * 86400}, 422), ({"unknown": 1}, 422),
    ({"geofences": [1, 2]}, 422), ({"geofences": _fence(MAX_CONFIG_BYTES)}, 413),
])
def test_put_refuses_bad_bodies(client: TestClient, engine: Engine, body: dict[str, Any], status: int) -> None:
    _device(engine)
    r = client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json=body)
    assert r.status_code == status, r.text
    assert client.get("/v1/vehicles/truck-1/config", headers=ADMIN).json()["desired"] is None


def test_nan_threshold_is_refused(client: TestClient, engine: Engine) -> None:
    _device(engine)
    r = client.put("/v1/vehicles/truck-1/config", headers={**ADMIN, "Content-Type": "application/json"},
                   content=b'{"thresholds": {"x": NaN}}')
    assert r.status_code == 422


def test_who_may_push(client: TestClient, engine: Engine) -> None:
    _device(engine)
    assert client.put("/v1/vehicles/truck-1/config", json={}).status_code == 401
    assert client.put("/v1/vehicles/truck-1/config", headers=STAFF, json={}).status_code == 403
    assert client.put("/v1/vehicles/nobody/config", headers=ADMIN, json={}).status_code == 404
    with engine.begin() as conn:
        revoke_device(conn, "truck-1")
    assert client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json={}).status_code == 409
    assert client.post("/v1/vehicles/truck-1/config/publish", headers=ADMIN).status_code == 404  # none saved


def test_applied_version_comes_from_the_devices_reports(client: TestClient, engine: Engine) -> None:
    dev = _device(engine)
    client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json={"thresholds": {"a": 1}})
    health = client.get("/v1/vehicles/truck-1/health", headers=STAFF).json()
    assert (health["config_desired_version"], health["config_applied_version"]) == (1, None)  # no report yet
    report = status_payload(1, "applied", 1)
    rejected = status_payload(1, "rejected", 2, "expired: expired 5 s ago")
    blob = dev.batch([WireRecord(1, CONFIG_STATUS_KIND, 20, T0, T0 + 0.1, report)])
    assert client.post("/v1/batches", content=blob, headers={"Content-Type": "application/octet-stream"}
                       ).json()["status"] == "committed"
    got = client.get("/v1/vehicles/truck-1/config", headers=STAFF).json()
    assert got["applied"]["applied_version"] == 1 and got["applied"]["result"] == "applied" and got["in_sync"]
    blob = dev.batch([WireRecord(2, CONFIG_STATUS_KIND, 20, T0 + 5, T0 + 5.1, rejected)])
    client.post("/v1/batches", content=blob, headers={"Content-Type": "application/octet-stream"})
    got = client.get("/v1/vehicles/truck-1/config", headers=STAFF).json()["applied"]
    assert (got["applied_version"], got["result"], got["offered_version"]) == (1, "rejected", 2)
    assert got["reason"].startswith("expired")
    health = client.get("/v1/vehicles/truck-1/health", headers=STAFF).json()  # next to the data health
    assert (health["config_desired_version"], health["config_applied_version"], health["config_reported_at"]) == (
        1, 1, T0 + 5)


class Subscriber:
    """A plain MQTT client reading the device's retained config topic, as a device would."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self.got = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sub", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((bytes(message.payload), bool(message.retain)))
        self.got.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_stored_without_broker_then_published_retained_when_it_connects(tmp_path: Path, broker: Mosquitto) -> None:
    from cloud_sync.store import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    migrate(engine)
    _device(engine)
    app = create_app(_settings(tmp_path, config_broker=f"{broker.host}:{broker.port}"), engine)
    client = TestClient(app)  # no lifespan yet: the publisher is not running, as with the broker down
    first = client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json={"thresholds": {"a": 1}}).json()
    assert first["desired"]["published_at"] is None
    with client:  # the API process starts: the publisher connects and sends what waited
        _wait(lambda: client.get("/v1/vehicles/truck-1/config", headers=ADMIN).json()["desired"]["published_at"],
              "the pending config to be published")
        sub = Subscriber(broker, config_topic("truck-1"))
        try:
            _wait(sub.got.is_set, "the retained config")
            blob, retained = sub.messages[0]
            key = load_public_key_pem(client.get("/v1/config-signing-key").json()["public_key_pem"].encode())
            assert retained and open_config(blob, key).version == 1
            # Saved while connected: published at once; on demand: the same bytes again.
            second = client.put("/v1/vehicles/truck-1/config", headers=ADMIN, json={"thresholds": {"a": 2}}).json()
            assert second["desired"]["published_at"] is not None
            _wait(lambda: len(sub.messages) >= 2, "the second config")
            again = client.post("/v1/vehicles/truck-1/config/publish", headers=ADMIN)
            assert again.status_code == 200 and again.json()["desired"]["version"] == 2
            _wait(lambda: len(sub.messages) >= 3, "the re-published config")
            assert sub.messages[2][0] == sub.messages[1][0] and open_config(sub.messages[2][0], key).version == 2
        finally:
            sub.close()
    engine.dispose()


def test_enrolment_hands_out_the_key_devices_pin(client: TestClient) -> None:
    from tests.cloud_sync.api.test_provisioning import DeviceKeys

    token = client.post("/v1/installer-tokens", headers=ADMIN, json={"depot": "north", "ttl_s": 600}).json()["token"]
    r = client.post("/v1/enroll", json=DeviceKeys().body(token, "truck-5"))
    assert r.status_code == 200, r.text
    pem = r.json()["agent_config"]["config_push"]["fleet_key_pem"]
    assert pem == client.get("/v1/config-signing-key").json()["public_key_pem"]
    # and the key that signs this device's configs is that one
    client.put("/v1/vehicles/truck-5/config", headers=ADMIN, json={"thresholds": {"a": 1}})
    push = client.app.state.config_push  # type: ignore[attr-defined]
    from cloud_sync.store.configs import latest_config
    with push.engine.connect() as conn:
        stored = latest_config(conn, "truck-5")
    assert open_config(stored.sealed, load_public_key_pem(pem.encode())).device_id == "truck-5"
