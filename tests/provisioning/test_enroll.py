"""``fleet-provision enroll`` end to end: the real cloud under uvicorn, a real Mosquitto from ``broker-config``.

One cloud process (SQLite store, fleet CA directory) and one broker configured from the same CA serve
the session (``conftest.cloud``). Each test makes a device with ``fleet-provision init``, gets a token from
``fleet-cloud installer-token`` and enrols with the real command. Proven: the files and their modes,
an ``agent.toml`` the agent accepts, a certificate the broker accepts for the device's own topics only,
a re-run that changes nothing, and completion after the failures an installer meets: the cloud
unreachable, the cloud's answer lost after it enrolled the device, a run killed mid-write.
"""

from __future__ import annotations

import json
import random
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from cloud_sync.store import make_engine
from cloud_sync.store.devices import get_device
from edge_agent.config import load_config
from edge_agent.wire import decode_ack
from edge_agent.wire.sign import load_private_key
from provisioning.enroll import AGENT_TOML, CA_CHAIN, MARKER, STAGING, TLS_CERT
from provisioning.identity import SIGNING_KEY, TLS_CSR, TLS_KEY, load_identity
from tests.cloud_sync.helpers import SimDevice
from tests.cloud_sync.mqtt_tls import connect
from tests.mqtt_broker import Proc
from tests.provisioning.cloud_rig import PROFILE, VIN, Cloud, enroll_args, provision

NOT_AUTHORIZED = 0x87


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def assert_enrolled(d: Path, cloud: Cloud) -> str:
    """Every file in place with the right mode, a config the agent loads, a certificate for our key."""
    ident = load_identity(d)
    for name in (SIGNING_KEY, TLS_KEY):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    assert not (d / STAGING).exists()
    marker = json.loads((d / MARKER).read_text())
    assert marker["device_id"] == ident.device_id and marker["vin"] == VIN
    config = load_config(d / AGENT_TOML)
    assert (config.device_id, config.profile) == (ident.device_id, PROFILE)
    up = config.uplink
    assert up is not None and (up.host, up.port) == ("127.0.0.1", cloud.broker.port)
    assert up.tls_cert == d / TLS_CERT and up.tls_ca == d / CA_CHAIN and up.signing_key == d / SIGNING_KEY
    cert = x509.load_pem_x509_certificate((d / TLS_CERT).read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((d / CA_CHAIN).read_bytes()))
    assert cert.public_key() == x509.load_pem_x509_csr((d / TLS_CSR).read_bytes()).public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ident.device_id
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        device = get_device(conn, ident.device_id)
    engine.dispose()
    assert device is not None and device.vin == VIN and device.public_key_pem == ident.signing_public_pem()
    return ident.device_id


