"""Profiles load, validate, and refuse mistakes with a message naming the field or signal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.errors import ProfileError
from firmware_profiles import PROFILES_DIR, available_profiles, load_profile


def test_bundled_profiles_load() -> None:
    names = available_profiles()
    assert "heavy_truck_j1939" in names
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.signals
        for spec in profile.signals.values():
            message = profile.database.get_message_by_name(spec.message)
            assert spec.dbc_signal in {s.name for s in message.signals}


def test_truck_profile_maps_the_signals_detection_needs() -> None:
    profile = load_profile("heavy_truck_j1939")
    for needed in ("engine_speed", "wheel_speed", "fuel_rate", "engine_hours", "odometer", "coolant_temp"):
        assert needed in profile.signals
    assert profile.thresholds["idle_engine_speed_rpm"] > 0
    assert profile.obd is None


def _copy_profile(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(PROFILES_DIR / name, dest)
    return dest


def test_signal_missing_from_dbc_is_named(tmp_path: Path) -> None:
    folder = _copy_profile(tmp_path, "heavy_truck_j1939")
    toml = folder / "profile.toml"
    toml.write_text(toml.read_text().replace('dbc = "EEC1.EngSpeed"', 'dbc = "EEC1.EngSpeedTypo"'))
    with pytest.raises(ProfileError, match=r"signals\.engine_speed.*EEC1 has no signal 'EngSpeedTypo'"):
        load_profile(folder)


def test_message_missing_from_dbc_is_named(tmp_path: Path) -> None:
    folder = _copy_profile(tmp_path, "heavy_truck_j1939")
    toml = folder / "profile.toml"
    toml.write_text(toml.read_text().replace('dbc = "ET1.EngCoolantTemp"', 'dbc = "ET9.EngCoolantTemp"'))
    with pytest.raises(ProfileError, match=r"signals\.coolant_temp: DBC has no message 'ET9'"):
        load_profile(folder)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('protocol = "j1939"', 'protocol = "canopen"', "protocol must be one of"),
        ("rate_hz = 1.0", 'rate_hz = "fast"', "rate_hz must be a number"),
        ("deadband = 100.0", "deadband = -1.0", "deadband must not be negative"),
        ('dbc = "heavy_truck_j1939.dbc"', 'dbc = "missing.dbc"', "cannot load DBC missing.dbc"),
    ],
)
def test_bad_fields_are_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    folder = _copy_profile(tmp_path, "heavy_truck_j1939")
    toml = folder / "profile.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError, match=message):
        load_profile(folder)


def test_unknown_profile_lists_choices() -> None:
    with pytest.raises(ProfileError, match="heavy_truck_j1939"):
        load_profile("no_such_vehicle")


def test_corrupt_dbc_is_refused(tmp_path: Path) -> None:
    folder = _copy_profile(tmp_path, "heavy_truck_j1939")
    (folder / "heavy_truck_j1939.dbc").write_text("BO_ this is not a dbc\n")
    with pytest.raises(ProfileError, match="cannot load DBC"):
        load_profile(folder)
