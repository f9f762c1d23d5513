"""The fleet CA: device, service and broker certificates verified as chains with cryptography's verifier."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud_sync.ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    INGEST_IDENTITY,
    CaError,
    create_ca,
    load_ca,
    load_or_create_ca,
)


def make_csr(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, cn: str = "whatever") -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, algorithm))
    return csr.public_bytes(serialization.Encoding.PEM)


def _store(ca_cert: x509.Certificate) -> verification.Store:
    return verification.Store([ca_cert])


def test_device_certificate_chains_to_the_ca_with_the_device_identity() -> None:
    ca = create_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    # The CSR's own subject is ignored: the identity is the enrolled device id.
    cert = ca.issue_device_cert(make_csr(key, cn="someone-else"), "truck-0042",
                                validity=datetime.timedelta(days=7))
    verifier = verification.PolicyBuilder().store(_store(ca.cert)).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.chain[-1] == ca.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "truck-0042"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:fleet:device:truck-0042"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key() == key.public_key()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=7) <= lifetime <= datetime.timedelta(days=7, minutes=6)


def test_serials_are_random_and_distinct() -> None:
    ca = create_ca()
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    serials = {ca.issue_device_cert(csr, "d1").serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(s.bit_length() > 64 for s in serials)


def test_another_ca_does_not_verify_the_device() -> None:
    ca, other = create_ca(), create_ca("Other CA")
    cert = ca.issue_device_cert(make_csr(ec.generate_private_key(ec.SECP256R1())), "d1")
    with pytest.raises(verification.VerificationError):
        verification.PolicyBuilder().store(_store(other.cert)).build_client_verifier().verify(cert, [])


def test_server_certificate_verifies_for_its_addresses() -> None:
    ca = create_ca()
    _key, cert = ca.issue_server(["127.0.0.1", "localhost"])
    builder = verification.PolicyBuilder().store(_store(ca.cert))
    builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(cert, [])
    builder.build_server_verifier(x509.DNSName("localhost")).verify(cert, [])
    with pytest.raises(verification.VerificationError):
        builder.build_server_verifier(x509.DNSName("broker.example.com")).verify(cert, [])


def test_ingest_client_certificate() -> None:
    ca = create_ca()
    _key, cert = ca.issue_client(INGEST_IDENTITY)
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == INGEST_IDENTITY


@pytest.mark.parametrize("bad", ["ed25519", "p384", "garbage", "forged"])
def test_unacceptable_csrs_are_refused(bad: str) -> None:
    ca = create_ca()
    if bad == "ed25519":
        csr = make_csr(ed25519.Ed25519PrivateKey.generate())
    elif bad == "p384":
        csr = make_csr(ec.generate_private_key(ec.SECP384R1()))
    elif bad == "garbage":
        csr = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    else:
        # A CSR whose signature was made by another key than the one it carries.
        good = x509.load_pem_x509_csr(make_csr(ec.generate_private_key(ec.SECP256R1())))
        der = bytearray(good.public_bytes(serialization.Encoding.DER))
        der[-5] ^= 0xFF  # flip a byte of the signature
        body = base64.encodebytes(bytes(der)).decode()
        csr = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()
    with pytest.raises(CaError):
        ca.issue_device_cert(csr, "d1")


def test_device_id_must_be_a_valid_id() -> None:
    ca = create_ca()
    with pytest.raises(CaError):
        ca.issue_device_cert(make_csr(ec.generate_private_key(ec.SECP256R1())), "a/b")


def test_ca_files_are_created_once_key_private(tmp_path: Path) -> None:
    d = tmp_path / "ca"
    first = load_or_create_ca(d)
    assert stat.S_IMODE((d / CA_KEY_FILE).stat().st_mode) == 0o600
    again = load_or_create_ca(d)
    assert again.cert == first.cert and again.key.private_numbers() == first.key.private_numbers()
    (d / CA_CERT_FILE).unlink()
    with pytest.raises(CaError):  # half a CA is not silently replaced
        load_or_create_ca(d)
    with pytest.raises(CaError):
        load_ca(tmp_path / "nowhere")


def test_crl_lists_revoked_serials_and_is_signed_by_the_ca() -> None:
    ca = create_ca()
    cert = ca.issue_device_cert(make_csr(ec.generate_private_key(ec.SECP256R1())), "d1")
    crl = ca.crl([(cert.serial_number, datetime.datetime.now(datetime.UTC))])
    assert crl.is_signature_valid(ca.key.public_key())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert len(ca.crl([])) == 0
