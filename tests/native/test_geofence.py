"""The geofence kernel equals its twin, its grid loses no fence, and it answers known geometry right."""

from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from edge_agent.detection.geofence import FenceArrays, compile_fences
from edge_agent.detection.geojson import Fence
from native import geofence_py

pytestmark = pytest.mark.native

KERNEL = native.kernel("geofence")
LAT0, LON0 = 55.68, 37.62  # around the real capture (Moscow)


def _star(cx: float, cy: float, radius_deg: float, n: int, wobble: list[float]) -> tuple[tuple[float, float], ...]:
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        r = radius_deg * (0.5 + 0.5 * wobble[k % len(wobble)])
        pts.append((cx + r * math.cos(a) / math.cos(math.radians(cy)), cy + r * math.sin(a)))
    pts.append(pts[0])
    return tuple(pts)


@st.composite
def fences(draw: st.DrawFn) -> list[Fence]:
    out: list[Fence] = []
    for i in range(draw(st.integers(0, 12))):
        cx = LON0 + draw(st.floats(-0.05, 0.05))
        cy = LAT0 + draw(st.floats(-0.03, 0.03))
        size = draw(st.floats(0.0005, 0.02))
        if draw(st.booleans()):
            out.append(Fence(f"c{i}", f"c{i}", "circle", center=(cx, cy), radius_m=size * 111_000))
        else:
            wobble = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=7))
            rings = [_star(cx, cy, size, draw(st.integers(3, 16)), wobble)]
            if draw(st.booleans()):
                rings.append(_star(cx, cy, size * 0.2, 5, [0.5]))
            out.append(Fence(f"p{i}", f"p{i}", "polygon", rings=tuple(rings)))
    return out


points = st.lists(
    st.tuples(st.floats(LAT0 - 0.06, LAT0 + 0.06), st.floats(LON0 - 0.1, LON0 + 0.1)), max_size=60
).map(lambda pts: (array("d", [p[0] for p in pts] + [math.nan]), array("d", [p[1] for p in pts] + [math.nan])))


GridArgs = tuple[array, array, array, array, array, array, array, array, array, array, array]


def _args(fa: FenceArrays) -> GridArgs:
    return (fa.params, fa.dims, fa.cell_first, fa.cell_fences, fa.bbox, fa.kind, fa.ring_first, fa.vert_first,
            fa.xs, fa.ys, fa.circle)


def _same(a: tuple[array, ...], b: tuple[array, ...]) -> None:
    assert [x.typecode for x in a] == [x.typecode for x in b]
    assert [x.tobytes() for x in a] == [x.tobytes() for x in b]


@settings(max_examples=300, deadline=None)
@given(fences(), points, st.floats(0.0, 200.0))
def test_kernel_equals_twin(fs: list[Fence], pts: tuple[array, array], margin: float) -> None:
    fa = compile_fences(fs, margin)
    _same(KERNEL.build_grid(fa.bbox, fa.params, fa.dims), geofence_py.build_grid(fa.bbox, fa.params, fa.dims))
    lats, lons = pts
    _same(KERNEL.query(lats, lons, *_args(fa), margin), geofence_py.query(lats, lons, *_args(fa), margin))


@settings(max_examples=150, deadline=None)
@given(fences(), points, st.floats(0.0, 200.0))
def test_grid_finds_what_a_single_cell_finds(fs: list[Fence], pts: tuple[array, array], margin: float) -> None:
    fa = compile_fences(fs, margin)
    lats, lons = pts
    dims = array("I", [1, 1])
    first, members = geofence_py.build_grid(fa.bbox, fa.params, dims)
    brute = geofence_py.query(lats, lons, fa.params, dims, first, members, *_args(fa)[4:], margin)
    _same(KERNEL.query(lats, lons, *_args(fa), margin)[:4], brute[:4])


def test_many_hits_grow_the_output() -> None:
    # 300 nested circles around one point: every fix hits all of them, far more than the first guess.
    fs = [Fence(str(i), str(i), "circle", center=(LON0, LAT0), radius_m=100.0 + i) for i in range(300)]
    fa = compile_fences(fs, 0.0)
    lats, lons = array("d", [LAT0] * 50), array("d", [LON0] * 50)
    hit_fix, hit_fence, inside, distance, stats = KERNEL.query(lats, lons, *_args(fa), 0.0)
    assert len(hit_fix) == 50 * 300 and all(inside) and stats[geofence_py.STAT_HITS] == 50 * 300
    assert list(hit_fence[:300]) == list(range(300))
    assert distance[0] == pytest.approx(100.0)


