"""The ``[uplink]`` section of agent.toml: defaults, paths from data_dir, bad fields named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_agent.config import load_config, parse_config
from edge_agent.counters import Counters
from edge_agent.errors import ConfigError
from edge_agent.outbox import Outbox
from edge_agent.uplink import Transport, build_uplink
from edge_agent.uplink.settings import DEFAULT_ACK_TIMEOUT_S, UplinkSettings
from edge_agent.wire import generate_private_key, save_private_key

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "agent.example.toml"


def _example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def test_example_uplink_section() -> None:
    cfg = load_config(EXAMPLE)
    up = cfg.uplink
    assert up is not None
    assert (up.host, up.port) == ("mqtt.fleet.example.com", 8883)
    assert up.signing_key == Path("/var/lib/fleet-agent/keys/device.pem")
    assert up.tls_ca == Path("/var/lib/fleet-agent/keys/ca.pem")
    assert (up.session_expiry_s, up.max_inflight, up.max_batch_records) == (604800, 4, 5000)
    assert up.backlog_report_s == 300.0


def test_minimal_section_takes_the_defaults_and_no_section_means_no_uplink(tmp_path: Path) -> None:
    data = _example()
    data["uplink"] = {"host": "127.0.0.1", "signing_key": "device.pem"}
    up = parse_config(data, tmp_path / "agent.toml").uplink
    assert up == UplinkSettings(host="127.0.0.1", signing_key=Path("/var/lib/fleet-agent/device.pem"))
    assert up.ack_timeout_s == DEFAULT_ACK_TIMEOUT_S and up.tls_ca is None
    data["uplink"]["linger_s"] = 0  # send every batch at once: allowed
    assert parse_config(data, tmp_path / "agent.toml").uplink.linger_s == 0.0  # type: ignore[union-attr]
    del data["uplink"]
    assert parse_config(data, tmp_path / "agent.toml").uplink is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": ""}, r"uplink\.host: must be a non-empty string"),
        ({"signing_key": None}, r"uplink\.signing_key"),
        ({"port": 70000}, r"uplink\.port: at most 65535"),
        ({"port": "1883"}, r"uplink\.port: must be a positive integer"),
        ({"keepalive_s": 0}, r"uplink\.keepalive_s"),
        ({"session_expiry_s": 2**32}, r"uplink\.session_expiry_s: at most"),
        ({"max_inflight": 8, "max_queued": 4}, r"uplink\.max_queued: must be at least max_inflight"),
        ({"max_batch_records": 100_001}, r"uplink\.max_batch_records: at most 100000"),
        ({"ack_timeout_s": -1}, r"uplink\.ack_timeout_s: must be a positive number"),
        ({"linger_s": -0.5}, r"uplink\.linger_s: must be a number >= 0"),
        ({"backlog_report_s": "often"}, r"uplink\.backlog_report_s: must be a number >= 0"),
        ({"reconnect_min_s": 5.0, "reconnect_max_s": 1.0}, r"uplink\.reconnect_max_s: must be at least"),
        ({"tls_key": None}, r"uplink\.tls_cert, uplink\.tls_key: give both"),
        ({"tls_ca": None}, r"uplink\.tls_ca: required with tls_cert"),
        ({"colour": "red"}, r"uplink\.colour: unknown field"),
    ],
)
def test_bad_uplink_fields_are_named(fields: dict, message: str, tmp_path: Path) -> None:
    data = _example()
    for key, value in fields.items():
        if value is None:
            data["uplink"].pop(key)
        else:
            data["uplink"][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path / "agent.toml")


def test_build_uplink_needs_a_readable_key(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        with pytest.raises(ConfigError, match=r"uplink\.signing_key: cannot load"):
            build_uplink(UplinkSettings("127.0.0.1", signing_key=tmp_path / "missing.pem"), "t-1", outbox, Counters())
        (tmp_path / "junk.pem").write_text("not a key")
        with pytest.raises(ConfigError, match=r"uplink\.signing_key: cannot load"):
            build_uplink(UplinkSettings("127.0.0.1", signing_key=tmp_path / "junk.pem"), "t-1", outbox, Counters())
        save_private_key(generate_private_key(), tmp_path / "device.pem")
        uplink = build_uplink(UplinkSettings("127.0.0.1", signing_key=tmp_path / "device.pem"), "t-1", outbox,
                              Counters())
        assert uplink.topic == "fleet/v1/t-1/batch"
        assert isinstance(uplink.transport, Transport) and not uplink.transport.connected
        uplink.close()
