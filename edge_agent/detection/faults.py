"""Faults: trouble codes appearing and clearing, and signals beyond their limits, both debounced.

* DTCs: J1939 DM1 (active codes, per source address, SPN and FMI, with the message's lamps) and
  OBD-II stored / pending / permanent lists. A code is reported (``dtc_appeared``) the first time it
  is seen, and cleared (``dtc_cleared``) only once it has been missing for ``fault_debounce_s`` of
  bus time: a code flapping on and off within that window is one fault, not dozens. DM2 (previously
  active) is history and raises nothing; the pipeline stores it as ``dtc_status``.
* Thresholds: coolant over temperature, low battery voltage and low oil pressure, where the profile
  has the threshold. Low voltage and low oil pressure only count with the engine running (a stopped
  engine has no oil pressure and no charging). ``native/runs`` debounces both edges
  (``fault_raised`` / ``fault_cleared``).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import native
from edge_agent.counters import Counters
from edge_agent.detection import DetectionBatch
from edge_agent.detection.clock import HeldTimeline, MonoClock
from edge_agent.model import DiagnosticMessage, Event, ObdDtcReport, Priority
from native.runs_py import EV_STARTED, STATE_LEN, new_state

DEFAULT_DEBOUNCE_S = 10.0
#: Engine speed above which the engine counts as running when the profile has no idle threshold.
DEFAULT_RUNNING_RPM = 300.0
#: An engine speed older than this (bus seconds) is unknown.
STALE_S = 10.0
#: Bus silence longer than this ends a threshold fault (the next ignition cycle starts afresh).
MAX_GAP_S = 120.0


@dataclass(frozen=True, slots=True)
class ThresholdCheck:
    fault: str
    signal: str
    threshold_key: str
    above: bool  # True: fault when value > limit; False: fault when value < limit
    needs_engine: bool
    unit: str  # the unit both bundled profiles use for the signal (and the threshold's)


CHECKS = (
    ThresholdCheck("coolant_over_temp", "coolant_temp", "coolant_over_temp_c", True, False, "degC"),
    ThresholdCheck("low_battery_voltage", "battery_voltage", "low_battery_v", False, True, "V"),
    ThresholdCheck("low_oil_pressure", "oil_pressure", "low_oil_pressure_kpa", False, True, "kPa"),
)


def _lamps(dm: DiagnosticMessage) -> dict[str, str]:
    lamps = dm.lamps
    return {
        "mil": lamps.mil.name.lower(), "red_stop": lamps.red_stop.name.lower(),
        "amber_warning": lamps.amber_warning.name.lower(), "protect": lamps.protect.name.lower(),
    }


class FaultDetector:
    """DTC and threshold faults (Priority.FAULT). Checks whose threshold is missing are off."""

    def __init__(self, thresholds: Mapping[str, float], counters: Counters | None = None) -> None:
        self.debounce_s = thresholds.get("fault_debounce_s", DEFAULT_DEBOUNCE_S)
        self.running_rpm = thresholds.get("idle_engine_speed_rpm", DEFAULT_RUNNING_RPM)
        self.checks = [c for c in CHECKS if c.threshold_key in thresholds]
        self.limits = {c.fault: thresholds[c.threshold_key] for c in self.checks}
        self._counters = counters or Counters()
        self._clock = MonoClock(MAX_GAP_S)
        self._timeline = HeldTimeline(frozenset({"engine_speed", *(c.signal for c in self.checks)}))
        self._runs: dict[str, array] = {c.fault: new_state() for c in self.checks}
        # Active DTCs by key: payload, when first seen, and (bus time) since when it has been missing.
        self._dtcs: dict[str, dict[str, object]] = {}

    # -- input ------------------------------------------------------------------------------------

    def process(self, batch: DetectionBatch) -> list[Event]:
        events: list[Event] = []
        items: list[tuple[float, object]] = [(d.timestamp, d) for d in batch.diagnostics if d.kind == "DM1"]
        items += [(r.timestamp, r) for r in batch.obd_dtcs]
        items.sort(key=lambda item: item[0])
        for ts, item in items:
            now = self._clock.advance(ts)
            if isinstance(item, DiagnosticMessage):
                group = f"j1939:0x{item.source_address:02X}"
                present = {
                    f"{group}:{d.spn}:{d.fmi}": {"protocol": "j1939", "source": group, "spn": d.spn, "fmi": d.fmi,
                                                 "oc": d.oc, "lamps": _lamps(item)}
                    for d in item.dtcs
                }
            else:
                assert isinstance(item, ObdDtcReport)
                group = f"obd:{item.source}:{item.status}"
                present = {
                    f"{group}:{d.code}": {"protocol": "obd2", "source": item.source, "code": d.code,
                                          "status": item.status}
                    for d in item.dtcs
                }
            events += self._dtc_list(group, present, ts, now)
            events += self._clear_missing(ts, now)
        if batch.has_values():
            # The bus clock moves on with the samples too: a code gone quiet clears without a new DM1.
            last = batch.last_value_ts()
            if self._dtcs:
                events += self._clear_missing(last, self._clock.advance(last))
            events += self._thresholds(batch)
        events.sort(key=lambda e: e.timestamp)
        return events

    # -- DTCs -------------------------------------------------------------------------------------

    def _dtc_list(self, group: str, present: dict[str, dict[str, object]], ts: float, now: float) -> list[Event]:
        """One complete list of a source's active codes: new ones appear, absent ones start missing."""
        events = []
        for key, payload in present.items():
            entry = self._dtcs.get(key)
            if entry is None:
                self._dtcs[key] = {"group": group, "payload": payload, "since": ts, "missing_since": None}
                events.append(Event(ts, "dtc_appeared", Priority.FAULT, {**payload, "since": ts}))
            else:
                if entry["missing_since"] is not None:
                    entry["flaps"] = int(entry.get("flaps", 0)) + 1  # type: ignore[call-overload]
                entry["missing_since"] = None
                entry["payload"] = payload
        for key, entry in self._dtcs.items():
            if entry["group"] == group and key not in present and entry["missing_since"] is None:
                entry["missing_since"], entry["missing_ts"] = now, ts
        return events

    def _clear_missing(self, ts: float, now: float) -> list[Event]:
        events = []
        for key in [k for k, e in self._dtcs.items() if e["missing_since"] is not None]:
            entry = self._dtcs[key]
            missing = float(entry["missing_since"])  # type: ignore[arg-type]
            if now - missing >= self.debounce_s:
                del self._dtcs[key]
                payload = dict(entry["payload"])  # type: ignore[call-overload]
                payload.update(since=entry["since"], cleared_at=entry.get("missing_ts", ts),
                               flaps=entry.get("flaps", 0))
                events.append(Event(ts, "dtc_cleared", Priority.FAULT, payload))
        return events

    # -- thresholds -------------------------------------------------------------------------------

    def _thresholds(self, batch: DetectionBatch) -> list[Event]:
        if not self.checks:
            return []
        series = {c.fault: (array("d"), array("B"), array("d")) for c in self.checks}
        fresh = self._timeline.fresh

        def evaluate(now: float) -> None:
            rpm = fresh("engine_speed", now, STALE_S)
            running = rpm is not None and rpm > self.running_rpm
            for check in self.checks:
                value = fresh(check.signal, now, STALE_S)
                if value is None:
                    continue
                times, cond, values = series[check.fault]
                limit = self.limits[check.fault]
                times.append(now)
                cond.append((running or not check.needs_engine) and (value > limit if check.above else value < limit))
                values.append(value)

        self._timeline.feed_batch(batch.columns, batch.samples, evaluate)
        return [e for c in self.checks for e in self._threshold(c, *series[c.fault])]

    def _threshold(self, check: ThresholdCheck, ts: array, cond: array, values: array) -> list[Event]:
        if not ts:
            return []
        idx, kind, on, off, on_ts, off_ts, _acc, _mono, self._runs[check.fault] = native.kernel("runs").find_runs(
            ts, cond, values, self._runs[check.fault], self.debounce_s, self.debounce_s, MAX_GAP_S
        )
        held = self._timeline.held.get(check.signal)
        events = []
        for k in range(len(idx)):
            i = idx[k]
            payload: dict[str, object] = {
                "fault": check.fault, "signal": check.signal, "value": values[i], "unit": check.unit,
                "threshold": self.limits[check.fault], "source": held[2] if held else "", "since": on_ts[k],
            }
            if kind[k] == EV_STARTED:
                events.append(Event(ts[i], "fault_raised", Priority.FAULT, payload))
            else:
                payload["cleared_at"] = off_ts[k]
                payload["duration_s"] = round(max(off[k] - on[k], 0.0), 3)
                events.append(Event(ts[i], "fault_cleared", Priority.FAULT, payload))
        return events

    # -- persistence ------------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        return {
            "clock": self._clock.state(),
            "timeline": self._timeline.state(),
            "runs": {k: list(v) for k, v in self._runs.items()},
            "dtcs": {k: dict(v) for k, v in self._dtcs.items()},
        }

    def restore(self, state: dict[str, object]) -> None:
        clock = state.get("clock")
        if isinstance(clock, dict):
            self._clock.restore(clock)
        timeline = state.get("timeline")
        if isinstance(timeline, dict):
            self._timeline.restore(timeline)
        runs = state.get("runs")
        if isinstance(runs, dict):
            for fault, raw in runs.items():
                if fault in self._runs and isinstance(raw, list) and len(raw) == STATE_LEN:
                    self._runs[fault] = array("d", [float(v) for v in raw])
        dtcs = state.get("dtcs")
        if isinstance(dtcs, dict):
            self._dtcs = {
                str(k): dict(v) for k, v in dtcs.items()
                if isinstance(v, dict) and isinstance(v.get("payload"), dict) and "group" in v
            }
            for entry in self._dtcs.values():
                entry.setdefault("since", 0.0)
                entry.setdefault("missing_since", None)
