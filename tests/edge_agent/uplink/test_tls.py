"""The uplink over TLS with a client certificate (mutual TLS), against a real Mosquitto TLS listener.

A throwaway CA signs the broker's certificate (for 127.0.0.1) and the device's; the broker requires
a client certificate. A device whose CA file does not know the broker's CA never connects.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.edge_agent.uplink.conftest import DEVICE, Cloud, fast_settings, positions
from tests.mqtt_broker import Mosquitto, free_port, mosquitto_or_skip


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def make_pki(d: Path, prefix: str = "") -> dict[str, Path]:
    """CA, broker (SAN 127.0.0.1) and device certificates as PEM files in ``d``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(f"{prefix}test CA")).issuer_name(_name(f"{prefix}test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": d / f"{prefix}ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, cn, san in (("server", "broker", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                          ("device", DEVICE, [x509.DNSName(DEVICE)])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[f"{name}_cert"] = d / f"{prefix}{name}.crt"
        out[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{name}_key"] = d / f"{prefix}{name}.key"
        _write_key(key, out[f"{name}_key"])
    return out


def test_uplink_over_mutual_tls(tmp_path: Path, cloud: Cloud, make_rig) -> None:
    pki = make_pki(tmp_path)
    tls_port = free_port()
    # The plain listener (loopback) serves the ingest worker; the device uses the TLS one.
    broker = Mosquitto(mosquitto_or_skip(), tmp_path / "tls-broker", extra_config=(
        f"listener {tls_port} 127.0.0.1", f"cafile {pki['ca']}", f"certfile {pki['server_cert']}",
        f"keyfile {pki['server_key']}", "require_certificate true"))
    broker.start()
    cloud.broker = broker
    try:
        rig = make_rig(fast_settings(broker, port=tls_port, tls_ca=pki["ca"], tls_cert=pki["device_cert"],
                                     tls_key=pki["device_key"]))
        cloud.register(DEVICE, rig.key)
        cloud.start_worker()
        rig.outbox.append(positions(300))
        rig.pump(lambda: rig.outbox.depth() == 0, "the outbox to drain over TLS")
        assert [r.payload["n"] for r in cloud.records()] == list(range(300))
        assert rig.counters.get("mqtt_connect_failures") == 0

        # A device that trusts another CA refuses the broker's certificate and keeps its rows.
        other = make_pki(tmp_path, prefix="other-")
        stranger = make_rig(fast_settings(broker, port=tls_port, tls_ca=other["ca"], tls_cert=pki["device_cert"],
                                          tls_key=pki["device_key"]), outbox_name="stranger.db")
        stranger.outbox.append(positions(10))
        stranger.pump(lambda: stranger.counters.get("mqtt_connect_failures") >= 2, "refused TLS handshakes")
        assert not stranger.uplink.transport.connected and stranger.outbox.depth() == 10
    finally:
        cloud.stop_workers()
        broker.stop()
