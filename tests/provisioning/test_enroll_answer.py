"""What ``enroll`` does with a cloud answer it must not trust: nothing is written, the reason is clear."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud_sync.ca import cert_pem, create_ca
from provisioning import enroll as enroll_module
from provisioning.enroll import MARKER, STAGING, TLS_CERT, dumps_toml, enroll
from provisioning.identity import ProvisionError, init_identity

VIN = "1M8GDM9AXKP042788"


def _answer(cert: x509.Certificate, ca_pem: bytes, device_id: str, port: Any = 8883) -> dict[str, Any]:
    return {"device_id": device_id, "depot": "d", "certificate_pem": cert_pem(cert).decode(),
            "ca_chain_pem": ca_pem.decode(), "broker_host": "b", "broker_port": 8883, "resumed": False,
            "agent_config": {"agent": {"device_id": device_id, "profile": "p"}, "uplink": {"host": "b", "port": port}}}


def _foreign_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("case,message", [("other_key", "not for this device's TLS key"),
                                          ("other_ca", "does not verify"),
                                          ("bad_config", "agent would refuse"),
                                          ("garbage", "no usable certificate")])
def test_untrustworthy_answers_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str,
                                             message: str) -> None:
    ident = init_identity(tmp_path / "etc", "van-1")
    ca, other = create_ca(), create_ca("Other")
    own = ca.issue_device_cert(ident.csr.read_bytes(), "van-1")
    answers = {
        "other_key": _answer(ca.issue_device_cert(_foreign_csr(), "van-1"), ca.cert_pem, "van-1"),
        "other_ca": _answer(other.issue_device_cert(ident.csr.read_bytes(), "van-1"), ca.cert_pem, "van-1"),
        "bad_config": _answer(own, ca.cert_pem, "van-1", port="not a port"),
        "garbage": {**_answer(own, ca.cert_pem, "van-1"), "certificate_pem": "nope"},
    }
    monkeypatch.setattr(enroll_module, "post_json", lambda url, body: answers[case])
    before = sorted(p.name for p in ident.dir.iterdir())
    with pytest.raises(ProvisionError, match=message):
        enroll(ident, "http://cloud", "t", VIN, "p", data_dir=tmp_path / "data")
    assert sorted(p.name for p in ident.dir.iterdir()) == before
    assert not (ident.dir / MARKER).exists() and not (ident.dir / TLS_CERT).exists()
    assert not (ident.dir / STAGING).exists()


def test_dumps_toml_round_trips() -> None:
    doc: dict[str, dict[str, Any]] = {"agent": {"device_id": "a\"b\\c", "n": 3, "x": 1.5, "on": True},
                                      "uplink": {"host": "h"}}
    assert tomllib.loads(dumps_toml(doc)) == doc
