"""Trips and meter readings: engine on to engine off, odometer and engine hours for maintenance.

A trip is a run of "engine running" (engine speed above ``trip_engine_on_rpm``, default the idle
threshold) found by ``native/runs``: it starts once the engine has run ``trip_min_duration_s`` and
ends when the engine has been off for ``trip_end_debounce_s`` or the bus fell silent (ignition off
stops the ECUs talking). Distance and fuel come from the bus's odometer and total-fuel counters where
it has them, else from integrating wheel speed (GNSS speed when the bus has none) and fuel rate.

``meter`` events carry ``odometer_km`` and ``engine_hours`` at every trip end and, while driving, at
most every ``meter_interval_s``: from the bus where it reports them, else from the integrated
distance and the engine's run time, accumulated across trips and restarts.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping

from edge_agent.counters import Counters
from edge_agent.detection import DetectionBatch
from edge_agent.detection.clock import HeldTimeline, find_runs_ticked
from edge_agent.model import Event, Priority
from native.runs_py import EV_STARTED, S_ACC, S_ACTIVE, S_GAP_ACC, S_IN_GAP, S_ON, STATE_LEN, new_state

DEFAULT_RUNNING_RPM = 300.0
DEFAULT_MIN_DURATION_S = 60.0
#: A stall at the lights or an engine stop-start pause is not the end of a trip.
DEFAULT_END_DEBOUNCE_S = 120.0
DEFAULT_METER_INTERVAL_S = 900.0
#: Bus silence longer than this is the ignition off: the trip ended with the last sample.
MAX_GAP_S = 60.0
STALE_S = 10.0
SIGNALS = frozenset({"engine_speed", "wheel_speed", "fuel_rate", "odometer", "engine_hours", "total_fuel_used"})
#: Multipliers to our meter units (km, h, L) from the units profiles use.
TO_KM = {"m": 0.001, "km": 1.0}
TO_H = {"h": 1.0, "s": 1.0 / 3600.0, "min": 1.0 / 60.0}
#: Bus counters held at one sample: odometer (km), engine hours (h), total fuel used (L); None if unknown.
_Counters = tuple[float | None, float | None, float | None]


def _floats(raw: object, n: int) -> list[float] | None:
    if isinstance(raw, list) and len(raw) == n and all(isinstance(v, int | float) for v in raw):
        return [float(v) for v in raw]
    return None


class TripDetector:
    """``trip_started`` / ``trip_ended`` and ``meter`` events (Priority.EVENT)."""

    def __init__(
        self, thresholds: Mapping[str, float], counters: Counters | None = None, units: Mapping[str, str] | None = None
    ) -> None:
        self.running_rpm = thresholds.get("trip_engine_on_rpm", thresholds.get("idle_engine_speed_rpm",
                                                                                DEFAULT_RUNNING_RPM))
        self.min_duration_s = thresholds.get("trip_min_duration_s", DEFAULT_MIN_DURATION_S)
        self.end_debounce_s = thresholds.get("trip_end_debounce_s", DEFAULT_END_DEBOUNCE_S)
        self.meter_interval_s = thresholds.get("meter_interval_s", DEFAULT_METER_INTERVAL_S)
        self._counters = counters or Counters()
        # Profiles state units; ours are km and h (both bundled profiles send metres and hours).
        units = units or {}
        self._odo_scale = TO_KM.get(units.get("odometer", "m"), 1.0)
        self._hours_scale = TO_H.get(units.get("engine_hours", "h"), 1.0)
        self._timeline = HeldTimeline(SIGNALS)
        self._gnss: tuple[float, float | None] | None = None  # (km/h, bus time it arrived; None: unknown yet)
        self._where: tuple[float, float] | None = None
        self._dist_state, self._fuel_state = new_state(), new_state()
        # Meters integrated where the bus has none (km, h), excluding the trip in progress.
        self._odo_base_km = 0.0
        self._hours_base = 0.0
        self._last_meter = -math.inf
        self._trip: dict[str, object] = {}

    def _gnss_at(self, now: float) -> float | None:
        if self._gnss is None:
            return None
        speed, stamp = self._gnss
        if stamp is None:
            self._gnss = (speed, now)
        return speed if stamp is None or now - stamp <= STALE_S else None

    def process(self, batch: DetectionBatch) -> list[Event]:
        for fix in batch.fixes:
            if not fix.valid:
                continue
            # A private-mode fix (edge_agent.privacy) comes without a position; its speed still counts.
            if math.isfinite(fix.lat) and math.isfinite(fix.lon):
                self._where = (fix.lat, fix.lon)
            if fix.speed_mps is not None:
                self._gnss = (fix.speed_mps * 3.6, self._timeline.pending)
        if not batch.has_values() and (batch.tick is None or not self._timeline.held):
            return []
        ts, cond, speed, fuel = array("d"), array("B"), array("d"), array("d")
        # The bus counters as they stood at each evaluation, so an event reads them at its own instant.
        counters: list[_Counters] = []
        fresh, held = self._timeline.fresh, self._timeline.held

        def evaluate(now: float) -> None:
            rpm = fresh("engine_speed", now, STALE_S)
            ts.append(now)
            cond.append(rpm is not None and rpm > self.running_rpm)
            wheel = fresh("wheel_speed", now, STALE_S)
            gnss = self._gnss_at(now) if wheel is None else None
            speed.append(wheel if wheel is not None else gnss if gnss is not None else 0.0)
            rate = fresh("fuel_rate", now, STALE_S)
            fuel.append(rate if rate is not None else math.nan)
            odo, hours, total = held.get("odometer"), held.get("engine_hours"), held.get("total_fuel_used")
            counters.append((
                odo[0] * self._odo_scale if odo else None,
                hours[0] * self._hours_scale if hours else None,
                total[0] if total else None,
            ))

        self._timeline.feed_batch(batch.columns, batch.samples, evaluate)
        ticks_from = len(ts)
        if batch.tick is not None:
            # Silence: the last values fed are all there will be; evaluate them, then the tick itself.
            self._timeline.flush_pending(evaluate)
            ticks_from = len(ts)
            evaluate(batch.tick)
        if not ts:
            return []
        idx, kind, on, off, on_ts, off_ts, dist, mono, self._dist_state = find_runs_ticked(
            ts, cond, speed, self._dist_state, self.min_duration_s, self.end_debounce_s, MAX_GAP_S, ticks_from
        )
        *_, fuel_acc, _, self._fuel_state = find_runs_ticked(
            ts, cond, fuel, self._fuel_state, self.min_duration_s, self.end_debounce_s, MAX_GAP_S, ticks_from
        )
        events: list[Event] = []
        for k in range(len(idx)):
            i = idx[k]
            if kind[k] == EV_STARTED:
                events.append(self._started(ts[i], on_ts[k], dist[k], fuel_acc[k], counters[i]))
            else:
                events += self._ended(ts[i], on_ts[k], off_ts[k], max(off[k] - on[k], 0.0), dist[k], fuel_acc[k],
                                      mono[i], counters[i])
        last = len(ts) - 1
        if self._dist_state[S_ACTIVE] and mono[last] - self._last_meter >= self.meter_interval_s:
            run_h = (mono[last] - self._dist_state[S_ON]) / 3600.0
            pending = self._dist_state[S_ACC] + (self._dist_state[S_GAP_ACC] if self._dist_state[S_IN_GAP] else 0.0)
            events.append(self._meter(ts[last], pending / 3600.0, run_h, "periodic", counters[last]))
            self._last_meter = mono[last]
        return events

    def _started(self, t: float, started_at: float, dist_acc: float, fuel_acc: float, at: _Counters) -> Event:
        odo, _hours, total = at
        # Bus counters at confirmation, with what was integrated before it, give the trip's baseline.
        self._trip = {
            "started_at": started_at, "start_dist": dist_acc / 3600.0, "start_fuel": fuel_acc / 3600.0,
            "odometer_km": odo, "total_fuel_l": total,
            "lat": self._where[0] if self._where else None, "lon": self._where[1] if self._where else None,
        }
        payload: dict[str, object] = {
            "started_at": started_at, "lat": self._trip["lat"], "lon": self._trip["lon"],
            "odometer_km": self._trip["odometer_km"],
        }
        return Event(t, "trip_started", Priority.EVENT, payload)

    def _ended(
        self, t: float, started_at: float, ended_at: float, duration: float, dist_acc: float, fuel_acc: float,
        now: float, at: _Counters,
    ) -> list[Event]:
        trip, self._trip = self._trip, {}
        integrated_km = dist_acc / 3600.0
        odo, _hours, total = at
        start_odo, start_total = trip.get("odometer_km"), trip.get("total_fuel_l")
        start_dist, start_fuel = trip.get("start_dist", 0.0), trip.get("start_fuel", 0.0)
        if odo is not None and isinstance(start_odo, float) and isinstance(start_dist, float) and odo >= start_odo:
            distance, distance_source = odo - start_odo + start_dist, "odometer"
        else:
            distance, distance_source = integrated_km, "integrated"
        fuel: float | None
        if total is not None and isinstance(start_total, float) and isinstance(start_fuel, float) and (
            total >= start_total
        ):
            fuel, fuel_source = total - start_total + start_fuel, "total_fuel_used"
        elif fuel_acc > 0.0:
            fuel, fuel_source = fuel_acc / 3600.0, "fuel_rate"
        else:
            fuel, fuel_source = None, "none"
        payload: dict[str, object] = {
            "started_at": started_at, "ended_at": ended_at, "duration_s": round(duration, 3),
            "distance_km": round(distance, 4), "distance_source": distance_source,
            "fuel_l": None if fuel is None else round(fuel, 4), "fuel_source": fuel_source,
            "start_lat": trip.get("lat"), "start_lon": trip.get("lon"),
            "lat": self._where[0] if self._where else None, "lon": self._where[1] if self._where else None,
        }
        self._odo_base_km += integrated_km
        self._hours_base += duration / 3600.0
        self._last_meter = now
        return [Event(t, "trip_ended", Priority.EVENT, payload), self._meter(t, 0.0, 0.0, "trip_end", at)]

    def _meter(self, t: float, trip_km: float, trip_h: float, reason: str, at: _Counters) -> Event:
        odo, hours, _total = at
        payload: dict[str, object] = {
            "odometer_km": round(odo if odo is not None else self._odo_base_km + trip_km, 3),
            "odometer_source": "bus" if odo is not None else "integrated",
            "engine_hours": round(hours if hours is not None else self._hours_base + trip_h, 4),
            "engine_hours_source": "bus" if hours is not None else "run_time",
            "reason": reason,
        }
        return Event(t, "meter", Priority.EVENT, payload)

    def state(self) -> dict[str, object]:
        return {
            "timeline": self._timeline.state(),
            "gnss": list(self._gnss) if self._gnss else None, "where": list(self._where) if self._where else None,
            "distance_runs": list(self._dist_state), "fuel_runs": list(self._fuel_state),
            "odometer_base_km": self._odo_base_km, "engine_hours_base": self._hours_base,
            "last_meter": self._last_meter if math.isfinite(self._last_meter) else None, "trip": dict(self._trip),
        }

    def restore(self, state: dict[str, object]) -> None:
        timeline = state.get("timeline")
        if isinstance(timeline, dict):
            self._timeline.restore(timeline)
        gnss = state.get("gnss")
        if isinstance(gnss, list) and len(gnss) == 2 and isinstance(gnss[0], int | float):
            self._gnss = (float(gnss[0]), float(gnss[1]) if isinstance(gnss[1], int | float) else None)
        where = _floats(state.get("where"), 2)
        if where:
            self._where = (where[0], where[1])
        dist, fuel = _floats(state.get("distance_runs"), STATE_LEN), _floats(state.get("fuel_runs"), STATE_LEN)
        if dist and fuel:
            self._dist_state, self._fuel_state = array("d", dist), array("d", fuel)
        for key, attr in (("odometer_base_km", "_odo_base_km"), ("engine_hours_base", "_hours_base"),
                          ("last_meter", "_last_meter")):
            value = state.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                setattr(self, attr, float(value))
        trip = state.get("trip")
        if isinstance(trip, dict):
            self._trip = dict(trip)
