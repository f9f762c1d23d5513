"""Field checks for scenario files: each raises ``ScenarioError`` whose message starts with the field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message starts with the field at fault."""


def non_negative(table: Mapping[str, Any], key: str, where: str, *, positive: bool = False,
                 default: float | None = None) -> float:
    """A finite number >= 0 (> 0 with ``positive``); ``default`` when absent, else required."""
    value = table.get(key, default)
    if value is None:
        raise ScenarioError(f"{where}.{key}: required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where}.{key}: must be a number, got {value!r}")
    if positive and value <= 0:
        raise ScenarioError(f"{where}.{key}: must be > 0, got {value!r}")
    if value < 0:
        raise ScenarioError(f"{where}.{key}: must be >= 0, got {value!r}")
    return float(value)


def small_int(table: Mapping[str, Any], key: str, where: str, hi: int) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ScenarioError(f"{where}.{key}: must be an integer 0..{hi}, got {value!r}")
    return value


def latlon(value: object, where: str) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise ScenarioError(f"{where}: must be [lat, lon], got {value!r}")
    lat, lon = float(value[0]), float(value[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ScenarioError(f"{where}: [lat, lon] out of range: {value!r}")
    return lat, lon


def only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ScenarioError(f"{where}.{unknown[0]}: unknown field (expected one of {', '.join(sorted(allowed))})")


def duration(table: Mapping[str, Any], where: str) -> float:
    if ("minutes" in table) == ("seconds" in table):
        raise ScenarioError(f"{where}: give exactly one of minutes, seconds")
    if "minutes" in table:
        return 60.0 * non_negative(table, "minutes", where, positive=True)
    return non_negative(table, "seconds", where, positive=True)


def signed(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}.{key}: must be a number, got {value!r}")
    return float(value)
