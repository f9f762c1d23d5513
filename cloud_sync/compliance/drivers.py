"""Drivers and their duty-status events in the store, and driving derived from the vehicle's own motion.

A driver logged in on a vehicle (an ``on_duty`` event naming the device) is driving while that vehicle is on a
trip: the trips are the ``trip_started`` / ``trip_ended`` events the vehicle's trip detector stored
(``edge_agent.detection.trips``; ``ended`` carries the trip's ``started_at`` and ``ended_at``). Staff may also
enter any status by hand. A later event at the same time replaces an earlier one (a correction), and the
rows are never updated, so what was entered and when stays on record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, insert, select

from cloud_sync.compliance.duty import DutyEvent, DutyStatus
from cloud_sync.compliance.errors import Invalid, NotFound
from cloud_sync.compliance.tables import drivers, duty_events
from cloud_sync.store import schema

SOURCES = ("vehicle", "staff")
#: A trip still open (started, no end stored yet) counts as driving until the evaluation time: the vehicle says
#: it is moving and its end has not arrived. Trips longer than this are taken as lost ends, not driving.
MAX_OPEN_TRIP_S = 24 * 3600
#: Matching a trip's end to its start: both carry ``started_at`` from the same detector state.
SAME_TRIP_S = 1.0
#: Most duty events one request may carry (a day of one-minute statuses is 1,440).
MAX_EVENTS_PER_POST = 2000


@dataclass(frozen=True, slots=True)
class Driver:
    id: str
    name: str
    depot: str | None
    home_timezone: str | None


@dataclass(frozen=True, slots=True)
class StoredDutyEvent:
    id: int
    driver_id: str
    at: float
    status: DutyStatus
    device_id: str | None
    source: str
    entered_by: str
    note: str | None
    recorded_at: float


def add_driver(conn: Connection, driver: Driver, *, now: float | None = None) -> None:
    if get_driver(conn, driver.id) is not None:
        raise Invalid(f"driver {driver.id!r} exists")
    conn.execute(insert(drivers).values(id=driver.id, name=driver.name, depot=driver.depot,
                                        home_timezone=driver.home_timezone,
                                        created_at=time.time() if now is None else now))


def get_driver(conn: Connection, driver_id: str) -> Driver | None:
    row = conn.execute(select(drivers).where(drivers.c.id == driver_id)).first()
    if row is None:
        return None
    m = row._mapping
    return Driver(m["id"], m["name"], m["depot"], m["home_timezone"])


def list_drivers(conn: Connection, depot: str | None = None, limit: int = 1000) -> list[Driver]:
    query = select(drivers).order_by(drivers.c.id).limit(limit)
    if depot is not None:
        query = query.where(drivers.c.depot == depot)
    return [Driver(r.id, r.name, r.depot, r.home_timezone) for r in conn.execute(query)]


def require_driver(conn: Connection, driver_id: str) -> Driver:
    found = get_driver(conn, driver_id)
    if found is None:
        raise NotFound(f"no driver {driver_id!r}")
    return found


def add_events(conn: Connection, driver_id: str, events: list[tuple[float, DutyStatus, str | None, str | None]],
               source: str, entered_by: str, *, now: float | None = None) -> list[int]:
    """Store ``(at, status, device_id, note)`` events; all or none (one bad vehicle refuses the request)."""
    require_driver(conn, driver_id)
    if source not in SOURCES:
        raise Invalid(f"source must be one of {SOURCES}, not {source!r}")
    if not 0 < len(events) <= MAX_EVENTS_PER_POST:
        raise Invalid(f"between 1 and {MAX_EVENTS_PER_POST} events per request, got {len(events)}")
    devices = {d for _at, _s, d, _n in events if d is not None}
    known = set(conn.execute(select(schema.devices.c.id).where(schema.devices.c.id.in_(devices))).scalars())
    if devices - known:
        raise NotFound(f"no vehicle {sorted(devices - known)[0]!r}")
    recorded = time.time() if now is None else now
    ids = []
    for at, status, device, note in events:
        result = conn.execute(insert(duty_events).values(
            driver_id=driver_id, at=at, status=status.value, device_id=device, source=source,
            entered_by=entered_by, note=note, recorded_at=recorded))
        key = result.inserted_primary_key
        assert key is not None
        ids.append(int(key[0]))
    return ids


def events(conn: Connection, driver_id: str, start: float | None, end: float | None) -> list[StoredDutyEvent]:
    """Events with ``start <= at < end``, plus the last one before ``start`` (the status in force at ``start``),
    in time order, corrections after what they correct."""
    query = select(duty_events).where(duty_events.c.driver_id == driver_id)
    if end is not None:
        query = query.where(duty_events.c.at < end)
    if start is not None:
        before = select(func.max(duty_events.c.at)).where(duty_events.c.driver_id == driver_id,
                                                          duty_events.c.at < start).scalar_subquery()
        query = query.where((duty_events.c.at >= start) | (duty_events.c.at == before))
    rows = conn.execute(query.order_by(duty_events.c.at, duty_events.c.id)).all()
    return [StoredDutyEvent(r.id, r.driver_id, r.at, DutyStatus(r.status), r.device_id, r.source, r.entered_by,
                            r.note, r.recorded_at) for r in rows]


@dataclass(frozen=True, slots=True)
class Trip:
    start: float
    end: float
    arrived_at: float  # when the cloud first stored the newest of its events (late trips revise reports)


def trips(conn: Connection, device_id: str, start: float, end: float) -> list[Trip]:
    """The vehicle's trips overlapping ``[start, end)``; an open trip ends at ``end`` (at most
    ``MAX_OPEN_TRIP_S`` after it started)."""
    ev, rec = schema.events, schema.records
    rows = conn.execute(select(ev.c.kind, ev.c.device_time, ev.c.payload, rec.c.cloud_received_at)
                        .join(rec, and_(rec.c.device_id == ev.c.device_id, rec.c.record_id == ev.c.record_id))
                        .where(and_(ev.c.device_id == device_id, ev.c.kind.in_(("trip_started", "trip_ended")),
                                    ev.c.device_time >= start - MAX_OPEN_TRIP_S,
                                    ev.c.device_time < end + MAX_OPEN_TRIP_S))
                        .order_by(ev.c.device_time, ev.c.record_id)).all()
    closed: list[Trip] = []
    opened: list[tuple[float, float]] = []
    for kind, device_time, payload, arrived in rows:
        body = payload if isinstance(payload, dict) else {}
        began = _number(body.get("started_at"), device_time)
        if kind == "trip_ended":
            closed.append(Trip(began, _number(body.get("ended_at"), device_time), arrived))
        else:
            opened.append((began, arrived))
    for began, arrived in opened:
        if not any(abs(began - t.start) <= SAME_TRIP_S for t in closed) and began < end:
            closed.append(Trip(began, min(end, began + MAX_OPEN_TRIP_S), arrived))
    return sorted((t for t in closed if t.end > start and t.start < end and t.end > t.start),
                  key=lambda t: (t.start, t.end))


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@dataclass(slots=True)
class Derived:
    """The engines' input, and what it rests on."""

    events: list[DutyEvent]
    trips_used: int = 0
    latest_trip_arrival: float | None = None
    vehicles: set[str] | None = None


def derive(conn: Connection, stored: list[StoredDutyEvent], until: float) -> Derived:
    """The duty events the rule engines read: stored ones, with driving filled in from the vehicle's trips
    while the driver is logged in on it (on duty, naming the device)."""
    out = Derived([], vehicles=set())
    assert out.vehicles is not None
    for i, e in enumerate(stored):
        end = stored[i + 1].at if i + 1 < len(stored) else until
        out.events.append(DutyEvent(round(e.at), e.status))
        if e.status != DutyStatus.ON_DUTY or e.device_id is None or end <= e.at:
            continue
        out.vehicles.add(e.device_id)
        for trip in trips(conn, e.device_id, e.at, end):
            out.trips_used += 1
            out.latest_trip_arrival = max(out.latest_trip_arrival or 0.0, trip.arrived_at)
            out.events.append(DutyEvent(round(max(trip.start, e.at)), DutyStatus.DRIVING))
            if trip.end < end:
                out.events.append(DutyEvent(round(trip.end), DutyStatus.ON_DUTY))
    return out
