"""The agent's configuration file (``agent.toml``), validated once at start.

Every field has a documented default; a wrong type, an unknown key or an impossible value fails at
start with ``ConfigError`` naming the field (``can.bitrate: must be a positive integer``), so a
vehicle never runs on a half-understood configuration.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config_push.settings import DEFAULT_DIR as CONFIG_PUSH_DIR
from edge_agent.config_push.settings import ConfigPushSettings
from edge_agent.errors import ConfigError
from edge_agent.privacy import PrivacyPolicy, parse_policy
from edge_agent.uplink.settings import UplinkSettings
from edge_agent.wire.model import MAX_RECORDS_PER_BATCH

#: Default outbox quota: a week of a busy truck at 1 Hz signals fits in far less; leaves the disk free.
DEFAULT_QUOTA_MB = 256
#: How often buffered records are committed to the outbox (bounds what a power cut can take).
DEFAULT_FLUSH_INTERVAL_S = 1.0
#: How often the status file is rewritten for ``fleet-agent status``.
DEFAULT_STATUS_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class CanFilterConfig:
    can_id: int
    can_mask: int
    extended: bool = True


@dataclass(frozen=True, slots=True)
class CanConfig:
    interface: str
    channel: str
    bitrate: int | None = None
    filters: tuple[CanFilterConfig, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GnssConfig:
    port: str
    baudrate: int = 9600


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    profile: str
    data_dir: Path
    can: CanConfig | None
    gnss: GnssConfig | None
    outbox_path: Path
    quota_bytes: int
    flush_interval_s: float
    status_path: Path
    status_interval_s: float
    geofences: Path | None
    thresholds: Mapping[str, float]
    source: Path
    #: None: no ``[uplink]`` section, records stay in the outbox (a logger-only install).
    uplink: UplinkSettings | None = None
    #: ``[config_push]``: signed configs from the cloud (``edge_agent.config_push``); None: not accepted.
    config_push: ConfigPushSettings | None = None
    #: ``[privacy]``: when the vehicle sends no location (``edge_agent.privacy``); default never.
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)


def _table(data: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table")
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}: unknown field (allowed: {', '.join(sorted(allowed))})")
    return value


def _str(table: Mapping[str, Any], section: str, key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{section}.{key}: must be a non-empty string")
    return value


def _int(table: Mapping[str, Any], section: str, key: str, default: int | None = None) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{section}.{key}: must be a positive integer, got {value!r}")
    return value


def _float(table: Mapping[str, Any], section: str, key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{section}.{key}: must be a positive number, got {value!r}")
    return float(value)


def _can(data: Mapping[str, Any]) -> CanConfig | None:
    t = _table(data, "can", {"interface", "channel", "bitrate", "filters", "options"})
    if t is None:
        return None
    bitrate = _int(t, "can", "bitrate") if "bitrate" in t else None
    filters = []
    raw_filters = t.get("filters", [])
    if not isinstance(raw_filters, list):
        raise ConfigError("can.filters: must be a list of {can_id, can_mask, extended} tables")
    for i, f in enumerate(raw_filters):
        if not isinstance(f, dict) or not isinstance(f.get("can_id"), int) or not isinstance(f.get("can_mask"), int):
            raise ConfigError(f"can.filters[{i}]: needs integer can_id and can_mask")
        filters.append(CanFilterConfig(f["can_id"], f["can_mask"], bool(f.get("extended", True))))
    options = t.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError("can.options: must be a table of extra python-can bus arguments")
    return CanConfig(_str(t, "can", "interface"), _str(t, "can", "channel"), bitrate, tuple(filters), options)


def _gnss(data: Mapping[str, Any]) -> GnssConfig | None:
    t = _table(data, "gnss", {"port", "baudrate"})
    if t is None:
        return None
    baud = _int(t, "gnss", "baudrate", 9600)
    # NMEA 0183 receivers use the standard UART rates; anything else is almost certainly a typo.
    if baud not in (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800):
        raise ConfigError(f"gnss.baudrate: {baud} is not a standard serial rate")
    return GnssConfig(_str(t, "gnss", "port"), baud)


_UPLINK_FIELDS = {"host", "port", "signing_key", "tls_ca", "tls_cert", "tls_key", "keepalive_s", "session_expiry_s",
                  "max_inflight", "max_queued", "max_batch_records", "max_batch_bytes", "ack_timeout_s", "linger_s",
                  "reconnect_min_s", "reconnect_max_s", "backlog_report_s"}


def _uplink(data: Mapping[str, Any], data_dir: Path) -> UplinkSettings | None:
    t = _table(data, "uplink", _UPLINK_FIELDS)
    if t is None:
        return None
    host = _str(t, "uplink", "host")
    d = UplinkSettings(host=host)  # the defaults

    def path(key: str) -> Path | None:
        return data_dir / _str(t, "uplink", key) if key in t else None

    def bounded(key: str, default: int, hi: int) -> int:
        value = _int(t, "uplink", key, default)
        if value > hi:
            raise ConfigError(f"uplink.{key}: at most {hi}, got {value}")
        return value

    def non_negative(key: str, default: float) -> float:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"uplink.{key}: must be a number >= 0, got {value!r}")
        return float(value)

    tls_ca, tls_cert, tls_key = path("tls_ca"), path("tls_cert"), path("tls_key")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("uplink.tls_cert, uplink.tls_key: give both (the device's certificate and key) or neither")
    if tls_cert is not None and tls_ca is None:
        raise ConfigError("uplink.tls_ca: required with tls_cert (the CA that signed the broker's certificate)")
    max_inflight = bounded("max_inflight", d.max_inflight, 65535)  # MQTT v5 Receive Maximum is 16 bits
    max_queued = _int(t, "uplink", "max_queued", max(d.max_queued, max_inflight))
    if max_queued < max_inflight:
        raise ConfigError(f"uplink.max_queued: must be at least max_inflight ({max_inflight}), got {max_queued}")
    reconnect_min = _float(t, "uplink", "reconnect_min_s", d.reconnect_min_s)
    reconnect_max = _float(t, "uplink", "reconnect_max_s", max(d.reconnect_max_s, reconnect_min))
    if reconnect_max < reconnect_min:
        raise ConfigError(f"uplink.reconnect_max_s: must be at least reconnect_min_s ({reconnect_min})")
    if "signing_key" not in t:
        raise ConfigError("uplink.signing_key: must be a non-empty string (the device's Ed25519 key, PEM)")
    return UplinkSettings(
        host=host,
        port=bounded("port", d.port, 65535),
        signing_key=path("signing_key"),
        tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
        keepalive_s=bounded("keepalive_s", d.keepalive_s, 65535),  # MQTT keepalive is a 16-bit field
        session_expiry_s=bounded("session_expiry_s", d.session_expiry_s, 2**32 - 1),  # MQTT v5 3.1.2.11.2
        max_inflight=max_inflight,
        max_queued=max_queued,
        max_batch_records=bounded("max_batch_records", d.max_batch_records, MAX_RECORDS_PER_BATCH),
        max_batch_bytes=bounded("max_batch_bytes", d.max_batch_bytes, 256 * 1024 * 1024),  # MQTT's packet limit
        ack_timeout_s=_float(t, "uplink", "ack_timeout_s", d.ack_timeout_s),
        linger_s=non_negative("linger_s", d.linger_s),
        backlog_report_s=non_negative("backlog_report_s", d.backlog_report_s),
        reconnect_min_s=reconnect_min,
        reconnect_max_s=reconnect_max,
    )


def _config_push(data: Mapping[str, Any], data_dir: Path) -> ConfigPushSettings | None:
    t = _table(data, "config_push", {"fleet_key", "dir"})
    if t is None:
        return None
    return ConfigPushSettings(fleet_key=data_dir / _str(t, "config_push", "fleet_key"),
                              dir=data_dir / _str(t, "config_push", "dir", CONFIG_PUSH_DIR))


def parse_config(data: Mapping[str, Any], source: Path) -> AgentConfig:
    """Validate a parsed TOML document; relative paths are taken from ``agent.data_dir``."""
    unknown = set(data) - {"agent", "can", "gnss", "outbox", "detection", "uplink", "config_push", "privacy"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section")
    agent = _table(data, "agent", {"device_id", "profile", "data_dir", "status_interval_s"})
    if agent is None:
        raise ConfigError("agent: the [agent] table is required")
    data_dir = Path(_str(agent, "agent", "data_dir"))
    if not data_dir.is_absolute():
        data_dir = (source.parent / data_dir).resolve()
    outbox = _table(data, "outbox", {"path", "quota_mb", "flush_interval_s"}) or {}
    detection = _table(data, "detection", {"geofences", "thresholds"}) or {}
    thresholds = detection.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in thresholds.values()
    ):
        raise ConfigError("detection.thresholds: must be a table of numbers")
    geofences = detection.get("geofences")
    if geofences is not None and not isinstance(geofences, str):
        raise ConfigError("detection.geofences: must be a path to a GeoJSON file")
    can, gnss = _can(data), _gnss(data)
    if can is None and gnss is None:
        raise ConfigError("can, gnss: configure at least one source")
    return AgentConfig(
        device_id=_str(agent, "agent", "device_id"),
        profile=_str(agent, "agent", "profile"),
        data_dir=data_dir,
        can=can,
        gnss=gnss,
        outbox_path=data_dir / _str(outbox, "outbox", "path", "outbox.db"),
        quota_bytes=_int(outbox, "outbox", "quota_mb", DEFAULT_QUOTA_MB) * 1024 * 1024,
        flush_interval_s=_float(outbox, "outbox", "flush_interval_s", DEFAULT_FLUSH_INTERVAL_S),
        status_path=data_dir / "status.json",
        status_interval_s=_float(agent, "agent", "status_interval_s", DEFAULT_STATUS_INTERVAL_S),
        geofences=(data_dir / geofences) if geofences else None,
        thresholds={k: float(v) for k, v in thresholds.items()},
        source=source,
        uplink=_uplink(data, data_dir),
        config_push=_config_push(data, data_dir),
        privacy=parse_policy(_table(data, "privacy", {"allowed", "outside_working_hours", "working_hours",
                                                      "timezone"})),
    )


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate ``agent.toml``; raise ``ConfigError`` naming the first bad field."""
    src = Path(path)
    try:
        data = tomllib.loads(src.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from exc
    return parse_config(data, src.resolve())
