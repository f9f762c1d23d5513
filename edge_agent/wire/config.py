"""Signed configuration pushes (cloud -> vehicle): the envelope, its canonical body, and the status record.

Staff change a vehicle's firmware profile, threshold overrides or geofences; the cloud seals a
``SignedConfig`` with the fleet's config-signing key (Ed25519, RFC 8032) and publishes it retained on
``config_topic(device)``. The envelope is::

    MAGIC (4) | format version (1) | canonical JSON body | Ed25519 signature (64, over every byte before it)

The body is JSON with sorted keys, no whitespace, UTF-8, no NaN/infinity (``canonical_body``): the
same config always gives the same bytes, and a person debugging a broker can read it. ``open_config``
checks, in this order and before parsing anything: size (``MAX_CONFIG_BYTES``), magic, version,
signature against the pinned fleet key; only then is the JSON parsed and its shape checked. Every
failure is a ``VerificationError`` whose ``reason`` is a key of ``CONFIG_REASONS``.

What the receiver must check besides (target device, version newer than the running one, not expired,
content that loads) is policy, and lives with the agent (``edge_agent.config_push``).

The agent reports what it runs in ``CONFIG_STATUS_KIND`` records (payload keys below), which the cloud
reads back to show the applied version.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.wire.errors import VerificationError, WireError
from edge_agent.wire.model import DEVICE_ID_RE, MAX_ABS_TIME_S

MAGIC = b"FTWC"  # Fleet Telematics Wire Config
CONFIG_FORMAT_VERSION = 1
SIGNATURE_BYTES = 64
#: Largest sealed config either side accepts. Geofences dominate: 100 polygon fences of 100 vertices at
#: about 40 JSON bytes a vertex are 400 kB. Far below Mosquitto's default message_size_limit (256 MiB).
MAX_CONFIG_BYTES = 512 * 1024
#: Versions count up from 1 per device; the bound keeps them exact in JSON and in SQL BIGINT.
MAX_VERSION = 2**53
MAX_THRESHOLDS = 256
MAX_THRESHOLD_NAME_CHARS = 64
#: A bundled profile's name: no slash and no dot, so a pushed config can never name a path on the device.
PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
#: Record kind of the agent's reports; payload keys: ``applied_version`` (0: none, running agent.toml),
#: ``result`` (one of ``STATUS_RESULTS``), ``offered_version`` (int or None), ``reason`` (str).
CONFIG_STATUS_KIND = "config_status"
STATUS_RESULTS = ("running", "applied", "rejected", "fallback")

CONFIG_REASONS: dict[str, str] = {
    "oversized": "The sealed config is larger than MAX_CONFIG_BYTES.",
    "bad_magic": "The message does not start with the config magic (not a config, or not ours).",
    "unknown_version": "The envelope's format version is not one this code reads.",
    "truncated": "Too short to hold the magic, version and signature.",
    "bad_signature": "The Ed25519 signature does not verify with the pinned fleet key (forged or tampered).",
    "malformed": "A validly signed body that is not JSON of the config schema (a cloud bug, never silent).",
}
_FIELDS = frozenset({"device_id", "version", "issued_at", "expires_at", "profile", "thresholds", "geofences"})


def config_topic(device_id: str) -> str:
    """The retained MQTT topic a device's config is published on (QoS 1)."""
    return f"fleet/v1/{device_id}/config"


def _malformed(detail: str) -> VerificationError:
    return VerificationError("malformed", detail)


