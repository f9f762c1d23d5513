"""Geofence detector: holes, circles, hysteresis, dwell, fix quality, restarts, and a real capture."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.decoding.nmea import NmeaDecoder
from edge_agent.detection import DetectionBatch
from edge_agent.detection.geofence import GeofenceDetector
from edge_agent.detection.geojson import Fence, load_geofences
from edge_agent.model import Event, Fix, TimedLine
from native.geofence_py import M_PER_DEG

# The detectors run native/ kernels: CI runs these compiled and with FLEET_PURE_PYTHON=1.
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parents[3]
CAPTURE = ROOT / "tests" / "data" / "real" / "nmea" / "gnss_drive.nmea"
LAT0, LON0 = 48.0, 11.0
T0 = 1_700_000_000.0
THRESHOLDS = {"geofence_hysteresis_m": 10.0, "geofence_min_dwell_s": 3.0}


def _ll(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the origin -> (lat, lon)."""
    return LAT0 + y / M_PER_DEG, LON0 + x / (M_PER_DEG * math.cos(math.radians(LAT0)))


def _fix(t: float, x: float, y: float, **kw: object) -> Fix:
    lat, lon = _ll(x, y)
    args: dict[str, object] = {"valid": True, "quality": 1, "hdop": 1.0, "mode": 3, **kw}
    return Fix(timestamp=T0 + t, lat=lat, lon=lon, **args)  # type: ignore[arg-type]


def _square(x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], ...]:
    corners = [_ll(x0, y0), _ll(x1, y0), _ll(x1, y1), _ll(x0, y1), _ll(x0, y0)]
    return tuple((lon, lat) for lat, lon in corners)


DEPOT = Fence("depot", "Depot", "polygon", rings=(_square(0, 0, 200, 200), _square(70, 70, 130, 130)))
lat_c, lon_c = _ll(500, 100)
CUSTOMER = Fence("cust", "Customer", "circle", center=(lon_c, lat_c), radius_m=100.0)


def _drive(y: float, x_from: float = -100, x_to: float = 700, speed: float = 5.0) -> list[Fix]:
    n = int((x_to - x_from) / speed) + 1
    return [_fix(float(i), x_from + i * speed, y) for i in range(n)]


def _run(det: GeofenceDetector, fixes: list[Fix], batch: int = 7) -> list[Event]:
    events: list[Event] = []
    for k in range(0, len(fixes), batch):
        events += det.process(DetectionBatch(fixes=fixes[k:k + batch]))
    return events


def _summary(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.kind, str(e.payload["fence_id"])) for e in events]


def test_drive_through_the_depot_yard_and_the_customer_circle() -> None:
    det = GeofenceDetector([DEPOT, CUSTOMER], THRESHOLDS)
    events = _run(det, _drive(y=40))
    assert _summary(events) == [
        ("geofence_entered", "depot"), ("geofence_exited", "depot"),
        ("geofence_entered", "cust"), ("geofence_exited", "cust"),
    ]
    entered, exited = events[0], events[1]
    # First fix more than 10 m inside is x=15 (t=23); confirmed 3 s of dwell later.
    assert entered.payload["entered_at"] == T0 + 23 and entered.timestamp == T0 + 26
    assert exited.payload["exited_at"] == T0 + 63  # x=215, 15 m past the east edge
    assert exited.payload["duration_s"] == 40.0
    assert exited.payload["name"] == "Depot"
    # y=40 passes the circle centre (500, 100) at 60 m: inside from x=~420 to ~580.
    distance = events[2].payload["distance_m"]
    assert isinstance(distance, float) and distance > 10.0


def test_the_workshop_hole_is_outside() -> None:
    det = GeofenceDetector([DEPOT], THRESHOLDS)
    events = _run(det, _drive(y=100, x_to=300))
    assert [e.kind for e in events] == ["geofence_entered", "geofence_exited", "geofence_entered", "geofence_exited"]
    assert events[1].payload["exited_at"] == T0 + 37  # x=85: 15 m into the hole


def test_gnss_jitter_at_a_boundary_does_not_flap() -> None:
    rng = random.Random(3)
    fixes = [_fix(float(t), rng.uniform(-9.0, 9.0), 100.0 + rng.uniform(-2, 2)) for t in range(600)]
    assert _run(GeofenceDetector([DEPOT], THRESHOLDS), fixes) == []
    # Without hysteresis and dwell the same fixes flap: the test above could fail.
    flappy = _run(GeofenceDetector([DEPOT], {"geofence_hysteresis_m": 0.0, "geofence_min_dwell_s": 0.0}), fixes)
    assert len(flappy) > 100


