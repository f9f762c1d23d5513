"""Idle detection: the engine running while the vehicle stands still, for at least a set time.

At every engine, wheel-speed, PTO and fuel-rate sample the detector evaluates "idle" from the latest
value of each (a value older than ``STALE_S`` of bus time is unknown): engine speed above
``idle_engine_speed_rpm``, wheel speed at most ``idle_max_wheel_speed_kmh`` and GNSS speed at most
``idle_max_gnss_speed_mps`` (either one moving means moving; at least one must say still), and the
PTO not engaged (a PTO driving a pump or crane is work, not idle). ``native/runs`` then finds the runs
lasting ``idle_min_duration_s`` and integrates the fuel rate over them, falling back to the profile's
``idle_fuel_rate_lph`` estimate where the bus gives no rate.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping

from edge_agent.counters import Counters
from edge_agent.detection import DetectionBatch
from edge_agent.detection.clock import HeldTimeline, find_runs_ticked
from edge_agent.model import Event, Fix, Priority
from native.runs_py import EV_STARTED, STATE_LEN, new_state

#: A value older than this (seconds of bus time) is unknown: a sensor that stopped reporting.
STALE_S = 10.0
#: Bus silence longer than this ends an idle period at the last sample (ignition off, agent down).
MAX_GAP_S = 30.0
#: A moving blip shorter than this (one noisy wheel-speed sample) does not split an idle period.
DEFAULT_END_DEBOUNCE_S = 5.0
#: SAE J1939-71 SPN 976 (PTO governor state): 0 off/disabled, 3 standby, 4 remote standby are not
#: engaged; 31 is "not available"; every other state (hold, set, resume, ...) is the PTO working.
PTO_NOT_ENGAGED = frozenset({0, 3, 4})
PTO_NOT_AVAILABLE = 31

SIGNALS = frozenset({"engine_speed", "wheel_speed", "pto_state", "fuel_rate"})
REQUIRED = ("idle_engine_speed_rpm", "idle_min_duration_s")


def _state_array(raw: object) -> array:
    if isinstance(raw, list) and len(raw) == STATE_LEN and all(isinstance(v, int | float) for v in raw):
        return array("d", [float(v) for v in raw])
    return new_state()


class IdleDetector:
    """``idle_started`` / ``idle_ended`` events (Priority.EVENT) with duration, fuel and location."""

    def __init__(self, thresholds: Mapping[str, float], counters: Counters | None = None) -> None:
        missing = [k for k in REQUIRED if k not in thresholds]
        if missing:
            raise ValueError(f"idle detection needs thresholds {', '.join(missing)}")
        self.engine_rpm = thresholds["idle_engine_speed_rpm"]
        self.min_duration_s = thresholds["idle_min_duration_s"]
        self.max_wheel_kmh = thresholds.get("idle_max_wheel_speed_kmh", 1.0)
        self.max_gnss_mps = thresholds.get("idle_max_gnss_speed_mps", 0.5)
        self.estimate_lph = thresholds.get("idle_fuel_rate_lph")
        self.end_debounce_s = thresholds.get("idle_end_debounce_s", DEFAULT_END_DEBOUNCE_S)
        self._counters = counters or Counters()
        self._timeline = HeldTimeline(SIGNALS)
        # Latest GNSS speed (m/s) and the bus time it arrived at (None: before any bus sample).
        self._gnss: tuple[float, float | None] | None = None
        self._where: tuple[float, float] | None = None
        self._fuel_state = new_state()
        self._est_state = new_state()

    def _idle_at(self, now: float) -> bool:
        fresh = self._timeline.fresh
        rpm = fresh("engine_speed", now, STALE_S)
        if rpm is None or rpm <= self.engine_rpm:
            return False
        wheel = fresh("wheel_speed", now, STALE_S)
        gnss = None
        if self._gnss is not None:
            speed, stamp = self._gnss
            if stamp is None:
                self._gnss = (speed, now)
            if stamp is None or now - stamp <= STALE_S:
                gnss = speed
        if (wheel is not None and wheel > self.max_wheel_kmh) or (gnss is not None and gnss > self.max_gnss_mps):
            return False
        if wheel is None and gnss is None:
            return False  # nothing says the vehicle is still
        pto = fresh("pto_state", now, STALE_S)
        return not (pto is not None and int(pto) not in PTO_NOT_ENGAGED and int(pto) != PTO_NOT_AVAILABLE)

    def _on_fix(self, fix: Fix) -> None:
        if not fix.valid:
            return
        # A private-mode fix (edge_agent.privacy) comes without a position; its speed still counts.
        if math.isfinite(fix.lat) and math.isfinite(fix.lon):
            self._where = (fix.lat, fix.lon)
        if fix.speed_mps is not None:
            self._gnss = (fix.speed_mps, self._timeline.pending)

    def process(self, batch: DetectionBatch) -> list[Event]:
        for fix in batch.fixes:
            self._on_fix(fix)
        if not batch.has_values() and (batch.tick is None or not self._timeline.held):
            return []
        ts, cond, fuel, est = array("d"), array("B"), array("d"), array("d")

        def evaluate(now: float) -> None:
            ts.append(now)
            cond.append(self._idle_at(now))
            rate = self._timeline.fresh("fuel_rate", now, STALE_S)
            if rate is not None:
                fuel.append(rate)
                est.append(0.0)
            else:
                fuel.append(self.estimate_lph if self.estimate_lph is not None else 0.0)
                est.append(1.0)

        self._timeline.feed_batch(batch.columns, batch.samples, evaluate)
        ticks_from = len(ts)
        if batch.tick is not None:
            # Silence: the last values fed are all there will be; evaluate them, then the tick itself.
            self._timeline.flush_pending(evaluate)
            ticks_from = len(ts)
            evaluate(batch.tick)
        if not ts:
            return []
        idx, kind, on, off, on_ts, off_ts, acc, _mono, self._fuel_state = find_runs_ticked(
            ts, cond, fuel, self._fuel_state, self.min_duration_s, self.end_debounce_s, MAX_GAP_S, ticks_from
        )
        *_, est_acc, _, self._est_state = find_runs_ticked(
            ts, cond, est, self._est_state, self.min_duration_s, self.end_debounce_s, MAX_GAP_S, ticks_from
        )
        return [
            self._event(ts[idx[k]], kind[k], off[k] - on[k], on_ts[k], off_ts[k], acc[k], est_acc[k])
            for k in range(len(idx))
        ]

    def _event(
        self, t: float, kind: int, duration: float, started_at: float, ended_at: float, fuel_acc: float, est_s: float
    ) -> Event:
        duration = max(duration, 0.0)
        engine = self._timeline.held.get("engine_speed")
        payload: dict[str, object] = {
            "started_at": started_at,
            "duration_s": round(duration, 3),
            "lat": self._where[0] if self._where else None,
            "lon": self._where[1] if self._where else None,
            "source": engine[2] if engine else "",
        }
        if est_s <= 0.0:
            fuel_source = "measured"
        elif est_s < duration - 1e-6:
            fuel_source = "mixed" if self.estimate_lph is not None else "partial"
        else:
            fuel_source = "estimated" if self.estimate_lph is not None else "none"
        payload["fuel_l"] = None if fuel_source == "none" else round(fuel_acc / 3600.0, 4)
        payload["fuel_source"] = fuel_source
        if kind == EV_STARTED:
            return Event(t, "idle_started", Priority.EVENT, payload)
        payload["ended_at"] = ended_at
        return Event(t, "idle_ended", Priority.EVENT, payload)

    def state(self) -> dict[str, object]:
        return {
            "timeline": self._timeline.state(),
            "fuel_runs": list(self._fuel_state),
            "estimate_runs": list(self._est_state),
            "gnss": list(self._gnss) if self._gnss else None,
            "where": list(self._where) if self._where else None,
        }

    def restore(self, state: dict[str, object]) -> None:
        timeline = state.get("timeline")
        if isinstance(timeline, dict):
            self._timeline.restore(timeline)
        self._fuel_state = _state_array(state.get("fuel_runs"))
        self._est_state = _state_array(state.get("estimate_runs"))
        gnss, where = state.get("gnss"), state.get("where")
        if isinstance(gnss, list) and len(gnss) == 2 and isinstance(gnss[0], int | float):
            self._gnss = (float(gnss[0]), float(gnss[1]) if isinstance(gnss[1], int | float) else None)
        if isinstance(where, list) and len(where) == 2:
            self._where = (float(where[0]), float(where[1]))