def _time(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or abs(value) > MAX_ABS_TIME_S:
        raise _malformed(f"{name} must be a finite time within {MAX_ABS_TIME_S:g} s, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class SignedConfig:
    """One configuration for one device. ``None``/empty fields leave the agent's own ``agent.toml`` value.

    ``profile``: a bundled firmware profile name; ``thresholds``: overrides on top of the profile's and
    agent.toml's; ``geofences``: a GeoJSON object (checked in full by the agent's loader, not here).
    Construction checks the shape and raises ``VerificationError('malformed')``.
    """

    device_id: str
    version: int
    issued_at: float
    expires_at: float
    profile: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    geofences: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not DEVICE_ID_RE.fullmatch(self.device_id):
            raise _malformed(f"device_id {self.device_id!r} does not match {DEVICE_ID_RE.pattern}")
        v = self.version
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_VERSION:
            raise _malformed(f"version must be an int in [1, {MAX_VERSION}], not {v!r}")
        object.__setattr__(self, "issued_at", _time("issued_at", self.issued_at))
        object.__setattr__(self, "expires_at", _time("expires_at", self.expires_at))
        if self.expires_at <= self.issued_at:
            raise _malformed("expires_at must be after issued_at")
        if self.profile is not None and (not isinstance(self.profile, str)
                                         or not PROFILE_NAME_RE.fullmatch(self.profile)):
            raise _malformed(f"profile {self.profile!r} is not a profile name ({PROFILE_NAME_RE.pattern})")
        if not isinstance(self.thresholds, Mapping) or len(self.thresholds) > MAX_THRESHOLDS:
            raise _malformed(f"thresholds must be a table of at most {MAX_THRESHOLDS} numbers")
        thresholds: dict[str, float] = {}
        for name, value in self.thresholds.items():
            if not isinstance(name, str) or not 0 < len(name) <= MAX_THRESHOLD_NAME_CHARS:
                raise _malformed(f"threshold name {name!r}: a str of 1-{MAX_THRESHOLD_NAME_CHARS} chars")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _malformed(f"threshold {name}: a finite number, not {value!r}")
            thresholds[name] = float(value)
        object.__setattr__(self, "thresholds", MappingProxyType(dict(sorted(thresholds.items()))))
        if self.geofences is not None and not isinstance(self.geofences, Mapping):
            raise _malformed("geofences must be a GeoJSON object or null")

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "version": self.version, "issued_at": self.issued_at,
                "expires_at": self.expires_at, "profile": self.profile, "thresholds": dict(self.thresholds),
                "geofences": None if self.geofences is None else dict(self.geofences)}


def canonical_body(config: SignedConfig) -> bytes:
    """Sorted-key, compact, strict JSON of ``config`` (``WireError('invalid_record')`` if not strict JSON)."""
    try:
        text = json.dumps(config.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, a non-JSON value or absurd nesting in the GeoJSON
        raise WireError("invalid_record", f"config is not strict JSON: {exc}") from None
    return text.encode("utf-8")


def seal_config(config: SignedConfig, key: Ed25519PrivateKey) -> bytes:
    """The signed envelope; ``WireError('invalid_record')`` if it would exceed ``MAX_CONFIG_BYTES``."""
    signed = MAGIC + bytes([CONFIG_FORMAT_VERSION]) + canonical_body(config)
    if len(signed) + SIGNATURE_BYTES > MAX_CONFIG_BYTES:
        raise WireError("invalid_record", f"sealed config of {len(signed) + SIGNATURE_BYTES} bytes exceeds "
                                          f"MAX_CONFIG_BYTES={MAX_CONFIG_BYTES}")
    return signed + key.sign(signed)


def open_config(blob: bytes, fleet_key: Ed25519PublicKey) -> SignedConfig:
    """Verify ``blob`` with the pinned fleet key and decode it (see the module docstring for the order)."""
    if len(blob) > MAX_CONFIG_BYTES:
        raise VerificationError("oversized", f"{len(blob)} bytes > MAX_CONFIG_BYTES={MAX_CONFIG_BYTES}")
    if blob[: len(MAGIC)] != MAGIC[: len(blob)]:
        raise VerificationError("bad_magic", f"starts with {bytes(blob[:len(MAGIC)])!r}")
    if len(blob) < len(MAGIC) + 1 + SIGNATURE_BYTES:
        raise VerificationError("truncated", f"{len(blob)} bytes")
    if blob[len(MAGIC)] != CONFIG_FORMAT_VERSION:
        raise VerificationError("unknown_version", f"config format {blob[len(MAGIC)]}; "
                                                   f"this code reads {CONFIG_FORMAT_VERSION}")
    signed, signature = bytes(blob[:-SIGNATURE_BYTES]), bytes(blob[-SIGNATURE_BYTES:])
    try:
        fleet_key.verify(signature, signed)
    except InvalidSignature:
        raise VerificationError("bad_signature", "not signed by the pinned fleet config key") from None
    try:
        doc = json.loads(signed[len(MAGIC) + 1:].decode("utf-8"),
                         parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"body is not JSON: {exc!r:.200}") from None
    if not isinstance(doc, dict) or set(doc) != _FIELDS:
        raise _malformed(f"body must be an object with exactly the fields {sorted(_FIELDS)}")
    thresholds = doc["thresholds"]
    if not isinstance(thresholds, dict):
        raise _malformed("thresholds must be an object")
    return SignedConfig(doc["device_id"], doc["version"], doc["issued_at"], doc["expires_at"], doc["profile"],
                        thresholds, doc["geofences"])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def status_payload(applied_version: int, result: str, offered_version: int | None = None, reason: str = ""
                   ) -> dict[str, Any]:
    """The payload of a ``CONFIG_STATUS_KIND`` record."""
    if result not in STATUS_RESULTS:
        raise ValueError(f"result {result!r} is not one of {STATUS_RESULTS}")
    return {"applied_version": applied_version, "result": result, "offered_version": offered_version,
            "reason": reason}
