"""Pure-Python twin of ``native/_geofence.pyx``: which geofences contain (or nearly contain) each fix.

Fences are flat arrays so the compiled kernel never touches Python objects:

* ``kind`` ('B', one per fence): ``KIND_POLYGON`` or ``KIND_CIRCLE``;
* polygons: ``ring_first`` ('I', n_fences+1 offsets into the rings; a circle owns no ring),
  ``vert_first`` ('I', n_rings+1 offsets into the vertices), ``xs`` / ``ys`` ('d', longitude /
  latitude in degrees; every ring is closed, its last vertex equal to its first). All rings of a
  fence (outer rings, holes, every part of a MultiPolygon) are tested together by the even-odd rule,
  which is containment for any valid RFC 7946 (Multi)Polygon;
* circles: ``circle`` ('d', 3 per fence: centre longitude, centre latitude, radius in metres);
* ``bbox`` ('d', 4 per fence: min lon, min lat, max lon, max lat), already widened by the query's
  margin, so a fix outside it is neither inside the fence nor within the margin of it.

The grid index is built once: ``grid_shape`` picks the cells, ``build_grid`` lists the fences whose
box touches each cell (``cell_first`` 'I' offsets into ``cell_fences`` 'I', ascending fence order).

``query`` returns ``(hit_fix 'I', hit_fence 'I', inside 'B', distance 'd', stats 'Q')``: one row per
(fix, fence) where the fix is inside the fence or within ``margin_m`` of its boundary, ordered by
fix then fence. ``distance`` is signed metres to the boundary, positive inside, negative outside; the
detector uses it for hysteresis. Stats are [fixes, fixes outside the grid, candidates tested, hits].
"""

from __future__ import annotations

import math
from array import array

KIND_POLYGON = 0
KIND_CIRCLE = 1
STAT_FIXES, STAT_OUTSIDE_GRID, STAT_TESTED, STAT_HITS = range(4)

#: Mean Earth radius (IUGG, R1 = 6371008.8 m), the usual sphere for haversine distances.
EARTH_RADIUS_M = 6371008.8
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
DEG = math.pi / 180.0
#: Upper bound on grid cells (32 MiB of cell offsets); a sparse fleet-wide fence set stays well below.
MAX_CELLS = 1 << 22