def test_enrol_end_to_end_then_talk_to_the_broker(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    assert provision("init", "--dir", str(d)).returncode == 0
    out = provision(*enroll_args(d, cloud.url, cloud.token()))
    assert out.returncode == 0, out.stderr
    assert "enrolled" in out.stdout and "wrote" in out.stdout
    device_id = assert_enrolled(d, cloud)
    before = snapshot(d)

    again = provision("--json", *enroll_args(d, cloud.url, "any-token-is-not-needed-now"))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "already_enrolled"
    assert snapshot(d) == before

    # The identity works on the broker, for this device's topics only.
    client = connect("127.0.0.1", cloud.broker.port, d / CA_CHAIN, device_id, d / TLS_CERT, d / TLS_KEY)
    try:
        assert client.connected.is_set(), client.connack
        assert not client.publish(f"fleet/v1/{device_id}/batch", b"x").is_failure
        assert client.publish("fleet/v1/someone-else/batch", b"x").value == NOT_AUTHORIZED
    finally:
        client.close()


def test_a_used_token_is_refused_and_nothing_is_written(cloud: Cloud, tmp_path: Path) -> None:
    token = cloud.token()
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        assert provision("init", "--dir", str(d)).returncode == 0
    assert provision(*enroll_args(first, cloud.url, token)).returncode == 0
    before = snapshot(second)
    out = provision("--json", *enroll_args(second, cloud.url, token))
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["error"] == "refused" and "already used" in report["message"]
    assert snapshot(second) == before and not (second / STAGING).exists()


def test_cloud_unreachable_then_rerun_completes(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    assert provision("init", "--dir", str(d)).returncode == 0
    token = cloud.token()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        out = provision(*enroll_args(d, dead, token))
    assert out.returncode == 3 and "re-run" in out.stderr
    assert not (d / MARKER).exists() and not (d / TLS_CERT).exists()
    assert provision(*enroll_args(d, cloud.url, token)).returncode == 0
    assert_enrolled(d, cloud)


def test_lost_answer_and_leftover_staging_are_resumed(cloud: Cloud, tmp_path: Path) -> None:
    """The cloud enrolled the device but its answer never arrived (the token is spent), and a killed run
    left a staging directory: the same command finishes the job without a new token."""
    d = tmp_path / "etc"
    assert provision("init", "--dir", str(d)).returncode == 0
    ident = load_identity(d)
    token = cloud.token()
    body = json.dumps({"token": token, "device_id": ident.device_id, "csr_pem": (d / TLS_CSR).read_text(),
                       "signing_public_key_pem": ident.signing_public_pem(), "vin": VIN,
                       "profile": PROFILE}).encode()
    request = urllib.request.Request(cloud.url + "/v1/enroll", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            lost = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"the cloud refused the first enrolment: {exc.code} {exc.read()!r}") from None
    (d / STAGING).mkdir()
    (d / STAGING / TLS_CERT).write_text("half a certifi")
    out = provision("--json", *enroll_args(d, cloud.url, token))
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["resumed"] is True, out.stdout
    assert_enrolled(d, cloud)
    assert (d / TLS_CERT).read_text() == lost["certificate_pem"]  # the certificate the cloud issued, once


def test_a_run_killed_between_renames_is_finished(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    assert provision("init", "--dir", str(d)).returncode == 0
    token = cloud.token()
    assert provision(*enroll_args(d, cloud.url, token)).returncode == 0
    # As if killed after the certificate moved into place and before the config and marker did.
    (d / AGENT_TOML).unlink()
    (d / MARKER).unlink()
    out = provision(*enroll_args(d, cloud.url, token))
    assert out.returncode == 0, out.stderr
    assert "resumed" in out.stdout
    assert_enrolled(d, cloud)


def test_enrolled_device_batches_reach_the_store_through_the_tls_ingest_worker(cloud: Cloud, tmp_path: Path) -> None:
    """The whole path with what provisioning produced: the device's certificate on the broker, the ingest
    worker on its own certificate (``ingest.crt`` from broker-config), the batch signed with the enrolled
    key, stored, and the ack delivered back on the device's own ack topic."""
    d = tmp_path / "etc"
    assert provision("init", "--dir", str(d)).returncode == 0
    assert provision(*enroll_args(d, cloud.url, cloud.token())).returncode == 0
    device_id = load_identity(d).device_id
    worker = Proc("cloud_sync.worker", "--broker", f"127.0.0.1:{cloud.broker.port}", "--database", cloud.db_url,
                  "--client-id", f"ingest-{device_id}", "--log-level", "WARNING", "--tls-ca", str(cloud.files.ca),
                  "--tls-cert", str(cloud.files.ingest_cert), "--tls-key", str(cloud.files.ingest_key),
                  log_path=tmp_path / "worker.log")
    client = connect("127.0.0.1", cloud.broker.port, d / CA_CHAIN, device_id, d / TLS_CERT, d / TLS_KEY)
    try:
        worker.wait_line('"subscribed"')
        assert client.connected.is_set(), client.connack
        ack_topic = f"fleet/v1/{device_id}/ack"
        assert not client.subscribe(ack_topic).is_failure
        sim = SimDevice(device_id, key=load_private_key(d / SIGNING_KEY))
        assert not client.publish(f"fleet/v1/{device_id}/batch",
                                  sim.batch(sim.records(random.Random(5), 30))).is_failure
        client.wait("the cloud's ack", lambda: bool(client.received(ack_topic)))
        ack = decode_ack(client.received(ack_topic)[0])
        assert (ack.status, ack.stored) == ("committed", 30), ack
    finally:
        client.close()
        worker.terminate()
