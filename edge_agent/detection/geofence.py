"""Geofence entry and exit: fences compiled once into kernel arrays, a small state machine per fence.

``compile_fences`` flattens the fences (``geojson.Fence``) into the arrays ``native/geofence`` takes
and builds its grid index once, so each fix costs a cell lookup and a few candidate tests however
many fences there are. ``GeofenceDetector`` turns the kernel's signed distances into events:

* hysteresis: a fix counts as inside only ``hysteresis_m`` inside the boundary and as outside only
  that far outside it; fixes in between change nothing, so GNSS jitter at a boundary cannot flap;
* minimum dwell: a crossing is reported once the new side has held for ``min_dwell_s`` (the event
  carries the time of the first fix on the new side);
* fixes that are invalid, below ``min_quality`` (GGA quality) or above ``max_hdop`` are ignored;
* state (inside, pending crossings, the clock) is kept by fence id across restarts and reloads.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import native
from edge_agent.counters import Counters
from edge_agent.detection import DetectionBatch
from edge_agent.detection.clock import MonoClock
from edge_agent.detection.geojson import Fence
from edge_agent.model import Event, Fix, Priority
from native.geofence_py import KIND_CIRCLE, KIND_POLYGON, M_PER_DEG, grid_shape

DEFAULT_HYSTERESIS_M = 20.0
DEFAULT_MIN_DWELL_S = 10.0
#: GGA quality 1 (autonomous GPS) and better; 0 is no fix, 6 dead reckoning still counts as >= 1.
DEFAULT_MIN_QUALITY = 1.0
#: HDOP above this typically means tens of metres of error, more than a depot gate is wide.
DEFAULT_MAX_HDOP = 5.0
#: Longest receiver-clock step counted toward a dwell (a jump or an outage counts as this much).
MAX_STEP_S = 60.0


@dataclass(frozen=True, slots=True)
class FenceArrays:
    """Fences flattened for ``native/geofence`` plus its grid index (see ``native/geofence_py.py``)."""

    fences: tuple[Fence, ...]
    margin_m: float
    kind: array
    ring_first: array
    vert_first: array
    xs: array
    ys: array
    circle: array
    bbox: array
    params: array
    dims: array
    cell_first: array
    cell_fences: array

    def query(self, lats: array, lons: array) -> tuple[array, array, array, array, array]:
        return native.kernel("geofence").query(
            lats, lons, self.params, self.dims, self.cell_first, self.cell_fences, self.bbox, self.kind,
            self.ring_first, self.vert_first, self.xs, self.ys, self.circle, self.margin_m,
        )


def _widen(min_lon: float, min_lat: float, max_lon: float, max_lat: float, metres: float) -> list[float]:
    # 1% and a hair of slack so rounding never drops a fix that is just within the margin.
    dlat = metres / M_PER_DEG * 1.01 + 1e-9
    extreme = max(abs(min_lat), abs(max_lat)) + dlat
    if extreme >= 89.9:
        return [-180.0, max(min_lat - dlat, -90.0), 180.0, min(max_lat + dlat, 90.0)]
    dlon = dlat / math.cos(math.radians(extreme))
    return [min_lon - dlon, min_lat - dlat, max_lon + dlon, max_lat + dlat]


def compile_fences(fences: Sequence[Fence], margin_m: float) -> FenceArrays:
    """Flatten ``fences`` and build the grid; ``margin_m`` is how far outside a fence hits are wanted."""
    kind, ring_first, vert_first = array("B"), array("I", [0]), array("I", [0])
    xs, ys, circle, bbox = array("d"), array("d"), array("d"), array("d")
    for fence in fences:
        if fence.kind == "circle":
            assert fence.center is not None
            lon, lat = fence.center
            kind.append(KIND_CIRCLE)
            circle.extend((lon, lat, fence.radius_m))
            bbox.extend(_widen(lon, lat, lon, lat, fence.radius_m + margin_m))
        else:
            kind.append(KIND_POLYGON)
            circle.extend((0.0, 0.0, 0.0))
            for ring in fence.rings:
                xs.extend(p[0] for p in ring)
                ys.extend(p[1] for p in ring)
                vert_first.append(len(xs))
            lons = [p[0] for ring in fence.rings for p in ring]
            lats = [p[1] for ring in fence.rings for p in ring]
            bbox.extend(_widen(min(lons), min(lats), max(lons), max(lats), margin_m))
        ring_first.append(len(vert_first) - 1)
    params, dims = grid_shape(bbox)
    cell_first, cell_fences = native.kernel("geofence").build_grid(bbox, params, dims)
    return FenceArrays(tuple(fences), margin_m, kind, ring_first, vert_first, xs, ys, circle, bbox, params, dims,
                       cell_first, cell_fences)


def _own_margin(fence: Fence, hysteresis_m: float) -> float:
    """The hysteresis used for one fence: at most a quarter of its size, so a small fence stays enterable."""
    if fence.kind == "circle":
        return min(hysteresis_m, fence.radius_m / 2.0)
    lats = [p[1] for ring in fence.rings for p in ring]
    lons = [p[0] for ring in fence.rings for p in ring]
    mid = math.radians((max(lats) + min(lats)) / 2.0)
    size = min((max(lats) - min(lats)) * M_PER_DEG, (max(lons) - min(lons)) * M_PER_DEG * math.cos(mid))
    return min(hysteresis_m, size / 4.0)


@dataclass(slots=True)
class _FenceState:
    inside: bool = False
    pending_since: float | None = None  # monotonic time of the first fix on the other side
    pending_ts: float = 0.0
    entered_mono: float = 0.0
    entered_ts: float = 0.0


class GeofenceDetector:
    """``geofence_entered`` / ``geofence_exited`` events (Priority.EVENT) for a set of fences."""

    def __init__(
        self, fences: Sequence[Fence], thresholds: Mapping[str, float] | None = None, counters: Counters | None = None
    ) -> None:
        t = thresholds or {}
        self.hysteresis_m = float(t.get("geofence_hysteresis_m", DEFAULT_HYSTERESIS_M))
        self.min_dwell_s = float(t.get("geofence_min_dwell_s", DEFAULT_MIN_DWELL_S))
        self.min_quality = float(t.get("geofence_min_quality", DEFAULT_MIN_QUALITY))
        self.max_hdop = float(t.get("geofence_max_hdop", DEFAULT_MAX_HDOP))
        self.arrays = compile_fences(fences, self.hysteresis_m)
        self._margins = [_own_margin(f, self.hysteresis_m) for f in fences]
        self._by_id = {f.id: i for i, f in enumerate(fences)}
        self._counters = counters or Counters()
        self._clock = MonoClock(MAX_STEP_S)
        self._tracked: dict[int, _FenceState] = {}

    def _usable(self, fix: Fix) -> bool:
        if not fix.valid or not (math.isfinite(fix.lat) and math.isfinite(fix.lon)) or fix.mode == 1:
            return False
        if fix.quality is not None and fix.quality < self.min_quality:
            return False
        return fix.hdop is None or fix.hdop <= self.max_hdop

    def process(self, batch: DetectionBatch) -> list[Event]:
        fixes = [f for f in batch.fixes if self._usable(f)]
        ignored = len(batch.fixes) - len(fixes)
        if ignored:
            self._counters.inc("geofence_fixes_ignored", ignored)
        if not fixes:
            return []
        lats = array("d", [f.lat for f in fixes])
        lons = array("d", [f.lon for f in fixes])
        hit_fix, hit_fence, _inside, distance, _stats = self.arrays.query(lats, lons)
        events: list[Event] = []
        k = 0
        for i, fix in enumerate(fixes):
            now = self._clock.advance(fix.timestamp)
            near: dict[int, float] = {}
            while k < len(hit_fix) and hit_fix[k] == i:
                near[hit_fence[k]] = distance[k]
                k += 1
            for f in sorted(set(near) | set(self._tracked)):
                event = self._step(f, near.get(f, -math.inf), now, fix)
                if event is not None:
                    events.append(event)
        return events

    def _step(self, f: int, d: float, now: float, fix: Fix) -> Event | None:
        margin = self._margins[f]
        observed = True if d > margin else False if d < -margin else None
        st = self._tracked.get(f)
        if st is None:
            if not observed:
                return None
            st = self._tracked[f] = _FenceState()
        if observed is None:
            return None  # within the hysteresis band: neither confirms nor cancels a crossing
        if observed == st.inside:
            st.pending_since = None
            if not st.inside:
                del self._tracked[f]
            return None
        if st.pending_since is None:
            st.pending_since, st.pending_ts = now, fix.timestamp
        if now - st.pending_since < self.min_dwell_s:
            return None
        fence = self.arrays.fences[f]
        payload: dict[str, object] = {
            "fence_id": fence.id, "name": fence.name, "lat": fix.lat, "lon": fix.lon,
            "distance_m": round(d, 2), "dwell_s": round(now - st.pending_since, 3),
        }
        if observed:
            st.inside, st.entered_mono, st.entered_ts = True, st.pending_since, st.pending_ts
            st.pending_since = None
            payload["entered_at"] = st.entered_ts
            return Event(fix.timestamp, "geofence_entered", Priority.EVENT, payload)
        payload["entered_at"] = st.entered_ts
        payload["exited_at"] = st.pending_ts
        payload["duration_s"] = round(max(st.pending_since - st.entered_mono, 0.0), 3)
        del self._tracked[f]
        return Event(fix.timestamp, "geofence_exited", Priority.EVENT, payload)

    def state(self) -> dict[str, object]:
        fences: dict[str, object] = {}
        for f, st in self._tracked.items():
            fences[self.arrays.fences[f].id] = {
                "inside": st.inside, "pending_since": st.pending_since, "pending_ts": st.pending_ts,
                "entered_mono": st.entered_mono, "entered_ts": st.entered_ts,
            }
        return {"clock": self._clock.state(), "fences": fences}

    def restore(self, state: dict[str, object]) -> None:
        clock = state.get("clock")
        if isinstance(clock, dict):
            self._clock.restore(clock)
        fences = state.get("fences")
        if not isinstance(fences, dict):
            return
        self._tracked = {}
        for fence_id, raw in fences.items():
            f = self._by_id.get(str(fence_id))
            if f is None or not isinstance(raw, dict):
                continue  # a fence removed from the file since: nothing to resume
            st = _FenceState(inside=bool(raw.get("inside", False)))
            pending = raw.get("pending_since")
            st.pending_since = float(pending) if isinstance(pending, int | float) else None
            st.pending_ts = _num(raw.get("pending_ts"))
            st.entered_mono = _num(raw.get("entered_mono"))
            st.entered_ts = _num(raw.get("entered_ts"))
            if st.inside or st.pending_since is not None:
                self._tracked[f] = st


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0