def grid_shape(bbox: array) -> tuple[array, array]:
    """Grid over the union of the fence boxes: about four cells per fence, square in degrees.

    Returns ``params`` ('d': min lon, min lat, max lon, max lat, cell width, cell height) and
    ``dims`` ('I': columns, rows).
    """
    n = len(bbox) // 4
    if n == 0:
        return array("d", [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]), array("I", [1, 1])
    min_lon = min(bbox[0::4])
    min_lat = min(bbox[1::4])
    max_lon = max(bbox[2::4])
    max_lat = max(bbox[3::4])
    width, height = max_lon - min_lon, max_lat - min_lat
    target = min(4 * n, MAX_CELLS)
    side = math.sqrt(width * height / target) if width > 0 and height > 0 else max(width, height) / target
    side = max(side, 1e-7)
    nx = max(1, min(int(width / side) + 1, 1 << 16))
    ny = max(1, min(int(height / side) + 1, 1 << 16))
    while nx * ny > MAX_CELLS:
        nx, ny = max(1, nx // 2), max(1, ny // 2)
    cell_w = width / nx if width > 0 else 1.0
    cell_h = height / ny if height > 0 else 1.0
    return array("d", [min_lon, min_lat, max_lon, max_lat, cell_w, cell_h]), array("I", [nx, ny])


def _col(x: float, origin: float, cell: float, n: int) -> int:
    i = int((x - origin) / cell)
    return n - 1 if i >= n else (0 if i < 0 else i)


def build_grid(bbox: array, params: array, dims: array) -> tuple[array, array]:
    """Cell -> candidate fences, as ``(cell_first 'I', cell_fences 'I')``."""
    nx, ny = dims[0], dims[1]
    cells: list[list[int]] = [[] for _ in range(nx * ny)]
    for f in range(len(bbox) // 4):
        x0 = _col(bbox[4 * f], params[0], params[4], nx)
        y0 = _col(bbox[4 * f + 1], params[1], params[5], ny)
        x1 = _col(bbox[4 * f + 2], params[0], params[4], nx)
        y1 = _col(bbox[4 * f + 3], params[1], params[5], ny)
        for iy in range(y0, y1 + 1):
            for ix in range(x0, x1 + 1):
                cells[iy * nx + ix].append(f)
    cell_first = array("I", [0])
    cell_fences = array("I")
    for members in cells:
        cell_fences.extend(members)
        cell_first.append(len(cell_fences))
    return cell_first, cell_fences


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on the mean-radius sphere (haversine formula)."""
    s1 = math.sin((lat2 - lat1) * DEG * 0.5)
    s2 = math.sin((lon2 - lon1) * DEG * 0.5)
    a = s1 * s1 + math.cos(lat1 * DEG) * math.cos(lat2 * DEG) * s2 * s2
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _polygon(
    lat: float, lon: float, r0: int, r1: int, vert_first: array, xs: array, ys: array
) -> tuple[int, float]:
    """Even-odd containment (W. R. Franklin's PNPOLY crossing test on raw degrees) and the distance
    in metres to the nearest edge, measured in an equirectangular plane centred on the fix."""
    inside = 0
    kx = math.cos(lat * DEG) * M_PER_DEG
    best = math.inf
    for r in range(r0, r1):
        for v in range(vert_first[r], vert_first[r + 1] - 1):
            x1, y1, x2, y2 = xs[v], ys[v], xs[v + 1], ys[v + 1]
            if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
                inside ^= 1
            ax = (x1 - lon) * kx
            ay = (y1 - lat) * M_PER_DEG
            dx = (x2 - lon) * kx - ax
            dy = (y2 - lat) * M_PER_DEG - ay
            length2 = dx * dx + dy * dy
            t = 0.0
            if length2 > 0.0:
                t = -(ax * dx + ay * dy) / length2
                if t < 0.0:
                    t = 0.0
                elif t > 1.0:
                    t = 1.0
            px = ax + t * dx
            py = ay + t * dy
            d2 = px * px + py * py
            if d2 < best:
                best = d2
    return inside, math.sqrt(best)


def query(
    lats: array, lons: array,
    params: array, dims: array, cell_first: array, cell_fences: array,
    bbox: array, kind: array, ring_first: array, vert_first: array, xs: array, ys: array, circle: array,
    margin_m: float,
) -> tuple[array, array, array, array, array]:
    hit_fix, hit_fence, inside_out, distance = array("I"), array("I"), array("B"), array("d")
    stats = array("Q", [0] * 4)
    nx, ny = dims[0], dims[1]
    for i in range(len(lats)):
        lat, lon = lats[i], lons[i]
        stats[STAT_FIXES] += 1
        # Written so that NaN fails the test, as it does in C.
        if not (lon >= params[0] and lon <= params[2] and lat >= params[1] and lat <= params[3]):
            stats[STAT_OUTSIDE_GRID] += 1
            continue
        cell = _col(lat, params[1], params[5], ny) * nx + _col(lon, params[0], params[4], nx)
        for k in range(cell_first[cell], cell_first[cell + 1]):
            f = cell_fences[k]
            if lon < bbox[4 * f] or lat < bbox[4 * f + 1] or lon > bbox[4 * f + 2] or lat > bbox[4 * f + 3]:
                continue
            stats[STAT_TESTED] += 1
            if kind[f] == KIND_CIRCLE:
                d = circle[3 * f + 2] - haversine_m(lat, lon, circle[3 * f + 1], circle[3 * f])
                inside = 1 if d > 0.0 else 0
            else:
                inside, edge = _polygon(lat, lon, ring_first[f], ring_first[f + 1], vert_first, xs, ys)
                d = edge if inside else -edge
            if inside or -d <= margin_m:
                hit_fix.append(i)
                hit_fence.append(f)
                inside_out.append(inside)
                distance.append(d)
                stats[STAT_HITS] += 1
    return hit_fix, hit_fence, inside_out, distance, stats
