"""The generated Mosquitto configuration, run by a real Mosquitto and probed by real paho v5 clients over TLS.

Each device holds a certificate from the fleet CA naming it; the ACL lets it publish only its own
``fleet/v1/<id>/...`` up topics and read only its own ack and config. Proven here: A publishes its own
batches, cannot publish as B (PUBACK 0x87 and the ingest subscriber never sees it), cannot read B's
acks, a client without a certificate (or with another CA's) never connects, and after A is revoked in
the store and ``fleet-cloud broker-config`` is re-run, a reloaded broker refuses A's certificate.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cloud_sync import cli
from cloud_sync.broker_config import BrokerFiles, acl_text, write_broker_config
from cloud_sync.ca import INGEST_IDENTITY, FleetCA, create_ca, save_ca
from cloud_sync.store import make_engine, migrate
from cloud_sync.store.devices import add_device, revoke_device
from cloud_sync.store.provisioning import add_certificate
from tests.cloud_sync.mqtt_tls import Client, connect, device_identity
from tests.mqtt_broker import Mosquitto, mosquitto_or_skip

NOT_AUTHORIZED = 0x87  # MQTT v5 2.4 reason code "Not authorized"
SIGNING_PEM = ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
               "-----END PUBLIC KEY-----\n")


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca_dir = tmp / "ca"
        self.ca: FleetCA = create_ca()
        save_ca(self.ca, self.ca_dir)
        self.out = tmp / "broker"
        self.db_url = f"sqlite:///{tmp / 'cloud.db'}"
        self.engine: Engine = make_engine(self.db_url)
        migrate(self.engine)
        self.broker = Mosquitto(mosquitto_or_skip(), tmp / "mosq")
        self.ids = {d: device_identity(self.ca, d, tmp) for d in ("truck-a", "truck-b")}
        with self.engine.begin() as conn:
            for d, (_c, _k, cert) in self.ids.items():
                add_device(conn, d, SIGNING_PEM)
                add_certificate(conn, d, cert)
        self.files = self.configure()
        self.broker.config = self.files.conf
        self.broker.start()

    def configure(self) -> BrokerFiles:
        """Through the real command, as an operator runs it (revoked certificates come from the store)."""
        rc = cli.main(["--database-url", self.db_url, "broker-config", "--out", str(self.out), "--ca-dir",
                       str(self.ca_dir), "--port", str(self.broker.port), "--bind", "127.0.0.1",
                       "--user", pwd.getpwuid(os.getuid()).pw_name])
        assert rc == 0
        return BrokerFiles(*(self.out / n for n in ("mosquitto.conf", "acl", "ca.pem", "crl.pem", "server.crt",
                                                   "server.key", "ingest.crt", "ingest.key")))

    def device(self, device_id: str, name: str | None = None) -> Client:
        cert, key, _ = self.ids[device_id]
        return connect("127.0.0.1", self.broker.port, self.files.ca, name or device_id, cert, key)

    def ingest(self) -> Client:
        return connect("127.0.0.1", self.broker.port, self.files.ca, "ingest-1", self.files.ingest_cert,
                       self.files.ingest_key)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.broker.stop()
        f.engine.dispose()


def test_acl_names_only_own_topics() -> None:
    text = acl_text()
    assert "pattern write fleet/v1/%u/batch" in text
    assert "pattern read fleet/v1/%u/ack" in text and "pattern read fleet/v1/%u/config" in text
    assert f"user {INGEST_IDENTITY}\n" in text
    # No rule hands devices a wildcard over other ids.
    assert not any(line.startswith("pattern") and "+" in line for line in text.splitlines())


def test_generated_files_and_key_permissions(tmp_path: Path) -> None:
    ca = create_ca()
    files = write_broker_config(tmp_path / "b", ca, [], port=18883, bind="127.0.0.1")
    conf = files.conf.read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "allow_anonymous false",
                 f"crlfile {files.crl}", "listener 18883 127.0.0.1"):
        assert line in conf.splitlines()
    for key in (files.server_key, files.ingest_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = files.server_cert.read_bytes()
    again = write_broker_config(tmp_path / "b", ca, [], port=18883, bind="127.0.0.1")
    assert again.server_cert.read_bytes() == server  # kept: still valid, same hosts
    other = write_broker_config(tmp_path / "b", ca, [], hosts=["broker.example"], port=18883)
    assert other.server_cert.read_bytes() != server  # new hosts: a new certificate


def test_device_publishes_only_as_itself(fleet: Fleet) -> None:
    ingest = fleet.ingest()
    a = fleet.device("truck-a")
    try:
        assert ingest.connected.is_set(), ingest.connack
        assert a.connected.is_set(), a.connack
        assert not ingest.subscribe("$share/ingest/fleet/v1/+/batch").is_failure
        forged = a.publish("fleet/v1/truck-b/batch", b"forged by a")
        assert forged.value == NOT_AUTHORIZED
        assert a.publish("fleet/v1/truck-b/status", b"x").value == NOT_AUTHORIZED
        assert a.publish("fleet/v1/truck-a/ack", b"self-ack").value == NOT_AUTHORIZED
        assert not a.publish("fleet/v1/truck-a/batch", b"from a").is_failure
        ingest.wait("A's batch", lambda: bool(ingest.received("fleet/v1/truck-a/batch")))
        # A's own batch (published after the forged one) arrived; the forged one never does.
        assert ingest.received("fleet/v1/truck-a/batch") == [b"from a"]
        assert ingest.received("fleet/v1/truck-b/batch") == []
    finally:
        a.close()
        ingest.close()


def test_device_reads_only_its_own_acks(fleet: Fleet) -> None:
    ingest, a, b = fleet.ingest(), fleet.device("truck-a"), fleet.device("truck-b")
    try:
        assert a.connected.is_set() and b.connected.is_set() and ingest.connected.is_set()
        assert not b.subscribe("fleet/v1/truck-b/ack").is_failure
        assert not a.subscribe("fleet/v1/truck-a/ack").is_failure
        # Mosquitto 2.0's acl_file grants SUBSCRIBE and enforces "read" when delivering (newer releases
        # may answer 0x87 instead); either way, nothing of B's may reach A through these subscriptions.
        a.subscribe("fleet/v1/truck-b/ack")
        a.subscribe("fleet/v1/+/ack")
        a.subscribe("#")
        assert not ingest.publish("fleet/v1/truck-b/ack", b"ack for b").is_failure
        assert not ingest.publish("fleet/v1/truck-b/config", b"config for b").is_failure
        assert not ingest.publish("fleet/v1/truck-a/ack", b"ack for a").is_failure
        b.wait("B's ack", lambda: bool(b.received("fleet/v1/truck-b/ack")))
        # A's own ack was published last by the same client: once it is here, B's would have been too.
        a.wait("A's ack", lambda: bool(a.received("fleet/v1/truck-a/ack")))
        with a.lock:
            # (once per matching subscription: overlapping subscriptions each deliver a copy)
            assert {t for t, _ in a.messages} == {"fleet/v1/truck-a/ack"}
        assert b.received("fleet/v1/truck-b/ack") == [b"ack for b"]
    finally:
        for c in (a, b, ingest):
            c.close()


def test_clients_without_a_fleet_certificate_cannot_connect(fleet: Fleet, tmp_path: Path) -> None:
    anonymous = connect("127.0.0.1", fleet.broker.port, fleet.files.ca, "anon")
    assert not anonymous.connected.is_set()
    stranger_ca = create_ca("Stranger CA")
    cert, key, _ = device_identity(stranger_ca, "truck-a", tmp_path / "mosq")
    stranger = connect("127.0.0.1", fleet.broker.port, fleet.files.ca, "stranger", cert, key)
    assert not stranger.connected.is_set()
    ok = fleet.device("truck-a")  # the broker is still serving fleet devices
    assert ok.connected.is_set()
    ok.close()


@pytest.mark.parametrize("reload", ["sighup", "restart"])
def test_revoked_device_is_refused_after_reload(fleet: Fleet, reload: str) -> None:
    before = fleet.device("truck-a", "a-before")
    assert before.connected.is_set()
    before.close()
    with fleet.engine.begin() as conn:
        assert revoke_device(conn, "truck-a")
    fleet.configure()
    if reload == "sighup":
        assert fleet.broker.proc is not None
        fleet.broker.proc.send_signal(signal.SIGHUP)
    else:
        fleet.broker.stop()
        fleet.broker.start()
    # After a SIGHUP the broker applies the new CRL to new connections; poll until it has reloaded.
    refused = False
    for _ in range(50):
        a = fleet.device("truck-a", "a-after")
        if not a.connected.is_set():
            refused = True
            break
        a.close()
    assert refused, "the revoked certificate was still accepted"
    b = fleet.device("truck-b")
    assert b.connected.is_set(), "an unrevoked device must keep connecting"
    b.close()
