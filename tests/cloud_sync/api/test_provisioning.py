"""Installer tokens and enrolment through the HTTP API, over real SQLite and PostgreSQL stores."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from cloud_sync.ca import create_ca
from cloud_sync.enrollment import Provisioning
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.store.devices import get_device, revoke_device
from cloud_sync.store.provisioning import create_token, get_token, installer_tokens
from edge_agent.wire.sign import public_key_pem
from tests.cloud_sync.helpers import SimDevice

ADMIN = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
VIN = "1M8GDM9AXKP042788"


@pytest.fixture
def client(engine):
    settings = Settings(environment="production", admin_token=ADMIN["Authorization"][7:])
    app = create_app(settings, engine)
    app.state.provisioning = Provisioning(create_ca(), "broker.test", 18883)
    with TestClient(app) as c:
        yield c


class DeviceKeys:
    def __init__(self) -> None:
        self.tls = ec.generate_private_key(ec.SECP256R1())
        self.signing = Ed25519PrivateKey.generate()

    def csr(self) -> str:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(self.tls, hashes.SHA256()))
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def body(self, token: str, device_id: str, **extra: Any) -> dict[str, Any]:
        return {"token": token, "device_id": device_id, "csr_pem": self.csr(),
                "signing_public_key_pem": public_key_pem(self.signing).decode(), "vin": VIN,
                "profile": "heavy_truck_j1939", **extra}


def _token(client, depot: str = "depot-north", ttl_s: float = 3600) -> str:
    r = client.post("/v1/installer-tokens", headers=ADMIN, json={"depot": depot, "ttl_s": ttl_s})
    assert r.status_code == 201, r.text
    assert r.json()["depot"] == depot and r.json()["expires_at"] > time.time()
    return str(r.json()["token"])


def test_installer_tokens_need_the_admin_and_are_stored_hashed(client, engine):
    assert client.post("/v1/installer-tokens", json={"depot": "d"}).status_code == 401
    assert client.post("/v1/installer-tokens", headers=ADMIN, json={"depot": "d", "ttl_s": 0}).status_code == 422
    assert client.post("/v1/installer-tokens", headers=ADMIN,
                       json={"depot": "d", "ttl_s": 30 * 86400}).status_code == 422
    token = _token(client)
    with engine.connect() as conn:
        stored = conn.execute(installer_tokens.select()).all()
        assert get_token(conn, token) is not None
    assert len(stored) == 1 and token.encode() not in stored[0].token_hash  # only a hash is kept


def test_enrol_registers_the_device_and_returns_a_working_identity(client, engine):
    keys = DeviceKeys()
    r = client.post("/v1/enroll", json=keys.body(_token(client), "truck-9"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resumed"] is False and out["depot"] == "depot-north"
    assert (out["broker_host"], out["broker_port"]) == ("broker.test", 18883)
    assert out["agent_config"] == {"agent": {"device_id": "truck-9", "profile": "heavy_truck_j1939"},
                                   "uplink": {"host": "broker.test", "port": 18883}}
    ca = x509.load_pem_x509_certificate(out["ca_chain_pem"].encode())
    cert = x509.load_pem_x509_certificate(out["certificate_pem"].encode())
    verification.PolicyBuilder().store(verification.Store([ca])).build_client_verifier().verify(cert, [])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "truck-9"
    assert cert.public_key() == keys.tls.public_key()
    with engine.connect() as conn:
        device = get_device(conn, "truck-9")
    assert device is not None and (device.vin, device.profile, device.depot) == (VIN, "heavy_truck_j1939",
                                                                                 "depot-north")
    # The signing key registered is the one the device holds: its batches are accepted.
    sim = SimDevice("truck-9", key=keys.signing)
    ack = client.post("/v1/batches", content=sim.batch(sim.records(random.Random(1), 20)),
                      headers={"Content-Type": "application/octet-stream"})
    assert ack.status_code == 200 and ack.json()["status"] == "committed", ack.text


def test_a_token_enrols_once(client):
    token = _token(client)
    assert client.post("/v1/enroll", json=DeviceKeys().body(token, "truck-1")).status_code == 200
    again = client.post("/v1/enroll", json=DeviceKeys().body(token, "truck-2"))
    assert again.status_code == 409 and "already used" in again.json()["detail"]
    assert "truck-1" in again.json()["detail"]


def test_unknown_and_expired_tokens_are_refused_clearly(client, engine):
    unknown = client.post("/v1/enroll", json=DeviceKeys().body("not-a-token", "truck-1"))
    assert unknown.status_code == 401 and "unknown installer token" in unknown.json()["detail"]
    with engine.begin() as conn:
        old, _ = create_token(conn, "depot-south", 60, now=time.time() - 120)
    expired = client.post("/v1/enroll", json=DeviceKeys().body(old, "truck-1"))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    with engine.connect() as conn:
        assert get_device(conn, "truck-1") is None  # nothing half-registered


def test_resume_is_idempotent_and_other_keys_are_refused(client, engine):
    keys, token = DeviceKeys(), _token(client)
    first = client.post("/v1/enroll", json=keys.body(token, "truck-3")).json()
    again = client.post("/v1/enroll", json=keys.body(token, "truck-3"))
    assert again.status_code == 200 and again.json()["resumed"] is True
    assert again.json()["certificate_pem"] == first["certificate_pem"]
    impostor = client.post("/v1/enroll", json=DeviceKeys().body(token, "truck-3"))
    assert impostor.status_code == 409 and "different keys" in impostor.json()["detail"]
    half = DeviceKeys()
    half.signing = keys.signing  # same signing key, new TLS key: still not the enrolled identity
    assert client.post("/v1/enroll", json=half.body(token, "truck-3")).status_code == 409
    other_token = client.post("/v1/enroll", json=keys.body(_token(client), "truck-3"))
    assert other_token.status_code == 409 and "another installer token" in other_token.json()["detail"]
    with engine.begin() as conn:
        revoke_device(conn, "truck-3")
    revoked = client.post("/v1/enroll", json=keys.body(token, "truck-3"))
    assert revoked.status_code == 409 and "revoked" in revoked.json()["detail"]


@pytest.mark.parametrize("field,value", [("csr_pem", "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n"),
                                         ("signing_public_key_pem", "nonsense"), ("vin", "1M8GDM9AXKP04278O"),
                                         ("device_id", "a/b"), ("profile", "../etc")])
def test_bad_fields_are_422_and_do_not_consume_the_token(client, engine, field, value):
    token = _token(client)
    body = DeviceKeys().body(token, "truck-4")
    body[field] = value
    r = client.post("/v1/enroll", json=body)
    assert r.status_code == 422, r.text
    with engine.connect() as conn:
        found = get_token(conn, token)
    assert found is not None and found.used_at is None


def test_racing_installers_with_one_token_one_wins(client):
    token = _token(client)
    results: list[int] = []
    bodies = [DeviceKeys().body(token, f"race-{i}") for i in range(4)]

    def go(body: dict[str, Any]) -> None:
        results.append(client.post("/v1/enroll", json=body).status_code)

    threads = [threading.Thread(target=go, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409]


def test_tokens_never_look_like_an_option_to_the_installer_cli(engine, monkeypatch):
    # token_urlsafe starts with "-" one time in 64; `fleet-provision enroll --token -x...` would be refused.
    from cloud_sync.store import provisioning as store_provisioning
    from provisioning.cli import build_parser

    monkeypatch.setattr(store_provisioning.secrets, "token_urlsafe", lambda n: "-" + "A" * (n - 1))
    with engine.begin() as conn:
        token, _ = store_provisioning.create_token(conn, "depot-north", 600)
        assert get_token(conn, token) is not None
    args = build_parser().parse_args(["enroll", "--cloud", "http://c", "--token", token, "--vehicle", VIN,
                                      "--profile", "heavy_truck_j1939"])
    assert args.token == token
