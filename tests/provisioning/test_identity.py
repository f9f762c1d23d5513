"""``fleet-provision init``: keys made on the device, 0600, a matching CSR, and never replaced by a re-run."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from provisioning.identity import (
    SIGNING_KEY,
    TLS_CSR,
    TLS_KEY,
    ProvisionError,
    init_identity,
    load_identity,
)

REPO = Path(__file__).resolve().parents[2]


def fleet_provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


def test_init_creates_private_keys_0600_and_a_csr_for_them(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    out = fleet_provision("--json", "init", "--dir", str(d))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and set(report["created"]) >= {SIGNING_KEY, TLS_KEY, TLS_CSR}
    for name in (SIGNING_KEY, TLS_KEY):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr((d / TLS_CSR).read_bytes())
    key = serialization.load_pem_private_key((d / TLS_KEY).read_bytes(), password=None)
    assert csr.is_signature_valid and csr.public_key() == key.public_key()
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == report["device_id"]
    assert load_identity(d).device_id == report["device_id"]


def test_init_is_idempotent_and_never_overwrites_keys(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    first = init_identity(d, "van-12")
    keys = {n: (d / n).read_bytes() for n in (SIGNING_KEY, TLS_KEY, TLS_CSR)}
    again = init_identity(d)
    assert again.device_id == "van-12" and again.created == ()
    assert {n: (d / n).read_bytes() for n in keys} == keys
    out = fleet_provision("init", "--dir", str(d))
    assert out.returncode == 0 and "already present" in out.stdout
    assert {n: (d / n).read_bytes() for n in keys} == keys
    with pytest.raises(ProvisionError, match="not renamed"):
        init_identity(d, "van-13")
    assert first.device_id == "van-12"


def test_init_completes_a_partial_identity_keeping_what_exists(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    init_identity(d)
    signing = (d / SIGNING_KEY).read_bytes()
    (d / TLS_KEY).unlink()
    (d / TLS_CSR).unlink()
    redo = init_identity(d)
    assert set(redo.created) == {TLS_KEY, TLS_CSR} and (d / SIGNING_KEY).read_bytes() == signing


def test_enroll_before_init_says_what_to_do(tmp_path: Path) -> None:
    out = fleet_provision("enroll", "--dir", str(tmp_path / "none"), "--cloud", "http://127.0.0.1:9", "--token",
                          "t", "--vehicle", "1M8GDM9AXKP042788", "--profile", "p")
    assert out.returncode == 1 and "fleet-provision init" in out.stderr


def test_damaged_key_is_reported_not_replaced(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    init_identity(d)
    (d / TLS_KEY).write_bytes(b"garbage")
    with pytest.raises(ProvisionError, match="unreadable TLS key"):
        init_identity(d)
    assert (d / TLS_KEY).read_bytes() == b"garbage"
