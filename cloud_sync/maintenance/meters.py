"""Meter readings (odometer, engine hours, idle hours): from the vehicles' events and entered by staff.

Meters only go up. A reading is checked against its neighbours *in time* (the newest valid reading at
or before it and the oldest after it), not against the newest stored, so a late reading (a backlog
batch, a paper log typed in a week later) is placed where it belongs and never taken as "latest":

- a manual reading that goes backwards is refused (``Conflict``, naming the neighbour) unless it is
  entered as void (kept for the record, never used);
- a vehicle reading that goes backwards is stored void with the reason (the event stays counted, the
  meter stays monotonic), since the vehicle cannot be asked to retype it; when staff void the reading
  it clashed with (a mistyped manual one), it is checked again and used if it fits.

Idle hours are not a counter on the bus: the vehicle's reading at an ``idle_ended`` event is the sum of
all its idle periods up to then (``add_idle``). A late idle period raises the readings after it, so the
series stays the running total whatever order the events arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from cloud_sync.maintenance.errors import Conflict, Invalid, NotFound
from cloud_sync.maintenance.tables import meter_readings

ODOMETER, ENGINE_HOURS, IDLE_HOURS = "odometer_km", "engine_hours", "idle_hours"
METERS = (ODOMETER, ENGINE_HOURS, IDLE_HOURS)
#: Idle hours are the sum of the vehicle's idle periods; a typed-in figure would have another origin.
MANUAL_METERS = (ODOMETER, ENGINE_HOURS)
VEHICLE, MANUAL = "vehicle", "manual"
IDLE_ORIGIN = "idle_events"
#: Starts the reason of a vehicle reading voided for going backwards (re-checked when a reading is voided).
BACKWARDS_PREFIX = "goes backwards: "
#: A usage rate over less than this span is taken over this span (a 10-minute capture is not a day).
MIN_RATE_SPAN_DAYS = 1.0
DAY_S = 86_400.0
MAX_LISTED = 1000
#: Largest meter value accepted (km or h): well beyond any vehicle, small enough to catch unit mix-ups (m as km).
MAX_METER_VALUE = 1e8


@dataclass(frozen=True, slots=True)
class Reading:
    id: int
    device_id: str
    meter: str
    value: float
    read_at: float
    source: str
    origin: str | None
    record_id: int | None
    void: bool
    void_reason: str | None
    note: str | None
    created_at: float


def _reading(r: Any) -> Reading:
    return Reading(r.id, r.device_id, r.meter, r.value, r.read_at, r.source, r.origin, r.record_id, bool(r.void),
                   r.void_reason, r.note, r.created_at)


def _valid(device_id: str, meter: str) -> Any:
    c = meter_readings.c
    return (c.device_id == device_id) & (c.meter == meter) & (c.void.is_(False))


def before(conn: Connection, device_id: str, meter: str, t: float) -> Reading | None:
    """The newest valid reading at or before ``t``."""
    c = meter_readings.c
    row = conn.execute(select(meter_readings).where(_valid(device_id, meter), c.read_at <= t)
                       .order_by(c.read_at.desc(), c.value.desc()).limit(1)).first()
    return None if row is None else _reading(row)


def after(conn: Connection, device_id: str, meter: str, t: float) -> Reading | None:
    """The oldest valid reading strictly after ``t``."""
    c = meter_readings.c
    row = conn.execute(select(meter_readings).where(_valid(device_id, meter), c.read_at > t)
                       .order_by(c.read_at, c.value).limit(1)).first()
    return None if row is None else _reading(row)


def value_at(conn: Connection, device_id: str, meter: str, t: float) -> float | None:
    r = before(conn, device_id, meter, t)
    return None if r is None else r.value


def first_after(conn: Connection, device_id: str, meter: str, t: float) -> float | None:
    r = after(conn, device_id, meter, t)
    return None if r is None else r.value


def backwards(conn: Connection, device_id: str, meter: str, value: float, t: float) -> str | None:
    """Why ``value`` at ``t`` would break the meter's order, or None if it fits."""
    prev, nxt = before(conn, device_id, meter, t), after(conn, device_id, meter, t)
    if prev is not None and value < prev.value:
        return f"{meter} {value:g} at {t:.3f} is below reading #{prev.id} ({prev.value:g} at {prev.read_at:.3f})"
    if nxt is not None and value > nxt.value:
        return f"{meter} {value:g} at {t:.3f} is above the later reading #{nxt.id} ({nxt.value:g} at {nxt.read_at:.3f})"
    return None


