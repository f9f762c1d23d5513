# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/geofence_py.py`` (see there for the array contract)."""

from array import array

from libc.math cimport asin, cos, sin, sqrt, INFINITY
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef enum:
    KIND_CIRCLE = 1
    STAT_FIXES = 0
    STAT_OUTSIDE_GRID = 1
    STAT_TESTED = 2
    STAT_HITS = 3
    STATUS_DONE = 0
    STATUS_FULL = 1

# Same constants as the twin (mean Earth radius, IUGG R1).
cdef double EARTH_RADIUS_M = 6371008.8
cdef double PI = 3.141592653589793
cdef double M_PER_DEG = EARTH_RADIUS_M * PI / 180.0
cdef double DEG = PI / 180.0


cdef inline Py_ssize_t _col(double x, double origin, double cell, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = <Py_ssize_t>((x - origin) / cell)
    if i >= n:
        return n - 1
    if i < 0:
        return 0
    return i


cdef inline double _haversine(double lat1, double lon1, double lat2, double lon2) noexcept nogil:
    cdef double s1 = sin((lat2 - lat1) * DEG * 0.5)
    cdef double s2 = sin((lon2 - lon1) * DEG * 0.5)
    cdef double a = s1 * s1 + cos(lat1 * DEG) * cos(lat2 * DEG) * s2 * s2
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_M * asin(sqrt(a))


cdef inline int _polygon(double lat, double lon, Py_ssize_t r0, Py_ssize_t r1, const uint32_t[::1] vert_first,
                         const double[::1] xs, const double[::1] ys, double* edge) noexcept nogil:
    cdef int inside = 0
    cdef double kx = cos(lat * DEG) * M_PER_DEG
    cdef double best = INFINITY
    cdef double x1, y1, x2, y2, ax, ay, dx, dy, length2, t, px, py, d2
    cdef Py_ssize_t r, v
    for r in range(r0, r1):
        for v in range(vert_first[r], <Py_ssize_t>vert_first[r + 1] - 1):
            x1 = xs[v]
            y1 = ys[v]
            x2 = xs[v + 1]
            y2 = ys[v + 1]
            if ((y1 > lat) != (y2 > lat)) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
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
    edge[0] = sqrt(best)
    return inside


cdef int _query(
    const double[::1] lats, const double[::1] lons, const double[::1] params, Py_ssize_t nx, Py_ssize_t ny,
    const uint32_t[::1] cell_first, const uint32_t[::1] cell_fences, const double[::1] bbox,
    const uint8_t[::1] kind, const uint32_t[::1] ring_first, const uint32_t[::1] vert_first,
    const double[::1] xs, const double[::1] ys, const double[::1] circle, double margin_m,
    Py_ssize_t start, Py_ssize_t max_cell,
    uint32_t[::1] hit_fix, uint32_t[::1] hit_fence, uint8_t[::1] inside_out, double[::1] distance,
    Py_ssize_t* n_out, Py_ssize_t* next_fix, uint64_t[::1] stats,
) noexcept nogil:
    cdef Py_ssize_t i, k, f, cell, n = n_out[0], cap = hit_fix.shape[0]
    cdef double lat, lon, d, edge
    cdef int inside
    for i in range(start, lats.shape[0]):
        # Room for every candidate of the fullest cell, or hand back to grow the outputs.
        if n + max_cell > cap:
            n_out[0] = n
            next_fix[0] = i
            return STATUS_FULL
        lat = lats[i]
        lon = lons[i]
        stats[STAT_FIXES] += 1
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
                d = circle[3 * f + 2] - _haversine(lat, lon, circle[3 * f + 1], circle[3 * f])
                inside = 1 if d > 0.0 else 0
            else:
                inside = _polygon(lat, lon, ring_first[f], ring_first[f + 1], vert_first, xs, ys, &edge)
                d = edge if inside else -edge
            if inside or -d <= margin_m:
                hit_fix[n] = <uint32_t>i
                hit_fence[n] = <uint32_t>f
                inside_out[n] = <uint8_t>inside
                distance[n] = d
                n += 1
                stats[STAT_HITS] += 1
    n_out[0] = n
    next_fix[0] = lats.shape[0]
    return STATUS_DONE


cdef tuple _run_query(lats, lons, params, Py_ssize_t nx, Py_ssize_t ny, cell_first, cell_fences, bbox, kind,
                      ring_first, vert_first, xs, ys, circle, double margin_m, Py_ssize_t start,
                      Py_ssize_t max_cell, Py_ssize_t n, hit_fix, hit_fence, inside_out, distance, stats):
    # Memoryviews live only in this frame, so the caller can grow the output arrays afterwards.
    cdef const double[::1] v_lats = lats
    cdef const double[::1] v_lons = lons
    cdef const double[::1] v_params = params
    cdef const uint32_t[::1] v_cell_first = cell_first
    cdef const uint32_t[::1] v_cell_fences = cell_fences
    cdef const double[::1] v_bbox = bbox
    cdef const uint8_t[::1] v_kind = kind
    cdef const uint32_t[::1] v_ring_first = ring_first
    cdef const uint32_t[::1] v_vert_first = vert_first
    cdef const double[::1] v_xs = xs
    cdef const double[::1] v_ys = ys
    cdef const double[::1] v_circle = circle
    cdef uint32_t[::1] v_hit_fix = hit_fix
    cdef uint32_t[::1] v_hit_fence = hit_fence
    cdef uint8_t[::1] v_inside = inside_out
    cdef double[::1] v_distance = distance
    cdef uint64_t[::1] v_stats = stats
    cdef Py_ssize_t n_out = n, next_fix = start
    cdef int status
    with nogil:
        status = _query(v_lats, v_lons, v_params, nx, ny, v_cell_first, v_cell_fences, v_bbox, v_kind,
                        v_ring_first, v_vert_first, v_xs, v_ys, v_circle, margin_m, start, max_cell,
                        v_hit_fix, v_hit_fence, v_inside, v_distance, &n_out, &next_fix, v_stats)
    return status, n_out, next_fix


def query(lats, lons, params, dims, cell_first, cell_fences, bbox, kind, ring_first, vert_first, xs, ys,
          circle, double margin_m):
    """See ``native/geofence_py.py``."""
    cdef Py_ssize_t n_fixes = len(lats), nx = dims[0], ny = dims[1], max_cell = 0, c
    if len(lons) != n_fixes:
        raise ValueError("lats and lons must have the same length")
    if len(cell_first) != nx * ny + 1 or len(params) != 6:
        raise ValueError("grid arrays do not match dims")
    for c in range(nx * ny):
        max_cell = max(max_cell, cell_first[c + 1] - cell_first[c])
    cdef Py_ssize_t cap = 2 * n_fixes + max_cell + 16
    hit_fix = array("I", bytes(4 * cap))
    hit_fence = array("I", bytes(4 * cap))
    inside_out = array("B", bytes(cap))
    distance = array("d", bytes(8 * cap))
    stats = array("Q", bytes(8 * 4))
    cdef Py_ssize_t n = 0, start = 0
    cdef int status = STATUS_FULL
    while n_fixes and status == STATUS_FULL:
        status, n, start = _run_query(lats, lons, params, nx, ny, cell_first, cell_fences, bbox, kind,
                                      ring_first, vert_first, xs, ys, circle, margin_m, start, max_cell, n,
                                      hit_fix, hit_fence, inside_out, distance, stats)
        if status == STATUS_FULL:
            grow = len(hit_fix)
            hit_fix.extend(array("I", bytes(4 * grow)))
            hit_fence.extend(array("I", bytes(4 * grow)))
            inside_out.extend(array("B", bytes(grow)))
            distance.extend(array("d", bytes(8 * grow)))
    del hit_fix[n:], hit_fence[n:], inside_out[n:], distance[n:]
    return hit_fix, hit_fence, inside_out, distance, stats


cdef void _fill(const double[::1] bbox, const double[::1] params, Py_ssize_t nx, Py_ssize_t ny,
                uint32_t[::1] cell_first, uint32_t[::1] cell_fences, int count_only) noexcept nogil:
    # Pass 1 (count_only) counts members per cell into cell_first[c + 1]; pass 2 fills, using
    # cell_first[c] as a cursor that ends where the next cell starts.
    cdef Py_ssize_t f, ix, iy, x0, y0, x1, y1, c
    for f in range(bbox.shape[0] // 4):
        x0 = _col(bbox[4 * f], params[0], params[4], nx)
        y0 = _col(bbox[4 * f + 1], params[1], params[5], ny)
        x1 = _col(bbox[4 * f + 2], params[0], params[4], nx)
        y1 = _col(bbox[4 * f + 3], params[1], params[5], ny)
        for iy in range(y0, y1 + 1):
            for ix in range(x0, x1 + 1):
                c = iy * nx + ix
                if count_only:
                    cell_first[c + 1] += 1
                else:
                    cell_fences[cell_first[c]] = <uint32_t>f
                    cell_first[c] += 1


cdef void _run_fill(bbox, params, Py_ssize_t nx, Py_ssize_t ny, cell_first, cell_fences, int count_only):
    cdef const double[::1] v_bbox = bbox
    cdef const double[::1] v_params = params
    cdef uint32_t[::1] v_first = cell_first
    cdef uint32_t[::1] v_fences = cell_fences
    with nogil:
        _fill(v_bbox, v_params, nx, ny, v_first, v_fences, count_only)


def build_grid(bbox, params, dims):
    """See ``native/geofence_py.py``."""
    cdef Py_ssize_t nx = dims[0], ny = dims[1], c, total = 0, count
    cell_first = array("I", bytes(4 * (nx * ny + 1)))
    empty = array("I", [0])
    _run_fill(bbox, params, nx, ny, cell_first, empty, 1)
    for c in range(nx * ny):
        count = cell_first[c + 1]
        cell_first[c + 1] = total
        total += count
    # cell_first[c + 1] now holds the start of cell c: the fill pass advances it to cell c's end.
    cell_fences = array("I", bytes(4 * max(total, 1)))
    shifted = array("I", cell_first[1:])
    shifted.append(<uint32_t>total)
    _run_fill(bbox, params, nx, ny, shifted, cell_fences, 0)
    result_first = array("I", [0])
    result_first.extend(shifted[: nx * ny])
    del cell_fences[total:]
    return result_first, cell_fences
