"""``fleet-provision rotate-key`` and ``renew``: the device rolls its signing key, or renews its TLS certificate.

Rotation. A new Ed25519 key is made on the device (``signing.key.next``, 0600); a statement naming the
device, the old and the new public key and the device time ``issued_at`` is signed by the old key (the
cloud's credential) and by the new one (proof of possession), kept in ``rotation.json``, and posted. Once
the cloud accepts it, the new key replaces ``signing.key`` (``os.replace``) and ``rotation.json`` goes.
The cloud keeps accepting batches the old key sealed up to ``issued_at`` (the outbox and paho's in-flight
batches), so nothing is lost. A running agent needs no restart: its uplink seals nothing while ``.next``
exists and takes the new ``signing.key`` at the next batch (``edge_agent.uplink.signing``), so ``.next`` is
written before ``issued_at`` is read, and renamed over ``signing.key`` only once the cloud holds the new key.

Every step is resumable: a re-run re-sends the same saved statement (the cloud answers ``resumed``), and a
run killed after the cloud accepted finishes the file swap. Renewal sends the CSR of the device's TLS key
signed by the signing key; the cloud issues a new certificate only inside its renewal window, so a re-run
gets the same one. The certificate is checked (our key, the CA we hold) before it replaces ``tls.crt``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.wire.sign import load_private_key, private_key_pem, public_key_pem
from provisioning.enroll import CA_CHAIN, MARKER, TLS_CERT, _check_answer, post_json
from provisioning.identity import SIGNING_KEY, SIGNING_PUB, Identity, ProvisionError, write_private, write_public

NEXT_KEY = SIGNING_KEY + ".next"
ROTATION = "rotation.json"
ROTATION_TYPE = "fleet-key-rotation/v1"  # cloud_sync.enrollment.ROTATION_TYPE
RENEWAL_TYPE = "fleet-cert-renewal/v1"  # cloud_sync.enrollment.RENEWAL_TYPE


@dataclass(frozen=True)
class RotationResult:
    device_id: str
    fingerprint: str
    sealed_before: float
    resumed: bool


@dataclass(frozen=True)
class RenewalResult:
    device_id: str
    renewed: bool
    not_after: str


def _cloud(ident: Identity) -> str:
    try:
        return str(json.loads((ident.dir / MARKER).read_text(encoding="utf-8"))["cloud"])
    except (OSError, ValueError, KeyError):
        raise ProvisionError(f"{ident.device_id} is not enrolled: run `fleet-provision enroll` first") from None


def _sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode("ascii")


def rotate_key(ident: Identity, cloud: str | None = None) -> RotationResult:
    """Roll the signing key (or finish a rotation an earlier run started); see the module docstring."""
    cloud = cloud or _cloud(ident)
    d = ident.dir
    saved = d / ROTATION
    if saved.exists():
        body = json.loads(saved.read_text(encoding="utf-8"))
    else:
        if not (d / NEXT_KEY).exists():
            # First, before issued_at is read: a running agent stops sealing while it exists.
            write_private(d / NEXT_KEY, private_key_pem(Ed25519PrivateKey.generate()))
        old, new = load_private_key(ident.signing_key), load_private_key(d / NEXT_KEY)
        statement = json.dumps({"type": ROTATION_TYPE, "device_id": ident.device_id,
                                "old_key": public_key_pem(old).decode("ascii"),
                                "new_key": public_key_pem(new).decode("ascii"), "issued_at": time.time()},
                               sort_keys=True)
        body = {"statement": statement, "old_signature": _sign(old, statement.encode("utf-8")),
                "new_signature": _sign(new, statement.encode("utf-8"))}
        write_public(saved, json.dumps(body).encode("utf-8"))  # before sending: a re-run sends these bytes again
    answer = post_json(f"{cloud.rstrip('/')}/v1/devices/{ident.device_id}/signing-key", body)
    new_pem = json.loads(body["statement"])["new_key"]
    if (d / NEXT_KEY).exists():
        if public_key_pem(load_private_key(d / NEXT_KEY)).decode("ascii") != new_pem:
            raise ProvisionError(f"{d / NEXT_KEY} is not the key of {saved}; move both away and re-run")
        (d / NEXT_KEY).replace(ident.signing_key)  # a running agent's uplink takes it at its next batch
    elif public_key_pem(load_private_key(ident.signing_key)).decode("ascii") != new_pem:
        raise ProvisionError(f"{saved} names a new key this device does not hold; move it away and re-run")
    write_public(d / SIGNING_PUB, new_pem.encode("ascii"))
    saved.unlink()
    return RotationResult(ident.device_id, str(answer["fingerprint"]), float(answer["sealed_before"]),
                          bool(answer["resumed"]))


def renew(ident: Identity, cloud: str | None = None) -> RenewalResult:
    """Ask the cloud for a certificate for the device's TLS key; replace ``tls.crt`` when it is a new one."""
    cloud = cloud or _cloud(ident)
    request = json.dumps({"type": RENEWAL_TYPE, "device_id": ident.device_id, "issued_at": time.time(),
                          "csr_pem": ident.csr.read_text(encoding="ascii")}, sort_keys=True)
    key = load_private_key(ident.signing_key)
    answer = post_json(f"{cloud.rstrip('/')}/v1/devices/{ident.device_id}/certificate",
                       {"request": request, "signature": _sign(key, request.encode("utf-8"))})
    held_ca = (ident.dir / CA_CHAIN).read_text(encoding="ascii")
    if answer.get("ca_chain_pem") != held_ca:
        raise ProvisionError("the cloud answered with another CA than the one this device was enrolled with; "
                             "nothing was written")
    cert = _check_answer(answer, ident)
    path: Path = ident.dir / TLS_CERT
    if path.read_text(encoding="ascii") != answer["certificate_pem"]:
        write_public(path, str(answer["certificate_pem"]).encode("ascii"))
    not_after = cert.not_valid_after_utc.isoformat(timespec="seconds")
    _update_marker(ident, not_after)
    return RenewalResult(ident.device_id, bool(answer["renewed"]), not_after)


def _update_marker(ident: Identity, not_after: str) -> None:
    marker_path = ident.dir / MARKER
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    if marker.get("not_after") != not_after:
        marker["not_after"] = not_after
        write_public(marker_path, json.dumps(marker, indent=2).encode("utf-8"))


def certificate_not_after(ident: Identity) -> str:
    cert = x509.load_pem_x509_certificate((ident.dir / TLS_CERT).read_bytes())
    return cert.not_valid_after_utc.isoformat(timespec="seconds")
