"""GeoJSON fences load from real files; each kind of bad feature is refused naming its index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.detection.geojson import load_geofences
from edge_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


def _write(tmp_path: Path, features: list[dict[str, object]]) -> Path:
    path = tmp_path / "fences.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(geometry: dict[str, object], **props: object) -> dict[str, object]:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def test_the_deploy_example_loads() -> None:
    fences = load_geofences(ROOT / "deploy" / "geofences.example.geojson")
    assert [(f.id, f.kind) for f in fences] == [("depot-north", "polygon"), ("customer-1042", "circle")]
    assert len(fences[0].rings) == 2  # outer ring and the workshop hole
    assert fences[1].radius_m == 150.0 and fences[1].center == (37.63, 55.69)


def test_multipolygon_ids_and_names(tmp_path: Path) -> None:
    hole = [[0.2, 0.2], [0.2, 0.4], [0.4, 0.4], [0.4, 0.2], [0.2, 0.2]]
    far = [[5.0, 5.0], [6.0, 5.0], [6.0, 6.0], [5.0, 5.0]]
    path = _write(tmp_path, [
        {"type": "Feature", "id": 7, "properties": None,
         "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE, hole], [far]]}},
        _feature({"type": "Polygon", "coordinates": [SQUARE]}, id="yard", name="Yard"),
    ])
    a, b = load_geofences(path)
    assert (a.id, a.name, len(a.rings)) == ("7", "7", 3)
    assert (b.id, b.name) == ("yard", "Yard")


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (_feature({"type": "Polygon", "coordinates": [SQUARE]}), r"features\[1\]: needs an id"),
        (_feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, id="x"), "at least 4"),
        (_feature({"type": "Polygon", "coordinates": [[*SQUARE[:-1], [0.5, 0.5]]]}, id="x"), "not closed"),
        (_feature({"type": "Point", "coordinates": [1.0, 2.0]}, id="x"), "radius_m"),
        (_feature({"type": "Point", "coordinates": [1.0, 2.0]}, id="x", radius_m=-5), "radius_m"),
        (_feature({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, id="x"), "LineString"),
        (_feature({"type": "Point", "coordinates": [200.0, 2.0]}, id="x", radius_m=5), "out of range"),
        (_feature({"type": "Polygon", "coordinates": [SQUARE]}, id="a"), "duplicate fence id"),
        (_feature({"type": "Polygon", "coordinates": [[[-170, 0], [170, 0], [170, 1], [-170, 0]]]}, id="x"),
         "antimeridian"),
        ({"type": "Feature", "properties": {"id": "x"}}, "geometry is missing"),
    ],
)
def test_bad_features_are_refused_by_index(tmp_path: Path, feature: dict[str, object], message: str) -> None:
    good = _feature({"type": "Polygon", "coordinates": [SQUARE]}, id="a")
    with pytest.raises(ConfigError, match=message) as info:
        load_geofences(_write(tmp_path, [good, feature]))
    assert "features[1]" in str(info.value)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_geofences(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_geofences(bad)
    bad.write_text('{"type": "GeometryCollection"}')
    with pytest.raises(ConfigError, match="FeatureCollection"):
        load_geofences(bad)
