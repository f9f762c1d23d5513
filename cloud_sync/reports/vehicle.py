"""One vehicle's figures for a period ``[start, end)`` of device time, from its stored events and health.

Idle periods and trips are events stored when they end, with their ``started_at``; one that straddles a
period boundary counts pro rata (its duration, fuel and distance scaled by the share inside the period),
so consecutive periods add up to the whole. Events are read up to ``LOOKAHEAD_S`` past the period end to
find those that started inside it; a trip longer than that is cut short (none lasts a day).

Engine hours come from the bus meter where the vehicle reports one (``meter`` events with
``engine_hours_source = "bus"``: the last reading at or before the end minus the last at or before the
start); otherwise from trips, which are the engine-running periods (``edge_agent.detection.trips``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from cloud_sync.store.schema import chain_gaps, device_health, events

#: How far past the period end to look for idle periods and trips that began inside it.
LOOKAHEAD_S = 86_400.0
KINDS = ("idle_ended", "trip_ended", "meter")


@dataclass
class VehicleFigures:
    device_id: str
    vin: str | None
    depot: str | None
    idle_s: float = 0.0
    idle_fuel_l: float = 0.0
    idle_fuel_unknown: int = 0  # idle periods without a fuel figure
    engine_s_trips: float = 0.0
    engine_hours_bus: float | None = None
    distance_km: float = 0.0
    days_used: set[str] = field(default_factory=set)
    faults_awaiting_review: int | None = None
    overdue_services: int | None = None
    inspections_blocking: int | None = None
    backlog_records: int | None = None
    open_gaps: int = 0
    clock_skew_s: float | None = None
    last_batch_created_at: float | None = None
    provisional_reasons: list[str] = field(default_factory=list)

    @property
    def engine_hours(self) -> float:
        return self.engine_hours_bus if self.engine_hours_bus is not None else self.engine_s_trips / 3600.0

    @property
    def engine_hours_source(self) -> str:
        return "bus" if self.engine_hours_bus is not None else "trips"


def _num(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _share(started: float, ended: float, start: float, end: float) -> float:
    """Fraction of ``[started, ended]`` inside ``[start, end)`` (1 for an instant inside)."""
    if ended <= started:
        return 1.0 if start <= ended < end else 0.0
    inside = min(ended, end) - max(started, start)
    return max(inside, 0.0) / (ended - started)


def _days(started: float, ended: float, start: float, end: float) -> set[str]:
    lo, hi = max(started, start), min(ended, end - 0.001)  # the period end itself is outside
    if hi < lo:
        return set()
    out, t = set(), lo
    while t <= hi:
        out.add(datetime.fromtimestamp(t, UTC).date().isoformat())
        t += 86_400.0
    out.add(datetime.fromtimestamp(hi, UTC).date().isoformat())
    return out


def _bus_hours_at(readings: list[tuple[float, float]], t: float) -> float | None:
    before = [v for ts, v in readings if ts <= t]
    return before[-1] if before else None


def figures(conn: Connection, device_id: str, vin: str | None, depot: str | None, start: float, end: float,
            now: float) -> VehicleFigures:
    fig = VehicleFigures(device_id, vin, depot)
    e = events.c
    rows = conn.execute(select(e.kind, e.device_time, e.payload).where(
        e.device_id == device_id, e.kind.in_(KINDS), e.device_time < end + LOOKAHEAD_S,
        e.device_time >= start - LOOKAHEAD_S).order_by(e.device_time, e.record_id))
    bus: list[tuple[float, float]] = []
    for kind, t, payload in rows:
        if not isinstance(payload, dict):
            continue
        if kind == "meter":
            hours = _num(payload, "engine_hours")
            if hours is not None and payload.get("engine_hours_source") == "bus":
                bus.append((t, hours))
            continue
        started = _num(payload, "started_at")
        started = t if started is None else started
        ended = _num(payload, "ended_at") or t
        share = _share(started, ended, start, end)
        if share <= 0.0:
            continue
        duration = _num(payload, "duration_s") or max(ended - started, 0.0)
        fuel = _num(payload, "fuel_l")
        if kind == "idle_ended":
            fig.idle_s += duration * share
            if fuel is None:
                fig.idle_fuel_unknown += 1
            else:
                fig.idle_fuel_l += fuel * share
        else:  # trip_ended
            fig.engine_s_trips += duration * share
            fig.distance_km += (_num(payload, "distance_km") or 0.0) * share
            fig.days_used |= _days(started, ended, start, end)
    at_start, at_end = _bus_hours_at(bus, start), _bus_hours_at(bus, end)
    if at_start is not None and at_end is not None and at_end >= at_start:
        fig.engine_hours_bus = at_end - at_start
    _health(conn, fig, end)
    return fig


def _health(conn: Connection, fig: VehicleFigures, end: float) -> None:
    h = conn.execute(select(device_health.c.backlog_records, device_health.c.clock_skew_s,
                            device_health.c.last_batch_created_at)
                     .where(device_health.c.device_id == fig.device_id)).first()
    g = chain_gaps.c
    fig.open_gaps = int(conn.execute(select(func.count()).where(
        g.device_id == fig.device_id, g.filled_at.is_(None))).scalar() or 0)
    if h is not None:
        fig.backlog_records, fig.clock_skew_s, fig.last_batch_created_at = h
    # Provisional: the vehicle may still hold data for the period (the figures can still change).
    if fig.last_batch_created_at is None or fig.last_batch_created_at < end:
        fig.provisional_reasons.append("device has not yet sent data from after the period end")
    if fig.backlog_records:
        fig.provisional_reasons.append(f"device reports {fig.backlog_records} records not yet sent")
    if fig.open_gaps:
        fig.provisional_reasons.append(f"{fig.open_gaps} missing batches")
