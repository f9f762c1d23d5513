"""The device's identity on disk: its Ed25519 signing key, its P-256 TLS key, a CSR, and its device id.

``init_identity(dir)`` creates whatever is missing and never replaces what exists: re-running it is
safe, and an enrolled device's keys survive a mistaken second ``fleet-provision init``. Private keys
are generated here, on the device, and written 0600 from the start (see ``cloud_sync.ca.write_private``
for why the mode is set at creation); they never leave it. Only the CSR and the signing public key go
to the cloud.

The device id defaults to ``dev-`` and the first 16 hex digits of the SHA-256 of the signing public
key: stable for the unit, unique without coordination, and valid under ``wire.model.DEVICE_ID_RE``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from edge_agent.errors import FleetError
from edge_agent.wire.model import DEVICE_ID_RE
from edge_agent.wire.sign import load_private_key, private_key_pem, public_key_pem

DEFAULT_DIR = Path("/etc/fleet-agent")
SIGNING_KEY = "signing.key"
SIGNING_PUB = "signing.pub"
TLS_KEY = "tls.key"
TLS_CSR = "tls.csr"
IDENTITY = "identity.json"


class ProvisionError(FleetError):
    """Provisioning cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Identity:
    dir: Path
    device_id: str
    created: tuple[str, ...]  # files created by this run (empty: all were there)

    @property
    def signing_key(self) -> Path:
        return self.dir / SIGNING_KEY

    @property
    def tls_key(self) -> Path:
        return self.dir / TLS_KEY

    @property
    def csr(self) -> Path:
        return self.dir / TLS_CSR

    def signing_public_pem(self) -> str:
        return (self.dir / SIGNING_PUB).read_text(encoding="ascii")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomic and with its final mode from creation: a crash leaves the old file or none, never half a key."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_private(path: Path, data: bytes) -> None:
    _write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    _write(path, data, 0o644)


def default_device_id(signing_public_pem: bytes) -> str:
    return "dev-" + hashlib.sha256(signing_public_pem).hexdigest()[:16]


def _load_tls_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"{path}: unreadable TLS key ({exc}); move it away to generate a new identity") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProvisionError(f"{path}: not an ECDSA P-256 key")
    return key


def init_identity(directory: Path, device_id: str | None = None) -> Identity:
    """Create the missing parts of the identity in ``directory`` (see the module docstring)."""
    if device_id is not None and not DEVICE_ID_RE.fullmatch(device_id):
        raise ProvisionError(f"device id {device_id!r}: use 1-64 letters, digits, '.', '_', ':' or '-'")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: list[str] = []
    signing_path = directory / SIGNING_KEY
    if not signing_path.exists():
        write_private(signing_path, private_key_pem(Ed25519PrivateKey.generate()))
        created.append(SIGNING_KEY)
    try:
        signing = load_private_key(signing_path)
    except (OSError, ValueError, TypeError) as exc:
        raise ProvisionError(f"{signing_path}: unreadable signing key ({exc}); move it away to start over") from None
    pub = public_key_pem(signing)
    if not (directory / SIGNING_PUB).exists() or (directory / SIGNING_PUB).read_bytes() != pub:
        write_public(directory / SIGNING_PUB, pub)
        created.append(SIGNING_PUB)
    ident_path = directory / IDENTITY
    if ident_path.exists():
        stored = json.loads(ident_path.read_text(encoding="utf-8"))["device_id"]
        if device_id is not None and device_id != stored:
            raise ProvisionError(f"this device is already {stored!r} ({ident_path}); an identity is not renamed")
        device_id = stored
    else:
        device_id = device_id or default_device_id(pub)
        write_public(ident_path, json.dumps({"device_id": device_id}).encode("utf-8"))
        created.append(IDENTITY)
    tls_path = directory / TLS_KEY
    if not tls_path.exists():
        write_private(tls_path, ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        created.append(TLS_KEY)
    tls_key = _load_tls_key(tls_path)
    csr_path = directory / TLS_CSR
    if not _csr_matches(csr_path, tls_key, device_id):
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
               .sign(tls_key, hashes.SHA256()))
        write_public(csr_path, csr.public_bytes(serialization.Encoding.PEM))
        created.append(TLS_CSR)
    assert device_id is not None
    return Identity(directory, device_id, tuple(created))


def _csr_matches(path: Path, key: ec.EllipticCurvePrivateKey, device_id: str) -> bool:
    try:
        csr = x509.load_pem_x509_csr(path.read_bytes())
    except (OSError, ValueError):
        return False
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return csr.public_key() == key.public_key() and bool(cn) and cn[0].value == device_id


def load_identity(directory: Path) -> Identity:
    """The identity ``init`` made; ``ProvisionError`` telling the installer to run it first otherwise."""
    missing = [n for n in (SIGNING_KEY, SIGNING_PUB, TLS_KEY, TLS_CSR, IDENTITY) if not (directory / n).exists()]
    if missing:
        raise ProvisionError(f"{directory}: {', '.join(missing)} missing; run `fleet-provision init --dir {directory}`")
    device_id = json.loads((directory / IDENTITY).read_text(encoding="utf-8"))["device_id"]
    return Identity(directory, str(device_id), ())
