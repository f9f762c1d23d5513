"""Firmware profiles: one folder per vehicle family with a DBC, a signal map and thresholds.

A profile is data (``profile.toml`` + a ``.dbc``), validated once on load: a signal naming a message
or signal its DBC lacks, an unknown protocol, or a missing threshold type is refused with a message
saying which. ``load_profile("heavy_truck_j1939")`` finds a bundled profile by name; a path to a
folder or a ``profile.toml`` loads a profile kept elsewhere (a fleet's own).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cantools
from cantools.database.can import Database

from edge_agent.errors import ProfileError

PROFILES_DIR = Path(__file__).resolve().parent
PROTOCOLS = ("j1939", "obd2")

#: Defaults for a signal's storage policy when the profile does not say (1 Hz, store on any change).
DEFAULT_RATE_HZ = 1.0
DEFAULT_DEADBAND = 0.0


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One entry of a profile's signal map: our name -> a DBC signal (and, for OBD-II, its PID)."""

    name: str
    unit: str
    rate_hz: float
    deadband: float
    message: str
    dbc_signal: str
    pid: int | None = None
    #: J1939-71 "not available / error" raw ranges apply (off for OEM signals that use all values).
    j1939_special_values: bool = True


@dataclass(frozen=True, slots=True)
class ObdSettings:
    """How the OBD-II poller addresses the vehicle (ISO 15765-4)."""

    request_id: int
    poll_interval_s: float
    max_pids_per_request: int


@dataclass(frozen=True, slots=True)
class Profile:
    """A loaded, validated firmware profile. Immutable; built once at start."""

    name: str
    description: str
    protocol: str
    dbc_path: Path
    database: Database
    signals: Mapping[str, SignalSpec]
    thresholds: Mapping[str, float]
    obd: ObdSettings | None = None