def _check_value(meter: str, value: float, read_at: float) -> None:
    if meter not in METERS:
        raise Invalid(f"unknown meter {meter!r} (one of {', '.join(METERS)})")
    if not (math.isfinite(value) and 0 <= value <= MAX_METER_VALUE) or not math.isfinite(read_at):
        raise Invalid(f"{meter} reading {value!r} at {read_at!r} is not a finite value in 0..{MAX_METER_VALUE:g}")


def _insert(conn: Connection, **values: Any) -> Reading:
    row = conn.execute(insert(meter_readings).values(**values).returning(*meter_readings.c)).one()
    return _reading(row)


def add_manual(conn: Connection, device_id: str, meter: str, value: float, read_at: float, now: float, *,
               void: bool = False, void_reason: str | None = None, entered_by: str | None = None,
               note: str | None = None) -> Reading:
    """Store a reading staff entered; ``Conflict`` if it goes backwards and is not marked void."""
    _check_value(meter, value, read_at)
    if meter not in MANUAL_METERS:
        raise Invalid(f"{meter} is summed from the vehicle's idle periods and cannot be entered by hand")
    if void and not void_reason:
        raise Invalid("a void reading needs a void_reason")
    if not void:
        reason = backwards(conn, device_id, meter, value, read_at)
        if reason is not None:
            raise Conflict(f"reading goes backwards: {reason}; enter it as void (with a reason) to keep it on record")
    return _insert(conn, device_id=device_id, meter=meter, value=value, read_at=read_at, source=MANUAL,
                   origin=entered_by, record_id=None, void=void, void_reason=void_reason if void else None,
                   note=note, created_at=now)


def add_vehicle(conn: Connection, device_id: str, meter: str, value: float, read_at: float, record_id: int,
                origin: str | None, now: float) -> Reading:
    """Store a reading from a vehicle event, void if it goes backwards. Called once per event (the
    derivation's processed markers); the unique index on (device, meter, record) refuses a second one."""
    _check_value(meter, value, read_at)
    reason = backwards(conn, device_id, meter, value, read_at)
    return _insert(conn, device_id=device_id, meter=meter, value=value, read_at=read_at, source=VEHICLE,
                   origin=origin, record_id=record_id, void=reason is not None,
                   void_reason=None if reason is None else f"{BACKWARDS_PREFIX}{reason}", note=None, created_at=now)


def add_idle(conn: Connection, device_id: str, hours: float, read_at: float, record_id: int, now: float
             ) -> Reading:
    """Add one idle period of ``hours`` ending at ``read_at`` to the running idle-hours total (once per event,
    as ``add_vehicle``)."""
    if not (math.isfinite(hours) and hours >= 0):
        raise Invalid(f"idle duration {hours!r} h is not a finite non-negative number")
    c = meter_readings.c
    total = (value_at(conn, device_id, IDLE_HOURS, read_at) or 0.0) + hours
    # Later periods already summed without this one: raise them so the total stays the running sum.
    conn.execute(update(meter_readings).where(c.device_id == device_id, c.meter == IDLE_HOURS, c.read_at > read_at)
                 .values(value=c.value + hours))
    return _insert(conn, device_id=device_id, meter=IDLE_HOURS, value=total, read_at=read_at,
                   source=VEHICLE, origin=IDLE_ORIGIN, record_id=record_id, void=False, void_reason=None,
                   note=None, created_at=now)


def get_reading(conn: Connection, reading_id: int) -> Reading:
    row = conn.execute(select(meter_readings).where(meter_readings.c.id == reading_id)).first()
    if row is None:
        raise NotFound(f"no meter reading {reading_id}")
    return _reading(row)


def void_reading(conn: Connection, reading_id: int, reason: str) -> Reading:
    """Mark a reading void (a typo, a replaced instrument cluster): it stays listed but is never used."""
    if not reason:
        raise Invalid("voiding a reading needs a reason")
    reading = get_reading(conn, reading_id)
    if reading.meter == IDLE_HOURS:
        raise Invalid("idle-hours readings are sums of the vehicle's idle periods and cannot be voided")
    conn.execute(update(meter_readings).where(meter_readings.c.id == reading_id)
                 .values(void=True, void_reason=reason))
    _revalidate(conn, reading.device_id, reading.meter)
    return get_reading(conn, reading_id)


