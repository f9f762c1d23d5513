"""Data subject rights for drivers (GDPR Art. 15, 20 and 17): export everything held about a driver as one
machine-readable JSON document, and erase or pseudonymise it while keeping what the law says must be kept.

What is about a driver: their ``drivers`` row, their duty-status events, the DVIRs they signed or reviewed,
the audit entries about them (who read their data, including reads of a vehicle's positions while they drove
it), and where the vehicles were while they were logged in on them ("sessions": from an event of theirs naming a
vehicle to their next event).

Erasure (GDPR Art. 17(3)(b): records a legal obligation requires are kept, for as long as it requires):

- the name becomes ``erased`` (the driver id is the store's pseudonym and stays, so kept records still add up);
- duty events older than the working-time minimum are deleted, younger ones kept (49 CFR 395.8(k)(1));
- DVIRs older than the compliance-records minimum are deleted unless still unsafe and uncertified; younger ones
  are kept with their signatures (49 CFR 396.11(a)(4));
- positions during their sessions are deleted, and the location is removed from events and records of those
  sessions (no minimum applies to location);
- the audit trail is not touched: its entries name the driver by id only, so it still verifies, and one more
  entry records the erasure and what it did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, and_, delete, func, inspect, not_, or_, select, update

from cloud_sync.governance import audit
from cloud_sync.governance.retention import DAY_S, LOCATION_KEYS, NO_LOCATION_KINDS, PURPOSES, strip_deliveries
from cloud_sync.store import schema

ERASED_NAME = "erased"
#: A session whose driver never logged out is cut here (a vehicle is not "theirs" forever).
MAX_SESSION_S = 24 * 3600
#: Newest sessions on a vehicle examined per audited read (bounds the cost of naming whose location it was).
MAX_SESSIONS_LOOKED_AT = 200
CHUNK = 2_000


class UnknownSubject(LookupError):
    """No driver with that id."""


def _driver_tables(conn: Connection) -> tuple[Any, Any, Any]:
    names = ("drivers", "duty_events", "dvir_reports")
    if not all(inspect(conn).has_table(n) for n in names):
        raise UnknownSubject("this store has no drivers (compliance is not set up)")
    md = schema.metadata.tables
    return md["drivers"], md["duty_events"], md["dvir_reports"]


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(query)]


def sessions(conn: Connection, driver_id: str, now: float) -> list[tuple[str, float, float]]:
    """``(device_id, from, to)``: while the driver was logged in on a vehicle."""
    _, duty, _ = _driver_tables(conn)
    events = conn.execute(select(duty.c.at, duty.c.device_id).where(duty.c.driver_id == driver_id)
                          .order_by(duty.c.at, duty.c.id)).all()
    out = []
    for i, (at, device) in enumerate(events):
        if device is None:
            continue
        end = events[i + 1][0] if i + 1 < len(events) else now
        out.append((device, at, min(end, at + MAX_SESSION_S)))
    return out


def drivers_on(conn: Connection, device: str, start: float | None, end: float | None, *,
               now: float | None = None) -> list[str]:
    """Drivers logged in on ``device`` at some time in ``[start, end)``: whose location a read of that range
    shows (for the audit trail). Empty when the store has no drivers."""
    if not inspect(conn).has_table("duty_events"):
        return []
    duty = schema.metadata.tables["duty_events"]
    at = time.time() if now is None else now
    until = at if end is None else end
    found: set[str] = set()
    events = conn.execute(select(duty.c.id, duty.c.driver_id, duty.c.at).where(
        duty.c.device_id == device, duty.c.at < until).order_by(duty.c.at.desc()).limit(MAX_SESSIONS_LOOKED_AT))
    for eid, driver, began in events:
        if start is not None and began + MAX_SESSION_S <= start:
            break  # older sessions end before the range begins
        nxt = conn.execute(select(func.min(duty.c.at)).where(
            duty.c.driver_id == driver, or_(duty.c.at > began, and_(duty.c.at == began, duty.c.id > eid)))).scalar()
        ended = min(at if nxt is None else nxt, began + MAX_SESSION_S)
        if start is None or ended > start:
            found.add(driver)
    return sorted(found)


def _positions(conn: Connection, device: str, start: float, end: float) -> Iterator[dict[str, Any]]:
    p = schema.positions
    after = -1
    while True:
        rows = conn.execute(select(p.c.record_id, p.c.device_time, p.c.lat, p.c.lon, p.c.speed_mps, p.c.course_deg)
                            .where(p.c.device_id == device, p.c.device_time >= start, p.c.device_time < end,
                                   p.c.record_id > after).order_by(p.c.record_id).limit(CHUNK)).all()
        for r in rows:
            yield dict(r._mapping)
        if len(rows) < CHUNK:
            return
        after = rows[-1].record_id


def export_driver(conn: Connection, driver_id: str, *, now: float | None = None) -> dict[str, Any]:
    """Everything held about the driver, as JSON-ready data."""
    drivers, duty, dvir = _driver_tables(conn)
    at = time.time() if now is None else now
    row = conn.execute(select(drivers).where(drivers.c.id == driver_id)).first()
    if row is None:
        raise UnknownSubject(f"no driver {driver_id!r}")
    return {
        "subject": {"kind": "driver", "id": driver_id},
        "exported_at": at,
        "driver": dict(row._mapping),
        "duty_events": _rows(conn, select(duty).where(duty.c.driver_id == driver_id).order_by(duty.c.at)),
        "dvir_reports": _rows(conn, select(dvir).where(or_(dvir.c.driver_id == driver_id,
                                                             dvir.c.reviewed_by == driver_id))
                              .order_by(dvir.c.inspected_at)),
        "sessions": [{"device_id": d, "from": a, "to": b, "positions": list(_positions(conn, d, a, b))}
                     for d, a, b in sessions(conn, driver_id, at)],
        "audit_entries": [{"seq": e.seq, "at": e.at, "actor": e.actor, "role": e.role, "action": e.action}
                          for e in _about(conn, driver_id)],
    }


def _about(conn: Connection, driver_id: str) -> Iterator[audit.Entry]:
    """Audit entries about the driver: their subject, or a location read naming them among its ``drivers``."""
    log, after = audit.audit_log, 0
    while True:
        chunk = [audit.entry_from_row(r) for r in conn.execute(
            select(log).where(log.c.seq > after).order_by(log.c.seq).limit(CHUNK))]
        for e in chunk:
            if e.subject == driver_id or driver_id in (e.detail.get("drivers") or ()):
                yield e
        if len(chunk) < CHUNK:
            return
        after = chunk[-1].seq


def _strip_location(conn: Connection, device: str, start: float, end: float) -> int:
    changed = 0
    for tbl in (schema.events, schema.records):
        rows = conn.execute(select(tbl.c.record_id, tbl.c.payload).where(
            tbl.c.device_id == device, tbl.c.device_time >= start, tbl.c.device_time < end,
            tbl.c.kind.not_in(NO_LOCATION_KINDS))).all()
        for rid, payload in rows:
            if isinstance(payload, dict) and any(k in payload for k in LOCATION_KEYS):
                kept = {k: v for k, v in payload.items() if k not in LOCATION_KEYS}
                conn.execute(update(tbl).where(tbl.c.device_id == device, tbl.c.record_id == rid).values(payload=kept))
                changed += 1
    return changed


def erase_driver(conn: Connection, driver_id: str, actor: str, role: str, *, now: float | None = None
                 ) -> dict[str, int]:
    """Erase or pseudonymise the driver's data (see the module docstring), in the caller's transaction."""
    drivers, duty, dvir = _driver_tables(conn)
    at = time.time() if now is None else now
    # Write first: on SQLite this takes the database lock before anything is read (see store.devices.get_device).
    if conn.execute(update(drivers).where(drivers.c.id == driver_id).values(name=drivers.c.name)).rowcount == 0:
        raise UnknownSubject(f"no driver {driver_id!r}")
    done = {"positions": 0, "position_records": 0, "located_payloads": 0}
    for device, start, end in sessions(conn, driver_id, at):
        p, r = schema.positions, schema.records
        done["positions"] += conn.execute(delete(p).where(
            p.c.device_id == device, p.c.device_time >= start, p.c.device_time < end)).rowcount
        done["position_records"] += conn.execute(delete(r).where(
            r.c.device_id == device, r.c.kind == "position", r.c.device_time >= start, r.c.device_time < end)).rowcount
        done["located_payloads"] += _strip_location(conn, device, start, end)
        done["located_payloads"] += strip_deliveries(conn, device, start, end, dry_run=False)
    keep_duty = at - PURPOSES["working_time"].minimum_days * DAY_S
    done["duty_events"] = conn.execute(delete(duty).where(duty.c.driver_id == driver_id,
                                                          duty.c.at < keep_duty)).rowcount
    keep_dvir = at - PURPOSES["compliance_records"].minimum_days * DAY_S
    open_defect = and_(dvir.c.unsafe.is_(True), dvir.c.certified_at.is_(None))
    done["dvir_reports"] = conn.execute(delete(dvir).where(
        or_(dvir.c.driver_id == driver_id, dvir.c.reviewed_by == driver_id), dvir.c.inspected_at < keep_dvir,
        not_(open_defect))).rowcount
    done["duty_events_kept"] = len(conn.execute(select(duty.c.id).where(duty.c.driver_id == driver_id)).all())
    done["dvir_reports_kept"] = len(conn.execute(select(dvir.c.id).where(
        or_(dvir.c.driver_id == driver_id, dvir.c.reviewed_by == driver_id))).all())
    conn.execute(update(drivers).where(drivers.c.id == driver_id).values(name=ERASED_NAME))
    audit.append(conn, actor, role, "erase driver", driver_id, done, now=at)
    return done

