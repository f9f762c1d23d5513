"""The KPI report: per vehicle, per depot and for the fleet, over a period of device time.

Each figure is a ``KpiValue``: the value, its definition's threshold and owner role, whether it is
breached, and links to the API calls that list the records behind it. A vehicle's figures are
provisional while it may still hold data for the period (``vehicle``); a depot's or the fleet's are
provisional while any of their vehicles' are. Counts from the workflows (faults awaiting review,
overdue services, vehicles blocked by an inspection) are current, not historical: they say what is
waiting now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sqlalchemy import Connection

from cloud_sync.reports.definitions import definitions
from cloud_sync.reports.vehicle import VehicleFigures, figures
from cloud_sync.store.devices import list_devices

#: Counts from a workflow module: (conn, device ids, now) -> device id -> {kpi name: count}.
WorkflowCounter = Callable[[Connection, list[str], float], Mapping[str, Mapping[str, int]]]
#: Registered by the workflow modules (``cloud_sync.reports.workflows``).
WORKFLOW_COUNTERS: list[WorkflowCounter] = []
#: Depot name used for vehicles without one.
NO_DEPOT = "(none)"


@dataclass(frozen=True)
class KpiValue:
    name: str
    value: float | None
    unit: str
    owner: str
    threshold: float | None
    breached: bool | None
    links: tuple[str, ...] = ()


@dataclass
class Scope:
    """A vehicle, a depot or the fleet."""

    kind: str  # "vehicle" | "depot" | "fleet"
    key: str
    kpis: dict[str, KpiValue]
    provisional: bool
    provisional_reasons: list[str] = field(default_factory=list)
    vehicles: int = 1


@dataclass
class Report:
    start: float
    end: float
    generated_at: float
    fuel_price: float | None
    vehicles: list[Scope]
    depots: list[Scope]
    fleet: Scope

    @property
    def provisional(self) -> bool:
        return self.fleet.provisional


def _value(name: str, value: float | None, links: tuple[str, ...] = ()) -> KpiValue:
    d = definitions()[name]
    shown = None if value is None else round(value, 4)
    return KpiValue(name, shown, d.unit, d.owner, d.threshold, d.breached(shown), links)


def _events_link(device: str, kind: str, start: float, end: float) -> str:
    return f"/v1/vehicles/{device}/events?" + urlencode({"kind": kind, "from": start, "to": end})


def _vehicle_scope(f: VehicleFigures, start: float, end: float, fuel_price: float | None) -> Scope:
    idle_h = f.idle_s / 3600.0
    engine_h = f.engine_hours
    idle_links = (_events_link(f.device_id, "idle_ended", start, end),)
    trip_links = (_events_link(f.device_id, "trip_ended", start, end),)
    health_links = (f"/v1/vehicles/{f.device_id}/health",)
    kpis = [
        _value("idle_hours", idle_h, idle_links),
        _value("idle_fuel_l", f.idle_fuel_l, idle_links),
        _value("idle_fuel_cost", None if fuel_price is None else f.idle_fuel_l * fuel_price, idle_links),
        _value("idle_share", idle_h / engine_h if engine_h > 0 else None, idle_links + trip_links),
        _value("engine_hours", engine_h, trip_links),
        _value("distance_km", f.distance_km, trip_links),
        _value("days_used", float(len(f.days_used)), trip_links),
        _value("faults_awaiting_review", _opt(f.faults_awaiting_review),
               ("/v1/maintenance/issues?" + urlencode({"device": f.device_id, "status": "open"}),)),
        _value("overdue_services", _opt(f.overdue_services), (f"/v1/vehicles/{f.device_id}/services",)),
        _value("inspections_blocking", _opt(f.inspections_blocking), (f"/v1/compliance/vehicles/{f.device_id}",)),
        _value("backlog_records", _opt(f.backlog_records), health_links),
        _value("open_gaps", float(f.open_gaps), health_links),
        _value("clock_skew_s", None if f.clock_skew_s is None else abs(f.clock_skew_s), health_links),
    ]
    return Scope("vehicle", f.device_id, {k.name: k for k in kpis}, bool(f.provisional_reasons),
                 list(f.provisional_reasons))


def _opt(value: int | None) -> float | None:
    return None if value is None else float(value)


_SUMMED = ("idle_hours", "idle_fuel_l", "idle_fuel_cost", "engine_hours", "distance_km", "days_used",
           "faults_awaiting_review", "overdue_services", "inspections_blocking", "backlog_records", "open_gaps")


def _aggregate(kind: str, key: str, members: list[Scope]) -> Scope:
    kpis: dict[str, KpiValue] = {}
    for name in _SUMMED:
        values = [m.kpis[name].value for m in members if m.kpis[name].value is not None]
        kpis[name] = _value(name, sum(v for v in values if v is not None) if values else None)
    idle, engine = kpis["idle_hours"].value, kpis["engine_hours"].value
    kpis["idle_share"] = _value("idle_share", idle / engine if idle is not None and engine else None)
    skews = [m.kpis["clock_skew_s"].value for m in members if m.kpis["clock_skew_s"].value is not None]
    kpis["clock_skew_s"] = _value("clock_skew_s", max(skews) if skews else None)  # the worst vehicle
    reasons = [f"{m.key}: {r}" for m in members for r in m.provisional_reasons]
    ordered = {name: kpis[name] for name in definitions()}
    return Scope(kind, key, ordered, bool(reasons), reasons, vehicles=len(members))


def build_report(conn: Connection, start: float, end: float, *, depots: Iterable[str] | None = None,
                 fuel_price: float | None = None, now: float | None = None) -> Report:
    """The report for ``[start, end)``; ``depots`` limits it to those depots (None: every vehicle)."""
    at = time.time() if now is None else now
    wanted = None if depots is None else set(depots)
    devices = [d for d in list_devices(conn) if d.revoked_at is None
               and (wanted is None or (d.depot or NO_DEPOT) in wanted or d.depot in wanted)]
    figs = [figures(conn, d.id, d.vin, d.depot, start, end, at) for d in devices]
    ids = [f.device_id for f in figs]
    for counter in WORKFLOW_COUNTERS:
        counts = counter(conn, ids, at)
        for f in figs:
            for name, n in counts.get(f.device_id, {}).items():
                setattr(f, name, n)
    vehicles = [_vehicle_scope(f, start, end, fuel_price) for f in figs]
    by_depot: dict[str, list[Scope]] = {}
    for f, v in zip(figs, vehicles, strict=True):
        by_depot.setdefault(f.depot or NO_DEPOT, []).append(v)
    depot_scopes = [_aggregate("depot", name, members) for name, members in sorted(by_depot.items())]
    return Report(start, end, at, fuel_price, vehicles, depot_scopes, _aggregate("fleet", "fleet", vehicles))