def test_square_with_a_hole_and_a_circle() -> None:
    # A 0.01 x 0.01 degree square (about 630 m x 1110 m here) with a 0.002 degree square hole.
    outer = ((37.60, 55.67), (37.61, 55.67), (37.61, 55.68), (37.60, 55.68), (37.60, 55.67))
    hole = ((37.604, 55.674), (37.606, 55.674), (37.606, 55.676), (37.604, 55.676), (37.604, 55.674))
    fs = [
        Fence("depot", "Depot", "polygon", rings=(outer, hole)),
        Fence("cust", "Customer", "circle", center=(37.62, 55.675), radius_m=200.0),
    ]
    fa = compile_fences(fs, 50.0)
    probes = [
        (55.672, 37.602, {0: 1}),  # in the depot, outside the hole
        (55.675, 37.605, {0: 0}),  # in the hole: outside, but within 50 m of the hole's edge? no: ~63 m
        (55.675, 37.62, {1: 1}),  # circle centre
        (55.675 + 240 / 111_195, 37.62, {1: 0}),  # 240 m north of the centre: 40 m outside the circle
        (55.69, 37.70, {}),  # nowhere
    ]
    lats = array("d", [p[0] for p in probes])
    lons = array("d", [p[1] for p in probes])
    hit_fix, hit_fence, inside, distance, _ = KERNEL.query(lats, lons, *_args(fa), 50.0)
    got: dict[int, dict[int, int]] = {}
    for j in range(len(hit_fix)):
        got.setdefault(hit_fix[j], {})[hit_fence[j]] = inside[j]
    assert got.get(0) == {0: 1}
    assert got.get(1) is None  # the hole's edge is 0.001 deg lon (~63 m) or 0.001 deg lat (~111 m) away
    assert got.get(2) == {1: 1}
    assert got.get(3) == {1: 0}
    assert 4 not in got
    circle_out = next(distance[j] for j in range(len(hit_fix)) if hit_fix[j] == 3)
    assert circle_out == pytest.approx(-40.0, abs=0.5)
    depot_in = next(distance[j] for j in range(len(hit_fix)) if hit_fix[j] == 0)
    # Nearest edge of the depot from (55.672, 37.602) is the west side, 0.002 deg lon away.
    assert depot_in == pytest.approx(0.002 * geofence_py.M_PER_DEG * math.cos(math.radians(55.672)), rel=1e-6)


def test_kernel_equals_twin_on_the_real_capture() -> None:
    """Fixes from the real receiver log (gpsd regression suite) against the example fences plus fences
    drawn across its track, with the detector's 20 m margin."""
    from pathlib import Path

    from edge_agent.counters import Counters
    from edge_agent.decoding.nmea import NmeaDecoder
    from edge_agent.detection.geojson import load_geofences
    from edge_agent.model import TimedLine

    root = Path(__file__).resolve().parents[2]
    decoder = NmeaDecoder(Counters())
    fixes = []
    text = (root / "tests" / "data" / "real" / "nmea" / "gnss_drive.nmea").read_text(encoding="ascii")
    for i, line in enumerate(text.splitlines()):
        fixes += decoder.feed(TimedLine(1401092000.0 + i, line))
    fixes += decoder.flush()
    fences = load_geofences(root / "deploy" / "geofences.example.geojson")
    lat, lon = fixes[0].lat, fixes[0].lon
    for k, r in enumerate((2.0, 4.0, 8.0, 30.0)):  # circles whose edges the track crosses, or not
        fences.append(Fence(f"ring{k}", "", "circle", center=(lon, lat), radius_m=r))
    fa = compile_fences(fences, 20.0)
    lats = array("d", [f.lat for f in fixes])  # NaN for the no-fix epochs, as the receiver sent them
    lons = array("d", [f.lon for f in fixes])
    got = KERNEL.query(lats, lons, *_args(fa), 20.0)
    _same(got, geofence_py.query(lats, lons, *_args(fa), 20.0))
    hit_fences = {fa.fences[f].id for f in got[1]}
    assert {"depot-north", "ring1", "ring2", "ring3"} <= hit_fences
    assert got[4][geofence_py.STAT_OUTSIDE_GRID] == 10  # the ten NaN epochs fall outside any grid
