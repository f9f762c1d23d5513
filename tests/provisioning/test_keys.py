"""``fleet-provision rotate-key`` and ``renew`` against the real cloud (uvicorn, SQLite store).

Rotation: batches sealed before the rotation (sent before it, or still in the outbox / in flight while it
happens) and after it (new key) are all committed, none lost; the old key signs nothing newer; a forged
or replayed statement changes nothing. Renewal: a certificate inside the renewal window is replaced, a
re-run answers the same one.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud_sync.enrollment import RENEWAL_TYPE, EnrollRefused, Provisioning, renew_certificate
from cloud_sync.settings import Settings
from cloud_sync.store import make_engine
from cloud_sync.store.devices import get_device, retired_keys
from cloud_sync.store.schema import records
from edge_agent.wire.sign import load_private_key, public_key_pem
from provisioning.enroll import TLS_CERT, CloudUnreachable
from provisioning.identity import SIGNING_KEY, SIGNING_PUB, load_identity
from provisioning.keys import NEXT_KEY, ROTATION, ROTATION_TYPE, rotate_key
from tests.cloud_sync.helpers import SimDevice
from tests.provisioning.cloud_rig import Cloud, enroll_args, provision


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def send(cloud: Cloud, blob: bytes) -> dict[str, Any]:
    return post(cloud.url + "/v1/batches", blob, "application/octet-stream")[1]


def enrolled(cloud: Cloud, d: Path) -> str:
    assert provision("init", "--dir", str(d)).returncode == 0
    out = provision(*enroll_args(d, cloud.url, cloud.token()))
    assert out.returncode == 0, out.stderr
    return load_identity(d).device_id


def test_batches_before_during_and_after_a_rotation_are_all_ingested(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    device_id = enrolled(cloud, d)
    rng = random.Random(7)
    sim = SimDevice(device_id, key=load_private_key(d / SIGNING_KEY))
    t0 = time.time() - 60
    sent = send(cloud, sim.batch(sim.records(rng, 20, t0), created_at=t0))
    assert sent["status"] == "committed", sent
    # Sealed with the old key before the rotation, still in the outbox / in flight while it happens.
    waiting = [sim.batch(sim.records(rng, 20, t0 + i), created_at=t0 + 10 + i) for i in range(2)]

    out = provision("--json", "rotate-key", "--dir", str(d))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["resumed"] is False and not (d / NEXT_KEY).exists() and not (d / ROTATION).exists()
    new_key = load_private_key(d / SIGNING_KEY)
    assert public_key_pem(new_key) == (d / SIGNING_PUB).read_bytes() != public_key_pem(sim.key)

    assert [send(cloud, blob)["status"] for blob in waiting] == ["committed", "committed"]
    old_key, sim.key = sim.key, new_key
    after = send(cloud, sim.batch(sim.records(rng, 20, time.time()), created_at=time.time()))
    assert after["status"] == "committed", after
    # The retired key signs nothing sealed after the rotation.
    sim.key = old_key
    late = send(cloud, sim.batch(sim.records(rng, 5, time.time()), created_at=time.time() + 1))
    assert (late["status"], late["reason"]) == ("rejected", "bad_signature")

    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(records).where(records.c.device_id == device_id)
                              ).scalar()
        device = get_device(conn, device_id)
        retired = retired_keys(conn, device_id)
    engine.dispose()
    assert stored == 80  # 20 before + 2 x 20 during + 20 after: none lost
    assert device is not None and device.public_key_pem == public_key_pem(new_key).decode()
    assert len(retired) == 1 and retired[0].public_key_pem == public_key_pem(old_key).decode()
    assert retired[0].sealed_before == pytest.approx(report["sealed_before"])


def _statement(device_id: str, old_pem: str, new: Ed25519PrivateKey) -> str:
    return json.dumps({"type": ROTATION_TYPE, "device_id": device_id, "old_key": old_pem,
                       "new_key": public_key_pem(new).decode(), "issued_at": time.time()})


def _b64sig(key: Ed25519PrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode())).decode()


def test_forged_and_replayed_rotations_are_refused(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    device_id = enrolled(cloud, d)
    url = f"{cloud.url}/v1/devices/{device_id}/signing-key"
    current = load_private_key(d / SIGNING_KEY)
    current_pem = public_key_pem(current).decode()
    thief = Ed25519PrivateKey.generate()

    # Names the device's key as the old one, but signed by someone else's key.
    forged = _statement(device_id, current_pem, thief)
    status, answer = post(url, json.dumps({"statement": forged, "old_signature": _b64sig(thief, forged),
                                           "new_signature": _b64sig(thief, forged)}).encode())
    assert status == 403 and "old_signature" in answer["detail"]
    # Names the thief's key as the old one.
    own = _statement(device_id, public_key_pem(thief).decode(), Ed25519PrivateKey.generate())
    status, _ = post(url, json.dumps({"statement": own, "old_signature": _b64sig(thief, own),
                                      "new_signature": _b64sig(thief, own)}).encode())
    assert status == 403  # the new key's signature is checked first: the thief does not hold that key either
    # A real rotation, then its statement sent again (idempotent) and an older statement replayed (refused).
    assert provision("rotate-key", "--dir", str(d)).returncode == 0
    newer = load_private_key(d / SIGNING_KEY)
    stale = _statement(device_id, current_pem, Ed25519PrivateKey.generate())
    status, answer = post(url, json.dumps({"statement": stale, "old_signature": _b64sig(current, stale),
                                           "new_signature": "AAAA"}).encode())
    assert status == 403, answer
    stale_key = Ed25519PrivateKey.generate()
    stale = _statement(device_id, current_pem, stale_key)
    status, answer = post(url, json.dumps({"statement": stale, "old_signature": _b64sig(current, stale),
                                           "new_signature": _b64sig(stale_key, stale)}).encode())
    assert status == 409 and "not the device's current" in answer["detail"]
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        device = get_device(conn, device_id)
    engine.dispose()
    assert device is not None and device.public_key_pem == public_key_pem(newer).decode()


def test_a_rotation_whose_answer_was_lost_is_finished_by_a_rerun(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    device_id = enrolled(cloud, d)
    with socket.socket() as s:  # a port nobody listens on: the first attempt never gets an answer
        s.bind(("127.0.0.1", 0))
        with pytest.raises(CloudUnreachable):
            rotate_key(load_identity(d), f"http://127.0.0.1:{s.getsockname()[1]}")
    assert (d / ROTATION).exists() and (d / NEXT_KEY).exists()
    # ... but as if it had reached the cloud: the same saved statement is accepted there.
    status, _ = post(f"{cloud.url}/v1/devices/{device_id}/signing-key", (d / ROTATION).read_bytes())
    assert status == 200
    out = provision("--json", "rotate-key", "--dir", str(d))
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["resumed"] is True
    assert not (d / ROTATION).exists() and not (d / NEXT_KEY).exists()
    engine = make_engine(cloud.db_url)
    with engine.connect() as conn:
        device = get_device(conn, device_id)
        retired = retired_keys(conn, device_id)
    engine.dispose()
    assert device is not None and device.public_key_pem == (d / SIGNING_PUB).read_text() and len(retired) == 1


def test_renew_is_idempotent_outside_the_window(cloud: Cloud, tmp_path: Path) -> None:
    d = tmp_path / "etc"
    enrolled(cloud, d)
    before = (d / TLS_CERT).read_bytes()
    for _ in range(2):
        out = provision("--json", "renew", "--dir", str(d))
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["renewed"] is False
    assert (d / TLS_CERT).read_bytes() == before


def test_renew_inside_the_window_gets_a_new_certificate(cloud: Cloud, tmp_path: Path) -> None:
    """The cloud renews when the latest certificate is inside its window (here: a clock a day before expiry,
    and the answer lost); the device's ``renew`` then fetches that certificate, checked, into place."""
    d = tmp_path / "etc"
    device_id = enrolled(cloud, d)
    ident = load_identity(d)
    first = x509.load_pem_x509_certificate((d / TLS_CERT).read_bytes())
    request = json.dumps({"type": RENEWAL_TYPE, "device_id": device_id, "csr_pem": ident.csr.read_text(),
                          "issued_at": time.time()})
    signature = _b64sig(load_private_key(d / SIGNING_KEY), request)
    engine = make_engine(cloud.db_url)
    prov = Provisioning.from_settings(Settings.from_env(cloud.env))
    due = first.not_valid_after_utc.timestamp() - 86400
    renewed = renew_certificate(engine, prov, device_id, request, signature, now=due)
    with pytest.raises(EnrollRefused) as refused:  # the signing key is the credential
        renew_certificate(engine, prov, device_id, request, _b64sig(Ed25519PrivateKey.generate(), request), now=due)
    engine.dispose()
    assert renewed.renewed and refused.value.status == 403
    out = provision("--json", "renew", "--dir", str(d))
    assert out.returncode == 0, out.stdout + out.stderr
    assert (d / TLS_CERT).read_text() == renewed.certificate_pem
    second = x509.load_pem_x509_certificate((d / TLS_CERT).read_bytes())
    assert second.serial_number != first.serial_number and second.public_key() == first.public_key()
    assert second.subject == first.subject