def test_minimum_dwell() -> None:
    det = GeofenceDetector([DEPOT], {"geofence_hysteresis_m": 10.0, "geofence_min_dwell_s": 5.0})
    # 4 s deep inside, then out again: shorter than the dwell, no event.
    brief = [_fix(float(t), -50.0, 40.0) for t in range(5)] + [_fix(5.0 + t, 50.0, 40.0) for t in range(4)]
    brief += [_fix(9.0 + t, -50.0, 40.0) for t in range(10)]
    assert _run(det, brief) == []
    stay = [_fix(20.0 + t, 50.0, 40.0) for t in range(6)]
    events = _run(det, stay)
    assert [e.kind for e in events] == ["geofence_entered"]
    assert events[0].payload["entered_at"] == T0 + 20 and events[0].payload["dwell_s"] == 5.0


def test_low_quality_fixes_are_ignored_and_counted() -> None:
    counters = Counters()
    det = GeofenceDetector([DEPOT], THRESHOLDS, counters)
    bad = [
        _fix(0.0, 50.0, 40.0, valid=False),
        _fix(1.0, 50.0, 40.0, quality=0),
        _fix(2.0, 50.0, 40.0, hdop=12.0),
        _fix(3.0, 50.0, 40.0, mode=1),
        Fix(timestamp=T0 + 4, lat=math.nan, lon=math.nan, valid=True, quality=1),
    ] * 4
    assert _run(det, bad) == []
    assert counters.get("geofence_fixes_ignored") == len(bad)
    # The same positions with good quality do enter.
    assert [e.kind for e in _run(det, [_fix(30.0 + t, 50.0, 40.0) for t in range(5)])] == ["geofence_entered"]


@pytest.mark.parametrize("cut", [10, 24, 26, 27, 40, 64, 66, 100])
def test_restart_through_state_continues_without_duplicates(cut: int) -> None:
    fixes = _drive(y=40)
    whole = _run(GeofenceDetector([DEPOT, CUSTOMER], THRESHOLDS), fixes)
    first = GeofenceDetector([DEPOT, CUSTOMER], THRESHOLDS)
    before = _run(first, fixes[:cut])
    saved = json.loads(json.dumps(first.state(), allow_nan=False))  # what the outbox stores
    second = GeofenceDetector([DEPOT, CUSTOMER], THRESHOLDS)
    second.restore(saved)
    after = _run(second, fixes[cut:])
    assert before + after == whole


def test_restore_is_lenient_and_drops_removed_fences() -> None:
    det = GeofenceDetector([DEPOT], THRESHOLDS)
    det.restore({})
    det.restore({"fences": {"gone": {"inside": True}, "depot": "junk"}, "clock": {"now": "x"}})
    assert det.state()["fences"] == {}
    # A restored "inside" depot exits without entering again.
    det.restore({"fences": {"depot": {"inside": True, "entered_ts": T0}}})
    events = _run(det, [_fix(float(t), 100.0, 40.0) for t in range(3)] + [_fix(3.0 + t, -60, 40) for t in range(5)])
    assert [e.kind for e in events] == ["geofence_exited"]


def test_receiver_clock_going_backwards_gives_no_duplicate_or_negative_duration() -> None:
    fixes = _drive(y=40, x_to=300)
    # At t=40 (inside) the receiver clock jumps back an hour and carries on from there.
    jumped = [f if i < 40 else dataclasses.replace(f, timestamp=f.timestamp - 3600.0) for i, f in enumerate(fixes)]
    events = _run(GeofenceDetector([DEPOT], THRESHOLDS), jumped)
    assert [e.kind for e in events] == ["geofence_entered", "geofence_exited"]
    assert events[1].payload["duration_s"] == 39.0  # the backwards step counts as zero


def test_real_capture_enters_a_fence_around_part_of_the_track(tmp_path: Path) -> None:
    counters = Counters()
    decoder = NmeaDecoder(counters)
    fixes: list[Fix] = []
    for i, line in enumerate(CAPTURE.read_text(encoding="ascii", errors="replace").splitlines()):
        fixes += decoder.feed(TimedLine(T0 + i, line))
    fixes += decoder.flush()
    assert len(fixes) == 19 and sum(f.valid for f in fixes) == 9
    # The receiver creeps east about 6.5 m; the fence's west edge is halfway along.
    west = 37.62150
    path = tmp_path / "fence.geojson"
    ring = [[west, 55.6860], [37.6230, 55.6860], [37.6230, 55.6870], [west, 55.6870], [west, 55.6860]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "yard", "properties": {"name": "Yard"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}},
    ]}))
    det = GeofenceDetector(load_geofences(path), {"geofence_hysteresis_m": 1.0, "geofence_min_dwell_s": 2.0},
                           counters)
    events: list[Event] = []
    for fix in fixes:  # one epoch per batch, as the daemon reads them
        events += det.process(DetectionBatch(fixes=[fix]))
    assert [e.kind for e in events] == ["geofence_entered"]
    # 08:14:15 UTC is the first epoch more than 1 m east of the edge (08:14:14 is 0.8 m in).
    assert events[0].payload["entered_at"] == 1401092055.0
    assert events[0].timestamp == 1401092057.0
    assert counters.get("geofence_fixes_ignored") == 10  # the ten no-fix epochs
