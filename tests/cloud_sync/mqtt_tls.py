"""Helpers for tests against a fleet broker: issue device certificates, connect paho v5 clients over mutual TLS."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.ca import FleetCA, write_private

#: Longest a test waits for the broker to answer (a deadline for a hang, not a speed assertion).
WAIT_S = 10.0


def device_identity(ca: FleetCA, device_id: str, d: Path) -> tuple[Path, Path, x509.Certificate]:
    """A device key made here (as the device would) and its certificate from ``ca``: (cert, key, cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])).sign(key, hashes.SHA256()))
    cert = ca.issue_device_cert(csr.public_bytes(serialization.Encoding.PEM), device_id)
    cert_path, key_path = d / f"{device_id}.crt", d / f"{device_id}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return cert_path, key_path, cert


@dataclass
class Client:
    """A paho MQTT v5 client on its own network thread, recording what the broker answers."""

    name: str
    mqtt: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    connack: ReasonCode | None = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def wait(self, what: str, predicate: Any) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.01)
        raise AssertionError(f"{self.name}: no {what} within {WAIT_S} s")

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.mqtt.publish(topic, payload, qos=1)
        self.wait(f"PUBACK for {topic}", lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> ReasonCode:
        _rc, mid = self.mqtt.subscribe(topic, qos=1)
        assert mid is not None
        self.wait(f"SUBACK for {topic}", lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def connect(host: str, port: int, ca_file: Path, name: str, cert: Path | None = None,
            key: Path | None = None) -> Client:
    """Connect and wait for the outcome: ``client.connected`` is set only on a successful CONNACK."""
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    paho.tls_set(ca_certs=str(ca_file), certfile=str(cert) if cert else None, keyfile=str(key) if key else None,
                 cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client = Client(name, paho)

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        client.connack = rc
        if not rc.is_failure:
            client.connected.set()
        else:
            client.gone.set()

    def on_disconnect(_c: mqtt.Client, _u: Any, _f: Any, _rc: ReasonCode, _p: Properties | None) -> None:
        client.gone.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with client.lock:
            client.messages.append((msg.topic, bytes(msg.payload)))

    def on_publish(_c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties) -> None:
        with client.lock:
            client.pubacks[mid] = rc

    def on_subscribe(_c: mqtt.Client, _u: Any, mid: int, rcs: list[ReasonCode], _p: Properties) -> None:
        with client.lock:
            client.subacks[mid] = rcs

    paho.on_connect, paho.on_disconnect, paho.on_message = on_connect, on_disconnect, on_message
    paho.on_publish, paho.on_subscribe = on_publish, on_subscribe
    try:
        paho.connect(host, port, keepalive=30)
    except (OSError, ssl.SSLError):
        client.gone.set()
        return client
    paho.loop_start()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (client.connected.is_set() or client.gone.is_set()):
        time.sleep(0.01)
    if not client.connected.is_set():
        paho.loop_stop()
    return client
