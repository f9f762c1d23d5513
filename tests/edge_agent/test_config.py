"""agent.toml is validated at start; a bad field fails with a message naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge_agent.config import load_config, parse_config
from edge_agent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agent.example.toml"


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.device_id == "truck-0042"
    assert cfg.can is not None and cfg.can.bitrate == 250000
    assert cfg.gnss is not None and cfg.gnss.baudrate == 9600
    assert cfg.quota_bytes == 256 * 1024 * 1024
    assert cfg.outbox_path == Path("/var/lib/fleet-agent/outbox.db")


def _example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["can"].__setitem__("bitrate", "fast"), r"can\.bitrate: must be a positive integer"),
        (lambda d: d["can"].__setitem__("bitrate", -1), r"can\.bitrate"),
        (lambda d: d["gnss"].__setitem__("baudrate", 9601), r"gnss\.baudrate: 9601 is not a standard"),
        (lambda d: d["agent"].pop("device_id"), r"agent\.device_id: must be a non-empty string"),
        (lambda d: d["agent"].__setitem__("colour", "red"), r"agent\.colour: unknown field"),
        (lambda d: d.__setitem__("colour", {}), r"colour: unknown section"),
        (lambda d: d.__setitem__("uplink", {}), r"uplink\.host: must be a non-empty string"),
        (lambda d: d["outbox"].__setitem__("quota_mb", 0), r"outbox\.quota_mb"),
        (lambda d: (d.pop("can"), d.pop("gnss")), r"configure at least one source"),
        (lambda d: d["can"].__setitem__("filters", [{"can_id": 1}]), r"can\.filters\[0\]"),
        (lambda d: d["detection"].__setitem__("thresholds", {"x": "y"}), r"detection\.thresholds"),
    ],
)
def test_bad_fields_are_named(mutate, message: str, tmp_path: Path) -> None:
    data = _example()
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path / "agent.toml")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "agent.toml"
    bad.write_text("[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_relative_data_dir_is_beside_the_file(tmp_path: Path) -> None:
    data = _example()
    data["agent"]["data_dir"] = "state"
    cfg = parse_config(data, tmp_path / "agent.toml")
    assert cfg.data_dir == tmp_path / "state"
    assert cfg.status_path == tmp_path / "state" / "status.json"