def _revalidate(conn: Connection, device_id: str, meter: str) -> None:
    """Vehicle readings voided for going backwards that fit now (the reading they clashed with was voided)
    become valid again, oldest first."""
    c = meter_readings.c
    rows = conn.execute(select(meter_readings).where(
        c.device_id == device_id, c.meter == meter, c.source == VEHICLE, c.void.is_(True),
        c.void_reason.startswith(BACKWARDS_PREFIX)).order_by(c.read_at, c.id)).all()
    for r in rows:
        if backwards(conn, device_id, meter, r.value, r.read_at) is None:
            conn.execute(update(meter_readings).where(c.id == r.id).values(void=False, void_reason=None))


def list_readings(conn: Connection, device_id: str, meter: str | None, start: float | None, end: float | None,
                  limit: int = MAX_LISTED) -> list[Reading]:
    """Readings in time order (void ones included, flagged), oldest first."""
    c = meter_readings.c
    query = select(meter_readings).where(c.device_id == device_id)
    if meter is not None:
        query = query.where(c.meter == meter)
    if start is not None:
        query = query.where(c.read_at >= start)
    if end is not None:
        query = query.where(c.read_at < end)
    rows = conn.execute(query.order_by(c.read_at, c.id).limit(min(limit, MAX_LISTED))).all()
    return [_reading(r) for r in rows]


def current(conn: Connection, device_id: str, t: float) -> dict[str, float | None]:
    """Each meter's value at ``t`` (its newest valid reading at or before ``t``)."""
    return {m: value_at(conn, device_id, m, t) for m in METERS}


@dataclass(frozen=True, slots=True)
class Usage:
    """A vehicle's meters at a time and its mean use per day over the window before it (None: unknown)."""

    current: dict[str, float | None]
    rates: dict[str, float | None]


NO_USAGE = Usage(dict.fromkeys(METERS), dict.fromkeys(METERS))


def _edges(conn: Connection, device_ids: Collection[str] | None, t: float, newest: bool
           ) -> dict[tuple[str, str], tuple[float, float]]:
    """(read_at, value) per (device, meter): the newest valid reading at or before ``t`` (``newest``), else the
    oldest after it; ties broken as ``before`` / ``after`` do. Two grouped queries for any number of vehicles."""
    c = meter_readings.c
    where = [c.void.is_(False), c.read_at <= t if newest else c.read_at > t]
    if device_ids is not None:
        where.append(c.device_id.in_(sorted(device_ids)))
    at = (func.max if newest else func.min)(c.read_at).label("at")
    edge = select(c.device_id, c.meter, at).where(*where).group_by(c.device_id, c.meter).subquery()
    value = (func.max if newest else func.min)(c.value)
    rows = conn.execute(select(c.device_id, c.meter, edge.c.at, value)
                        .join(edge, and_(c.device_id == edge.c.device_id, c.meter == edge.c.meter,
                                         c.read_at == edge.c.at))
                        .where(c.void.is_(False)).group_by(c.device_id, c.meter, edge.c.at))
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def usage(conn: Connection, device_ids: Collection[str] | None, now: float, window_days: float
          ) -> dict[str, Usage]:
    """Meters at ``now`` and mean use per day over the last ``window_days`` (from the newest reading before
    the window, else the oldest in it, to the newest by ``now``; a span under ``MIN_RATE_SPAN_DAYS`` counts
    as that), for the given vehicles or all; vehicles without readings are absent (``NO_USAGE``)."""
    start = now - window_days * DAY_S
    end, before_start, after_start = (_edges(conn, device_ids, now, True), _edges(conn, device_ids, start, True),
                                      _edges(conn, device_ids, start, False))
    out: dict[str, Usage] = {}
    for device in sorted({d for d, _ in end}):
        cur: dict[str, float | None] = {}
        rates: dict[str, float | None] = {}
        for m in METERS:
            last = end.get((device, m))
            first = before_start.get((device, m)) or after_start.get((device, m))
            cur[m] = None if last is None else last[1]
            rates[m] = None
            if last is not None and first is not None and first[0] < last[0]:
                span_days = max((last[0] - first[0]) / DAY_S, MIN_RATE_SPAN_DAYS)
                rates[m] = max(last[1] - first[1], 0.0) / span_days
        out[device] = Usage(cur, rates)
    return out
