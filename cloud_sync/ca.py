"""The fleet CA: one ECDSA P-256 key and self-signed certificate that sign every TLS identity in the fleet.

Devices get a short-lived client certificate whose subject CN is the device id (Mosquitto's
``use_identity_as_username`` turns the CN into the MQTT username the ACL is written for) and whose SAN
is the URI ``urn:fleet:device:<id>``. The broker gets a server certificate for its host names and IPs;
the ingest service a client certificate for ``INGEST_IDENTITY``. The CA also signs the CRL the broker
checks client certificates against.

P-256 rather than Ed25519: every TLS stack in the path (OpenSSL under Mosquitto, Python's ``ssl`` under
paho, embedded TLS libraries on older devices) accepts ECDSA P-256 with SHA-256 (RFC 8422); Ed25519
certificates are not universally supported. Serial numbers are random (RFC 5280 4.1.2.2: positive,
at most 20 octets; CA/Browser Forum practice of 64+ bits of entropy), so they never collide across
CA restarts and reveal nothing about how many devices exist.

The CA's key lives in ``<ca_dir>/ca.key`` (0600), its certificate in ``<ca_dir>/ca.pem``;
``cloud_sync.settings.Settings.ca_dir`` (``FLEET_CLOUD_CA_DIR``) names the directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.errors import FleetError
from edge_agent.wire.model import DEVICE_ID_RE

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
#: The CA outlives many generations of device certificates; rotate it by issuing a new one and
#: shipping both in the chain for one device-certificate lifetime.
DEFAULT_CA_VALIDITY = datetime.timedelta(days=10 * 365)
#: Short-lived device certificates bound the damage of a stolen key even before revocation reaches the
#: broker; devices re-enrol (or renew) well within it.
DEFAULT_DEVICE_VALIDITY = datetime.timedelta(days=90)
DEFAULT_SERVER_VALIDITY = datetime.timedelta(days=365)
#: How far back ``not_valid_before`` is set: a device whose clock lags a little still accepts its new cert.
CLOCK_SKEW = datetime.timedelta(minutes=5)
#: The CRL's nextUpdate (RFC 5280 5.1.2.5): the broker config is regenerated far more often than this.
DEFAULT_CRL_VALIDITY = datetime.timedelta(days=30)
#: The MQTT username (certificate CN) of the ingest service. The slash makes it impossible for a device
#: id (``DEVICE_ID_RE``, no slash) to claim it, and keeps it out of Mosquitto's ``%u`` ACL patterns.
INGEST_IDENTITY = "service/ingest"
DEVICE_URN_PREFIX = "urn:fleet:device:"


class CaError(FleetError):
    """The CA is missing or damaged, or a request to it (a CSR) is not acceptable."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    """Write a secret: created 0600 from the start (never world-readable, not even for a moment), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file (certificate, CRL, config) atomically: readers see the old or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class FleetCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey,
                 validity: datetime.timedelta) -> x509.CertificateBuilder:
        now = _now()
        not_after = min(now + validity, self.cert.not_valid_after_utc)  # never outlive the issuer
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False))

    def issue_device_cert(self, csr_pem: bytes, device_id: str,
                          validity: datetime.timedelta = DEFAULT_DEVICE_VALIDITY) -> x509.Certificate:
        """Sign a device's CSR. The identity comes from ``device_id`` (checked by the caller against the
        enrolment), never from the CSR's subject: a CSR proves possession of the key, nothing more."""
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise CaError(f"device id {device_id!r} does not match {DEVICE_ID_RE.pattern}")
        public_key = csr_public_key(csr_pem)
        builder = self._builder(_name(device_id), public_key, validity)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(DEVICE_URN_PREFIX + device_id)]),
            critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_client(self, identity: str, validity: datetime.timedelta = DEFAULT_SERVER_VALIDITY
                     ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A key and client certificate for a cloud service (``INGEST_IDENTITY``), generated here."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(_name(identity), key.public_key(), validity)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def issue_server(self, hosts: Sequence[str], validity: datetime.timedelta = DEFAULT_SERVER_VALIDITY
                     ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A key and server certificate for the broker; ``hosts`` are DNS names or IP addresses (SANs)."""
        if not hosts:
            raise CaError("a server certificate needs at least one host name or address")
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = self._builder(_name(hosts[0]), key.public_key(), validity)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def crl(self, revoked: Iterable[tuple[int, datetime.datetime]],
            validity: datetime.timedelta = DEFAULT_CRL_VALIDITY) -> x509.CertificateRevocationList:
        """A CRL (RFC 5280 5) listing ``(serial, revocation time)``; an empty one is still issued, since
        a broker told to check CRLs refuses every client when the CA has none."""
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - CLOCK_SKEW).next_update(now + validity))
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.key, hashes.SHA256())


def csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a CSR whose self-signature verifies; ``CaError`` otherwise."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CaError(f"not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise CaError("the CSR's signature does not verify (it was not signed by the key it carries)")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, ec.SECP256R1):
        raise CaError("the CSR's key must be ECDSA P-256 (secp256r1), the curve every TLS stack in the fleet accepts")
    return public_key


def create_ca(common_name: str = "Fleet telematics CA", validity: datetime.timedelta = DEFAULT_CA_VALIDITY
              ) -> FleetCA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + validity)
            # path_length=0: this CA signs end-entity certificates only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return FleetCA(key, cert)


def save_ca(ca: FleetCA, ca_dir: Path) -> None:
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(ca_dir / CA_KEY_FILE, _key_pem(ca.key))
    write_public(ca_dir / CA_CERT_FILE, ca.cert_pem)


def load_ca(ca_dir: Path) -> FleetCA:
    try:
        key = serialization.load_pem_private_key((ca_dir / CA_KEY_FILE).read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT_FILE).read_bytes())
    except OSError as exc:
        raise CaError(f"cannot read the fleet CA in {ca_dir}: {exc.strerror} ({exc.filename})") from None
    except ValueError as exc:
        raise CaError(f"the fleet CA in {ca_dir} is damaged: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CaError(f"{ca_dir / CA_KEY_FILE} is not the key of {ca_dir / CA_CERT_FILE}")
    return FleetCA(key, cert)


def load_or_create_ca(ca_dir: Path) -> FleetCA:
    """The CA in ``ca_dir``; a new one when the directory holds none (half a CA is an error, not replaced)."""
    key_file, cert_file = ca_dir / CA_KEY_FILE, ca_dir / CA_CERT_FILE
    if not key_file.exists() and not cert_file.exists():
        save_ca(create_ca(), ca_dir)
    return load_ca(ca_dir)

