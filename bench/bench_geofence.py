"""Geofence benchmark: the grid-indexed kernel against shapely 2.x ``STRtree`` on the same data.

    python -m bench.bench_geofence [--fences 10000] [--fixes 1000000] [--pure-sample 20000] [--seed 7]

Generates (seeded) half polygons (star-shaped, 6-24 vertices, 50-800 m, a third with a hole) and
half circles (30-500 m) over a 55 x 37 km city area, and fixes: half uniform over the area, half
scattered around fence centres so many fall inside. Measures points per second of containment for

(a) ``compiled``: ``native/_geofence`` (``GeofenceDetector``'s path: grid lookup + even-odd +
    haversine, with signed distances), margin 0 and the detector's default 20 m hysteresis margin;
(b) ``pure``: the pure-Python twin on a subsample, scaled (its answers are checked equal to (a));
(c) ``shapely``: ``STRtree.query(points, predicate="intersects")``, circles given to it as
    128-gons on the sphere (GEOS has no metric circle).

Every (fix, fence) containment answer of (a) is compared with (c); mismatches are counted, and those
within the 128-gon's sagitta of a circle's edge (where the two models legitimately differ) are
counted apart. Target (issue): (a) >= 2x (c).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from array import array

from edge_agent.detection.geofence import compile_fences
from edge_agent.detection.geojson import Fence
from native import geofence_py, is_compiled, kernel
from native.geofence_py import EARTH_RADIUS_M, M_PER_DEG, haversine_m

LAT0, LAT1, LON0, LON1 = 55.5, 56.0, 37.3, 37.9
CIRCLE_SIDES = 128


def _star(rng: random.Random, lon: float, lat: float, radius_m: float, n: int) -> tuple[tuple[float, float], ...]:
    k = math.cos(math.radians(lat))
    pts = []
    for i in range(n):
        a = 2 * math.pi * (i + rng.uniform(-0.3, 0.3)) / n
        r = radius_m * rng.uniform(0.6, 1.0) / M_PER_DEG
        pts.append((lon + r * math.cos(a) / k, lat + r * math.sin(a)))
    pts.append(pts[0])
    return tuple(pts)


def make_fences(n: int, rng: random.Random) -> list[Fence]:
    fences = []
    for i in range(n):
        lon, lat = rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1)
        if i % 2:
            fences.append(Fence(f"c{i}", f"circle {i}", "circle", center=(lon, lat), radius_m=rng.uniform(30, 500)))
            continue
        radius = rng.uniform(50, 800)
        rings = [_star(rng, lon, lat, radius, rng.randint(6, 24))]
        if rng.random() < 1 / 3:
            rings.append(_star(rng, lon, lat, radius * 0.25, rng.randint(4, 8))[::-1])
        fences.append(Fence(f"p{i}", f"polygon {i}", "polygon", rings=tuple(rings)))
    return fences


def make_fixes(n: int, fences: list[Fence], rng: random.Random) -> tuple[array, array]:
    lats, lons = array("d"), array("d")
    for i in range(n):
        if i % 2:
            lats.append(rng.uniform(LAT0, LAT1))
            lons.append(rng.uniform(LON0, LON1))
            continue
        f = fences[rng.randrange(len(fences))]
        lon, lat = f.center if f.center else f.rings[0][0]
        spread = (f.radius_m or 500.0) / M_PER_DEG
        lats.append(lat + rng.gauss(0, spread))
        lons.append(lon + rng.gauss(0, spread) / math.cos(math.radians(lat)))
    return lats, lons


def _circle_polygon(lon: float, lat: float, radius_m: float) -> list[tuple[float, float]]:
    # Destination point on the sphere at bearing b and angular distance d (the haversine sphere).
    d = radius_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    out = []
    for i in range(CIRCLE_SIDES):
        b = 2 * math.pi * i / CIRCLE_SIDES
        p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
        l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
        out.append((math.degrees(l2), math.degrees(p2)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fences", type=int, default=10_000)
    ap.add_argument("--fixes", type=int, default=1_000_000)
    ap.add_argument("--pure-sample", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    import numpy as np
    import shapely

    rng = random.Random(args.seed)
    fences = make_fences(args.fences, rng)
    lats, lons = make_fixes(args.fixes, fences, rng)
    compiled = kernel("geofence")
    if not is_compiled(compiled):
        raise SystemExit("the compiled kernel is not built: python setup.py build_ext --inplace")

    rows: list[tuple[str, int, float]] = []
    t0 = time.perf_counter()
    fa = compile_fences(fences, 0.0)
    build_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    hit_fix, hit_fence, inside, _dist, _stats = fa.query(lats, lons)
    rows.append(("compiled, margin 0 m", len(lats), time.perf_counter() - t0))
    fa20 = compile_fences(fences, 20.0)
    t0 = time.perf_counter()
    fa20.query(lats, lons)
    rows.append(("compiled, margin 20 m", len(lats), time.perf_counter() - t0))

    sub = min(args.pure_sample, len(lats))
    grid = (fa.params, fa.dims, fa.cell_first, fa.cell_fences, fa.bbox, fa.kind, fa.ring_first, fa.vert_first,
            fa.xs, fa.ys, fa.circle)
    t0 = time.perf_counter()
    pure = geofence_py.query(lats[:sub], lons[:sub], *grid, 0.0)
    rows.append((f"pure twin ({sub:,} fixes, scaled)", sub, time.perf_counter() - t0))
    same_sub = compiled.query(lats[:sub], lons[:sub], *grid, 0.0)
    pure_equal = all(a.tobytes() == b.tobytes() for a, b in zip(pure, same_sub, strict=True))

    t0 = time.perf_counter()
    geoms = [
        shapely.Polygon(_circle_polygon(*f.center, f.radius_m)) if f.center
        else shapely.Polygon(f.rings[0], f.rings[1:])
        for f in fences
    ]
    tree = shapely.STRtree(geoms)
    points = shapely.points(np.column_stack([np.frombuffer(lons, dtype=np.float64),
                                             np.frombuffer(lats, dtype=np.float64)]))
    build_shapely = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = tree.query(points, predicate="intersects")
    shapely_s = time.perf_counter() - t0
    rows.append(("shapely STRtree intersects", len(lats), shapely_s))

    n_f = len(fences)
    ours = np.frombuffer(hit_fix, dtype=np.uint32).astype(np.int64) * n_f + np.frombuffer(hit_fence, dtype=np.uint32)
    ours = ours[np.frombuffer(inside, dtype=np.uint8) == 1]
    theirs = pairs[0].astype(np.int64) * n_f + pairs[1]
    diff = np.setxor1d(ours, theirs)
    explained = 0
    for code in diff:
        i, f = divmod(int(code), n_f)
        fence = fences[f]
        if fence.center is not None:
            edge = abs(fence.radius_m - haversine_m(lats[i], lons[i], fence.center[1], fence.center[0]))
            sagitta = fence.radius_m * (1 - math.cos(math.pi / CIRCLE_SIDES))
            explained += edge <= sagitta + 1e-6
    print(f"{args.fences:,} fences ({args.fences - args.fences // 2:,} polygons, {args.fences // 2:,} circles), "
          f"{len(lats):,} fixes, seed {args.seed}")
    print(f"index build: ours {build_ours:.2f} s (grid {fa.dims[0]}x{fa.dims[1]}), "
          f"shapely {build_shapely:.2f} s (geometries + STRtree + points)")
    print(f"{'variant':<36} {'fixes':>10} {'seconds':>9} {'points/s':>12} {'vs shapely':>11}")
    shapely_rate = len(lats) / shapely_s
    for name, n, secs in rows:
        rate = n / secs
        print(f"{name:<36} {n:>10,} {secs:>9.3f} {rate:>12,.0f} {rate / shapely_rate:>10.2f}x")
    print(f"containment pairs: ours {len(ours):,}, shapely {len(theirs):,}; mismatches {len(diff):,} "
          f"({explained:,} within a circle's 128-gon sagitta, {len(diff) - explained:,} other)")
    print(f"pure twin equals compiled on the subsample: {pure_equal}")


if __name__ == "__main__":
    main()
