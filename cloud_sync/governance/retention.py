"""Retention per purpose: how long data is kept, the regulatory minimums no configuration can go below, and
the job that deletes or pseudonymises on time and records what it did in the audit trail.

=====================  ===============================================  =======  =======================================
purpose                what the job does to data older than the period  default  minimum (and why)
=====================  ===============================================  =======  =======================================
live_dispatch          deletes positions (``positions``, position        30 d    none
                       records): where a vehicle, hence its driver, was
trip_history           pseudonymises events and records: removes their   90 d    none
                       location (``lat``, ``lon``, ``altitude_m``)
working_time           deletes drivers' duty-status events               183 d   6 months: 49 CFR 395.8(k)(1), records
                       (``duty_events``)                                         of duty status and supporting documents
compliance_records     deletes DVIRs (``dvir_reports``), except those    92 d    3 months: 49 CFR 396.11(a)(4), the
                       still unsafe and uncertified                              original DVIR and certification
maintenance_records    deletes completed work orders and their lines     366 d   1 year: 49 CFR 396.3(c), inspection,
                       that no fault issue still refers to                       repair and maintenance records
webhook_log            deletes webhook deliveries already delivered or    30 d    none
                       dead (copies of events sent to subscribers)
=====================  ===============================================  =======  =======================================

``trip_history`` also removes the location from webhook deliveries still kept (a copy of an event is
personal data like the event).

Minimums are in days, rounded up (6 months = 183 d, 3 months = 92 d, 1 year = 366 d) so that no calendar
reading of "months" can make a kept record leave early. Periods come from ``FLEET_CLOUD_RETENTION_<PURPOSE>_DAYS``
(e.g. ``FLEET_CLOUD_RETENTION_LIVE_DISPATCH_DAYS=7``); a value below the minimum is refused (``SettingsError``),
never clamped silently. Tables that do not exist (a deployment without compliance) are skipped.

``fleet-cloud retention run`` (``--every 1d`` to keep running; ``--dry-run`` counts only) applies the policy;
each purpose that changed anything appends one audit entry (``retention <purpose>``, with the cutoff and counts).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, column, delete, exists, func, inspect, not_, or_, select, table, update

from cloud_sync.settings import SettingsError
from cloud_sync.store import schema

DAY_S = 86_400
#: Rows read and rewritten per round trip when pseudonymising payloads (bounded memory on any store size).
CHUNK = 2_000
#: Payload keys that place the vehicle: positions' and events' (edge_agent.detection: idle, faults, geofences
#: ``lat``/``lon``; trips also ``start_lat``/``start_lon``), and ``altitude_m`` of positions.
LOCATION_KEYS = ("lat", "lon", "altitude_m", "start_lat", "start_lon", "end_lat", "end_lon")
ENV_PREFIX = "FLEET_CLOUD_RETENTION_"
#: Kinds whose payloads never hold a location: the pseudonymisation pass does not read them.
NO_LOCATION_KINDS = ("sample", "position")
JOB_ACTOR = "job:retention"


@dataclass(frozen=True)
class Purpose:
    name: str
    default_days: int
    minimum_days: int
    basis: str  # why the minimum (empty: none)


PURPOSES: dict[str, Purpose] = {p.name: p for p in (
    Purpose("live_dispatch", 30, 0, ""),
    Purpose("trip_history", 90, 0, ""),
    Purpose("working_time", 183, 183, "49 CFR 395.8(k)(1): records of duty status kept 6 months"),
    Purpose("compliance_records", 92, 92, "49 CFR 396.11(a)(4): DVIRs kept 3 months"),
    Purpose("maintenance_records", 366, 366, "49 CFR 396.3(c): maintenance records kept 1 year"),
    Purpose("webhook_log", 30, 0, ""),
)}


@dataclass(frozen=True)
class Policy:
    days: Mapping[str, int]

    def __post_init__(self) -> None:
        for name, value in self.days.items():
            purpose = PURPOSES.get(name)
            if purpose is None:
                raise SettingsError(f"unknown retention purpose {name!r}; one of {', '.join(PURPOSES)}")
            if value < max(purpose.minimum_days, 1):
                why = f" ({purpose.basis})" if purpose.basis else ""
                raise SettingsError(f"retention of {name} must be at least {max(purpose.minimum_days, 1)} days"
                                    f"{why}, not {value}")

    @classmethod
    def defaults(cls) -> Policy:
        return cls({p.name: p.default_days for p in PURPOSES.values()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str], overrides: Mapping[str, int] | None = None) -> Policy:
        days = {p.name: p.default_days for p in PURPOSES.values()}
        for name in PURPOSES:
            raw = environ.get(f"{ENV_PREFIX}{name.upper()}_DAYS")
            if raw is not None:
                try:
                    days[name] = int(raw)
                except ValueError:
                    raise SettingsError(f"{ENV_PREFIX}{name.upper()}_DAYS={raw!r} is not a whole number of days"
                                        ) from None
        for name, value in (overrides or {}).items():
            if name not in PURPOSES:
                raise SettingsError(f"unknown retention purpose {name!r}; one of {', '.join(PURPOSES)}")
            days[name] = value
        return cls(days)


def _has(conn: Connection, name: str) -> bool:
    return inspect(conn).has_table(name)


def _count_or_delete(conn: Connection, tbl: Any, where: Any, dry_run: bool) -> int:
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(tbl).where(where)).scalar_one())
    return int(conn.execute(delete(tbl).where(where)).rowcount)


def _live_dispatch(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    positions, records = schema.positions, schema.records
    return {"positions": _count_or_delete(conn, positions, positions.c.device_time < cutoff, dry_run),
            "position_records": _count_or_delete(
                conn, records, and_(records.c.kind == "position", records.c.device_time < cutoff), dry_run)}


def _strip(conn: Connection, name: str, cutoff: float, dry_run: bool) -> int:
    tbl = schema.metadata.tables[name]  # ours (store.schema): typed JSON payloads on both backends
    changed, after = 0, ("", -1)
    while True:
        rows = conn.execute(
            select(tbl.c.device_id, tbl.c.record_id, tbl.c.payload)
            .where(tbl.c.device_time < cutoff, tbl.c.kind.not_in(NO_LOCATION_KINDS),
                   or_(tbl.c.device_id > after[0], and_(tbl.c.device_id == after[0], tbl.c.record_id > after[1])))
            .order_by(tbl.c.device_id, tbl.c.record_id).limit(CHUNK)).all()
        for device_id, record_id, payload in rows:
            if isinstance(payload, dict) and any(k in payload for k in LOCATION_KEYS):
                changed += 1
                if not dry_run:
                    kept = {k: v for k, v in payload.items() if k not in LOCATION_KEYS}
                    conn.execute(update(tbl).where(tbl.c.device_id == device_id, tbl.c.record_id == record_id)
                                 .values(payload=kept))
        if len(rows) < CHUNK:
            return changed
        after = (rows[-1][0], rows[-1][1])


def _trip_history(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    return {"events_pseudonymised": _strip(conn, "events", cutoff, dry_run),
            "records_pseudonymised": _strip(conn, "records", cutoff, dry_run),
            "webhook_payloads_pseudonymised": strip_deliveries(conn, None, None, cutoff, dry_run)}


def strip_deliveries(conn: Connection, device: str | None, start: float | None, end: float, dry_run: bool) -> int:
    """Remove the location from webhook delivery payloads that occurred before ``end`` (and from ``start``, of
    ``device``, when given); returns how many held one."""
    if not _has(conn, "webhook_deliveries"):
        return 0
    from cloud_sync.webhooks.tables import webhook_deliveries as d

    changed, after = 0, 0
    while True:
        query = select(d.c.id, d.c.payload).where(d.c.occurred_at < end, d.c.id > after)
        if device is not None:
            query = query.where(d.c.device_id == device)
        if start is not None:
            query = query.where(d.c.occurred_at >= start)
        rows = conn.execute(query.order_by(d.c.id).limit(CHUNK)).all()
        for delivery_id, payload in rows:
            if isinstance(payload, dict) and any(k in payload for k in LOCATION_KEYS):
                changed += 1
                if not dry_run:
                    kept = {k: v for k, v in payload.items() if k not in LOCATION_KEYS}
                    conn.execute(update(d).where(d.c.id == delivery_id).values(payload=kept))
        if len(rows) < CHUNK:
            return changed
        after = rows[-1][0]


def _webhook_log(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    if not _has(conn, "webhook_deliveries"):
        return {}
    from cloud_sync.webhooks.tables import webhook_deliveries as d

    # Pending deliveries are still owed to a subscriber: kept until delivered or dead.
    done = and_(d.c.created_at < cutoff, d.c.state.in_(("delivered", "dead")))
    return {"webhook_deliveries": _count_or_delete(conn, d, done, dry_run)}


def _working_time(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    if not _has(conn, "duty_events"):
        return {}
    duty = table("duty_events", column("at"))
    return {"duty_events": _count_or_delete(conn, duty, duty.c.at < cutoff, dry_run)}


def _compliance_records(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    if not _has(conn, "dvir_reports"):
        return {}
    dvir = table("dvir_reports", column("inspected_at"), column("unsafe"), column("certified_at"))
    # A vehicle reported unsafe stays unsafe until certified: that report is evidence still in use.
    open_defect = and_(dvir.c.unsafe.is_(True), dvir.c.certified_at.is_(None))
    return {"dvir_reports": _count_or_delete(conn, dvir, and_(dvir.c.inspected_at < cutoff, not_(open_defect)),
                                             dry_run)}


def _maintenance_records(conn: Connection, cutoff: float, dry_run: bool) -> dict[str, int]:
    if not (_has(conn, "work_orders") and _has(conn, "work_order_lines")):
        return {}
    orders = table("work_orders", column("id"), column("completed_at"))
    lines = table("work_order_lines", column("work_order_id"))
    old = and_(orders.c.completed_at.is_not(None), orders.c.completed_at < cutoff)
    if _has(conn, "fault_issues"):
        issues = table("fault_issues", column("work_order_id"))
        old = and_(old, not_(exists().where(issues.c.work_order_id == orders.c.id)))
    ids = [r[0] for r in conn.execute(select(orders.c.id).where(old))]
    out = {"work_orders": len(ids), "work_order_lines": 0}
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        out["work_order_lines"] += _count_or_delete(conn, lines, lines.c.work_order_id.in_(part), dry_run)
        if not dry_run:
            conn.execute(delete(orders).where(orders.c.id.in_(part)))
    return out


_ACTIONS = {"live_dispatch": _live_dispatch, "trip_history": _trip_history, "working_time": _working_time,
            "compliance_records": _compliance_records, "maintenance_records": _maintenance_records,
            "webhook_log": _webhook_log}


def run(conn: Connection, policy: Policy, *, now: float | None = None, dry_run: bool = False
        ) -> dict[str, dict[str, Any]]:
    """Apply ``policy`` in the caller's transaction: per purpose, its cutoff and what changed (or would)."""
    from cloud_sync.governance import audit

    at = time.time() if now is None else now
    report: dict[str, dict[str, Any]] = {}
    for name, days in policy.days.items():
        cutoff = at - days * DAY_S
        counts = _ACTIONS[name](conn, cutoff, dry_run)
        report[name] = {"days": days, "cutoff": cutoff, **counts}
        if not dry_run and any(counts.values()):
            audit.append(conn, JOB_ACTOR, "admin", f"retention {name}", None, report[name], now=at)
    return report
