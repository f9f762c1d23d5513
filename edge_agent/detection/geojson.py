"""Geofences from a GeoJSON file (RFC 7946): polygons with holes, multipolygons, and circles.

A fence is a ``Feature`` whose geometry is a ``Polygon`` or ``MultiPolygon``, or a ``Point`` with a
``radius_m`` property (GeoJSON has no circle; this is the common convention). Its id comes from
``properties.id`` or the feature's own ``id``; its name from ``properties.name`` (default: the id).
Everything is checked once at load: a bad feature is a ``ConfigError`` naming the feature index and
what is wrong, so a vehicle never runs with half of its fences silently missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError

Position = tuple[float, float]  # (longitude, latitude), RFC 7946 3.1.1 order
Ring = tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class Fence:
    """One geofence. ``rings`` hold every ring of every part (outer rings and holes, closed);
    containment is the even-odd rule over all of them. Circles have ``center`` and ``radius_m``."""

    id: str
    name: str
    kind: str  # "polygon" | "circle"
    rings: tuple[Ring, ...] = ()
    center: Position | None = None
    radius_m: float = 0.0


def load_geofences(path: str | Path) -> list[Fence]:
    """Read and validate a GeoJSON file; raise ``ConfigError`` naming the file and the first bad feature."""
    src = Path(path)
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read geofences: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{src}: not valid JSON: {exc}") from exc
    return parse_geofences(doc, str(src))


def parse_geofences(doc: Any, where: str = "geofences") -> list[Fence]:
    """Validate a parsed GeoJSON document (a FeatureCollection or a single Feature)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a GeoJSON object is required")
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise ConfigError(f"{where}: FeatureCollection.features must be a list")
    elif doc.get("type") == "Feature":
        features = [doc]
    else:
        raise ConfigError(f"{where}: expected a FeatureCollection or a Feature, got type {doc.get('type')!r}")
    fences: list[Fence] = []
    seen: set[str] = set()
    for index, feature in enumerate(features):
        fence = _feature(feature, f"{where}: features[{index}]")
        if fence.id in seen:
            raise ConfigError(f"{where}: features[{index}]: duplicate fence id {fence.id!r}")
        seen.add(fence.id)
        fences.append(fence)
    return fences


def _feature(feature: Any, where: str) -> Fence:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ConfigError(f"{where}: not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise ConfigError(f"{where}: properties must be an object or null")
    raw_id = props.get("id", feature.get("id"))
    # RFC 7946 3.2: a feature id is a string or a number.
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float) or raw_id == "":
        raise ConfigError(f"{where}: needs an id (properties.id or the feature's id, a string or number)")
    fence_id = str(raw_id)
    name = props.get("name", fence_id)
    if not isinstance(name, str):
        raise ConfigError(f"{where}: properties.name must be a string")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise ConfigError(f"{where}: geometry is missing")
    gtype = geometry.get("type")
    coords = geometry.get("coordinates")
    if gtype == "Point":
        radius = props.get("radius_m")
        if isinstance(radius, bool) or not isinstance(radius, int | float) or not 0 < radius < 1e7:
            raise ConfigError(f"{where}: a Point fence needs properties.radius_m > 0 (metres)")
        if not math.isfinite(radius):
            raise ConfigError(f"{where}: properties.radius_m must be finite")
        return Fence(fence_id, name, "circle", center=_position(coords, where), radius_m=float(radius))
    if gtype == "Polygon":
        rings = _polygon(coords, where)
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise ConfigError(f"{where}: MultiPolygon coordinates must be a non-empty list of polygons")
        rings = [ring for i, part in enumerate(coords) for ring in _polygon(part, f"{where}: polygon {i}")]
    else:
        raise ConfigError(f"{where}: geometry type {gtype!r} is not a fence (Polygon, MultiPolygon, Point)")
    lons = [lon for ring in rings for lon, _ in ring]
    # RFC 7946 3.1.9: geometries crossing the antimeridian are split; one that spans more than half
    # the globe in longitude was almost certainly not split, and our planar tests would invert it.
    if max(lons) - min(lons) > 180.0:
        raise ConfigError(f"{where}: spans more than 180 degrees of longitude (split it at the antimeridian)")
    return Fence(fence_id, name, "polygon", rings=tuple(rings))


def _position(raw: Any, where: str) -> Position:
    if not isinstance(raw, list | tuple) or len(raw) < 2 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in raw
    ):
        raise ConfigError(f"{where}: a position is [longitude, latitude] numbers, got {raw!r}")
    lon, lat = float(raw[0]), float(raw[1])
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ConfigError(f"{where}: position {raw!r} is out of range (longitude first, RFC 7946 3.1.1)")
    return lon, lat


def _polygon(raw: Any, where: str) -> list[Ring]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: Polygon coordinates must be a non-empty list of rings")
    return [_ring(ring, f"{where}: ring {i}") for i, ring in enumerate(raw)]


def _ring(raw: Any, where: str) -> Ring:
    # RFC 7946 3.1.6: a linear ring has four or more positions and its first and last are equal.
    if not isinstance(raw, Sequence) or len(raw) < 4:
        raise ConfigError(f"{where}: a linear ring needs at least 4 positions")
    ring = tuple(_position(p, where) for p in raw)
    if ring[0] != ring[-1]:
        raise ConfigError(f"{where}: ring is not closed (first and last positions differ)")
    return ring
