"""Enrolment hands the device the fleet's config-signing public key, which its agent pins (``[config_push]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.ca import cert_pem, create_ca
from edge_agent.config import load_config
from edge_agent.config_push.receiver import open_receiver
from edge_agent.counters import Counters
from edge_agent.wire.sign import public_key_pem
from provisioning import enroll as enroll_module
from provisioning.enroll import AGENT_TOML, FLEET_CONFIG_KEY, MARKER, enroll
from provisioning.identity import ProvisionError, init_identity

VIN = "1M8GDM9AXKP042788"


def _answer(tmp_path: Path, fleet_key_pem: Any) -> tuple[Any, dict[str, Any]]:
    ident = init_identity(tmp_path / "etc", "van-1")
    ca = create_ca()
    cert = ca.issue_device_cert(ident.csr.read_bytes(), "van-1")
    answer = {"device_id": "van-1", "depot": "d", "certificate_pem": cert_pem(cert).decode(),
              "ca_chain_pem": ca.cert_pem.decode(), "broker_host": "b", "broker_port": 8883, "resumed": False,
              "agent_config": {"agent": {"device_id": "van-1", "profile": "light_obd2"},
                               "uplink": {"host": "b", "port": 8883},
                               "config_push": {"fleet_key_pem": fleet_key_pem}}}
    return ident, answer


def test_the_pinned_key_is_written_and_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Ed25519PrivateKey.generate()
    ident, answer = _answer(tmp_path, public_key_pem(fleet).decode())
    monkeypatch.setattr(enroll_module, "post_json", lambda url, body: answer)
    result = enroll(ident, "http://cloud", "t", VIN, "light_obd2", data_dir=tmp_path / "data")
    assert FLEET_CONFIG_KEY in result.files
    assert (ident.dir / FLEET_CONFIG_KEY).read_bytes() == public_key_pem(fleet)
    config = load_config(ident.dir / AGENT_TOML)
    assert config.config_push is not None and config.config_push.fleet_key == ident.dir / FLEET_CONFIG_KEY
    receiver = open_receiver(config.device_id, config.config_push, Counters(), lambda record: None)
    assert receiver.fleet_key.public_bytes_raw() == fleet.public_key().public_bytes_raw()


def test_a_key_that_is_not_ed25519_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ident, answer = _answer(tmp_path, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    monkeypatch.setattr(enroll_module, "post_json", lambda url, body: answer)
    before = sorted(p.name for p in ident.dir.iterdir())
    with pytest.raises(ProvisionError, match="fleet_key_pem"):
        enroll(ident, "http://cloud", "t", VIN, "light_obd2", data_dir=tmp_path / "data")
    assert sorted(p.name for p in ident.dir.iterdir()) == before and not (ident.dir / MARKER).exists()