def available_profiles() -> list[str]:
    """Names of the profiles bundled with the package."""
    return sorted(p.parent.name for p in PROFILES_DIR.glob("*/profile.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if (candidate / "profile.toml").is_file():
        return candidate / "profile.toml"
    bundled = PROFILES_DIR / str(name_or_path) / "profile.toml"
    if bundled.is_file():
        return bundled
    choices = ", ".join(available_profiles()) or "none"
    raise ProfileError(f"profile {str(name_or_path)!r} not found (bundled profiles: {choices})")


def _number(
    table: Mapping[str, Any], key: str, where: str, default: float | None = None, *, signed: bool = False
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{where}.{key} must be a number, got {value!r}")
    if value < 0 and not signed:
        raise ProfileError(f"{where}.{key} must not be negative, got {value!r}")
    return float(value)


def _signal(name: str, table: Mapping[str, Any], db: Database, protocol: str, src: Path) -> SignalSpec:
    where = f"{src}: signals.{name}"
    ref = table.get("dbc")
    if not isinstance(ref, str) or "." not in ref:
        raise ProfileError(f"{where}.dbc must be 'MESSAGE.SIGNAL', got {ref!r}")
    msg_name, _, sig_name = ref.partition(".")
    try:
        message = db.get_message_by_name(msg_name)
    except KeyError:
        raise ProfileError(f"{where}: DBC has no message {msg_name!r} (signal map names {ref!r})") from None
    if sig_name not in {s.name for s in message.signals}:
        raise ProfileError(f"{where}: DBC message {msg_name} has no signal {sig_name!r}") from None
    pid = table.get("pid")
    if protocol == "obd2":
        if not isinstance(pid, int) or not 0 <= pid <= 0xFF:
            raise ProfileError(f"{where}.pid must be a Mode 01 PID (0x00-0xFF) on an obd2 profile")
        signal = message.get_signal_by_name(sig_name)
        # The PID must be the multiplexer value the DBC decodes this signal under.
        if signal.multiplexer_ids is not None and pid not in signal.multiplexer_ids:
            raise ProfileError(
                f"{where}: pid 0x{pid:02X} but DBC signal {ref} is multiplexed under "
                f"{[hex(m) for m in signal.multiplexer_ids]}"
            )
    elif pid is not None:
        raise ProfileError(f"{where}.pid is only meaningful on an obd2 profile")
    unit = table.get("unit", "")
    if not isinstance(unit, str):
        raise ProfileError(f"{where}.unit must be a string")
    special = table.get("j1939_special_values", protocol == "j1939")
    if not isinstance(special, bool):
        raise ProfileError(f"{where}.j1939_special_values must be true or false")
    return SignalSpec(
        name=name,
        unit=unit,
        rate_hz=_number(table, "rate_hz", where, DEFAULT_RATE_HZ),
        deadband=_number(table, "deadband", where, DEFAULT_DEADBAND),
        message=msg_name,
        dbc_signal=sig_name,
        pid=pid if protocol == "obd2" else None,
        j1939_special_values=special,
    )


def _obd_settings(data: Mapping[str, Any], src: Path) -> ObdSettings:
    table = data.get("obd")
    if not isinstance(table, dict):
        raise ProfileError(f"{src}: an obd2 profile needs an [obd] table")
    request_id = table.get("request_id")
    # ISO 15765-4: functional requests go to 0x7DF (11-bit) or 0x18DB33F1 (29-bit).
    if request_id not in (0x7DF, 0x18DB33F1):
        raise ProfileError(f"{src}: obd.request_id must be 0x7DF or 0x18DB33F1, got {request_id!r}")
    max_pids = int(_number(table, "max_pids_per_request", f"{src}: obd", 6))
    # SAE J1979: a Mode 01 request carries at most six PIDs.
    if not 1 <= max_pids <= 6:
        raise ProfileError(f"{src}: obd.max_pids_per_request must be 1..6, got {max_pids}")
    return ObdSettings(
        request_id=int(request_id),
        poll_interval_s=_number(table, "poll_interval_s", f"{src}: obd", 1.0),
        max_pids_per_request=max_pids,
    )


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a profile by bundled name or path; raise ``ProfileError`` naming the fault."""
    src = _resolve(name_or_path)
    try:
        data = tomllib.loads(src.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{src}: cannot read profile: {exc}") from exc
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{src}: 'name' is required")
    protocol = data.get("protocol")
    if protocol not in PROTOCOLS:
        raise ProfileError(f"{src}: protocol must be one of {PROTOCOLS}, got {protocol!r}")
    dbc_name = data.get("dbc")
    if not isinstance(dbc_name, str):
        raise ProfileError(f"{src}: 'dbc' (the DBC file name) is required")
    dbc_path = (src.parent / dbc_name).resolve()
    try:
        database = cantools.database.load_file(str(dbc_path), strict=True)
    except Exception as exc:  # cantools raises several unrelated types for a bad DBC
        raise ProfileError(f"{src}: cannot load DBC {dbc_path.name}: {exc}") from exc
    if not isinstance(database, Database):
        raise ProfileError(f"{src}: {dbc_path.name} is not a CAN database")
    raw_signals = data.get("signals")
    if not isinstance(raw_signals, dict) or not raw_signals:
        raise ProfileError(f"{src}: at least one [signals.NAME] table is required")
    signals = {
        sig_name: _signal(sig_name, table, database, protocol, src)
        for sig_name, table in raw_signals.items()
        if isinstance(table, dict) or _bad_table(src, sig_name)
    }
    raw_thresholds = data.get("thresholds", {})
    if not isinstance(raw_thresholds, dict):
        raise ProfileError(f"{src}: [thresholds] must be a table")
    thresholds = {k: _number(raw_thresholds, k, f"{src}: thresholds", signed=True) for k in raw_thresholds}
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        protocol=protocol,
        dbc_path=dbc_path,
        database=database,
        signals=MappingProxyType(signals),
        thresholds=MappingProxyType(thresholds),
        obd=_obd_settings(data, src) if protocol == "obd2" else None,
    )


def _bad_table(src: Path, name: str) -> bool:
    raise ProfileError(f"{src}: signals.{name} must be a table")
