"""Service programs: named sets of service tasks applied to many vehicles at once, and each task's
state per vehicle (when last done, snoozes) from which ``schedule.evaluate`` says when it is due.

Applying a program to a vehicle records a baseline per task: "last done" at ``done_at`` (now unless
staff say when the vehicle was last serviced) with the meters as they stood then. A meter with no
reading at the baseline takes its first reading after it instead, so a vehicle whose first batch
arrives after the program was applied is not reported overdue by its whole odometer. Completing a
work order that lists the task resets the baseline (``reset``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_sync.maintenance import meters
from cloud_sync.maintenance.errors import Conflict, Invalid, NotFound
from cloud_sync.maintenance.meters import ENGINE_HOURS, IDLE_HOURS, ODOMETER
from cloud_sync.maintenance.schedule import CALENDAR, DueStatus, Trigger, evaluate
from cloud_sync.maintenance.tables import (
    meter_readings,
    program_vehicles,
    service_programs,
    service_status,
    service_tasks,
)
from cloud_sync.store.schema import devices

#: Columns of a task's interval and due-soon threshold, per trigger.
TRIGGER_COLUMNS = {ODOMETER: ("every_km", "soon_km"), ENGINE_HOURS: ("every_engine_h", "soon_engine_h"),
                   IDLE_HOURS: ("every_idle_h", "soon_idle_h"), CALENDAR: ("every_days", "soon_days")}
#: Columns of the meters when a task was last done.
DONE_COLUMNS = {ODOMETER: "done_km", ENGINE_HOURS: "done_engine_h", IDLE_HOURS: "done_idle_h"}
#: Due-soon threshold when a trigger is given without one: the last tenth of the interval.
DEFAULT_SOON_FRACTION = 0.1
#: Longest interval accepted per trigger (km, h, h, days): far beyond any service schedule.
MAX_INTERVAL = {ODOMETER: 2_000_000.0, ENGINE_HOURS: 100_000.0, IDLE_HOURS: 100_000.0, CALENDAR: 3660.0}
MAX_VEHICLES_PER_ASSIGN = 10_000


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    program_id: int
    name: str
    triggers: tuple[Trigger, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class Program:
    id: int
    name: str
    description: str | None
    created_at: float
    tasks: tuple[Task, ...]
    vehicles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VehicleService:
    device_id: str
    program_id: int
    program: str
    task: Task
    done_at: float
    done_meters: dict[str, float | None]
    work_order_id: int | None
    snooze_reason: str | None
    status: DueStatus


def _task(r: Any) -> Task:
    triggers = tuple(Trigger(meter, getattr(r, every), getattr(r, soon))
                     for meter, (every, soon) in TRIGGER_COLUMNS.items() if getattr(r, every) is not None)
    return Task(r.id, r.program_id, r.name, triggers, r.created_at)


def _program(conn: Connection, r: Any) -> Program:
    tasks = tuple(_task(t) for t in conn.execute(select(service_tasks).where(service_tasks.c.program_id == r.id)
                                                  .order_by(service_tasks.c.id)))
    vehicles = tuple(conn.execute(select(program_vehicles.c.device_id).where(program_vehicles.c.program_id == r.id)
                                  .order_by(program_vehicles.c.device_id)).scalars())
    return Program(r.id, r.name, r.description, r.created_at, tasks, vehicles)


def create_program(conn: Connection, name: str, description: str | None, now: float) -> Program:
    if conn.execute(select(service_programs.c.id).where(service_programs.c.name == name)).first() is not None:
        raise Conflict(f"a service program named {name!r} exists")
    try:
        new_id = conn.execute(insert(service_programs).values(name=name, description=description, created_at=now)
                              .returning(service_programs.c.id)).scalar_one()
    except IntegrityError:  # created concurrently
        raise Conflict(f"a service program named {name!r} exists") from None
    return get_program(conn, new_id)


def get_program(conn: Connection, program_id: int) -> Program:
    row = conn.execute(select(service_programs).where(service_programs.c.id == program_id)).first()
    if row is None:
        raise NotFound(f"no service program {program_id}")
    return _program(conn, row)


def list_programs(conn: Connection) -> list[Program]:
    return [_program(conn, r) for r in conn.execute(select(service_programs).order_by(service_programs.c.id))]


def get_task(conn: Connection, task_id: int) -> Task:
    row = conn.execute(select(service_tasks).where(service_tasks.c.id == task_id)).first()
    if row is None:
        raise NotFound(f"no service task {task_id}")
    return _task(row)


def _interval_values(intervals: dict[str, tuple[float | None, float | None]]) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for meter, (every, soon) in intervals.items():
        if meter not in TRIGGER_COLUMNS:
            raise Invalid(f"unknown trigger {meter!r}")
        if every is None:
            if soon is not None:
                raise Invalid(f"{meter}: a due-soon threshold without an interval")
            continue
        if not (math.isfinite(every) and 0 < every <= MAX_INTERVAL[meter]):
            raise Invalid(f"{meter}: interval {every!r} is not in (0, {MAX_INTERVAL[meter]:g}]")
        soon = every * DEFAULT_SOON_FRACTION if soon is None else soon
        if not (math.isfinite(soon) and 0 <= soon < every):
            raise Invalid(f"{meter}: due-soon threshold {soon!r} must be >= 0 and below the interval {every:g}")
        every_col, soon_col = TRIGGER_COLUMNS[meter]
        values[every_col], values[soon_col] = every, soon
    if not values:
        raise Invalid("a service task needs at least one trigger (odometer, engine hours, idle hours or calendar)")
    return values


def add_task(conn: Connection, program_id: int, name: str, intervals: dict[str, tuple[float | None, float | None]],
             now: float) -> Task:
    """Add a task (``intervals``: trigger -> (every, soon)); vehicles already on the program get a baseline now."""
    program = get_program(conn, program_id)
    if any(t.name == name for t in program.tasks):
        raise Conflict(f"program {program.name!r} already has a task named {name!r}")
    values = _interval_values(intervals)
    task_id = conn.execute(insert(service_tasks).values(program_id=program_id, name=name, created_at=now, **values)
                           .returning(service_tasks.c.id)).scalar_one()
    for device_id in program.vehicles:
        _ensure_status(conn, task_id, device_id, now, now)
    return get_task(conn, task_id)


def select_devices(conn: Connection, depot: str | None, profile: str | None) -> list[str]:
    """Registered, unrevoked devices of a depot and/or profile."""
    query = select(devices.c.id).where(devices.c.revoked_at.is_(None))
    if depot is not None:
        query = query.where(devices.c.depot == depot)
    if profile is not None:
        query = query.where(devices.c.profile == profile)
    return list(conn.execute(query.order_by(devices.c.id)).scalars())


def assign(conn: Connection, program_id: int, device_ids: list[str], done_at: float, now: float) -> list[str]:
    """Apply a program to vehicles (baseline "last done" at ``done_at``); returns those newly assigned."""
    program = get_program(conn, program_id)
    wanted = sorted(set(device_ids))
    if len(wanted) > MAX_VEHICLES_PER_ASSIGN:
        raise Invalid(f"at most {MAX_VEHICLES_PER_ASSIGN} vehicles per request")
    known = set(conn.execute(select(devices.c.id).where(devices.c.id.in_(wanted))).scalars()) if wanted else set()
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise NotFound(f"no such vehicles: {', '.join(unknown[:20])}")
    added = [d for d in wanted if d not in program.vehicles]
    for device_id in added:
        conn.execute(insert(program_vehicles).values(program_id=program_id, device_id=device_id, assigned_at=now))
        for task in program.tasks:
            _ensure_status(conn, task.id, device_id, done_at, now)
    return added


def _ensure_status(conn: Connection, task_id: int, device_id: str, done_at: float, now: float) -> None:
    s = service_status.c
    if conn.execute(select(s.task_id).where(s.task_id == task_id, s.device_id == device_id)).first() is not None:
        return  # the vehicle has the task through another program, or had it before: keep its history
    done = {DONE_COLUMNS[m]: meters.value_at(conn, device_id, m, done_at) for m in DONE_COLUMNS}
    conn.execute(insert(service_status).values(task_id=task_id, device_id=device_id, done_at=done_at,
                                               work_order_id=None, snoozed_until=None, snooze_reason=None,
                                               updated_at=now, **done))


def _status_row(conn: Connection, task_id: int, device_id: str) -> Any:
    s = service_status.c
    row = conn.execute(select(service_status).where(s.task_id == task_id, s.device_id == device_id)).first()
    if row is None:
        raise NotFound(f"vehicle {device_id!r} has no service task {task_id} (apply its program first)")
    return row


def snooze(conn: Connection, task_id: int, device_id: str, until: float | None, reason: str | None,
           now: float) -> None:
    """Snooze a due task until ``until`` (None: wake it now)."""
    _status_row(conn, task_id, device_id)
    if until is not None and (not math.isfinite(until) or until <= now):
        raise Invalid("snooze 'until' must be in the future")
    if until is not None and not reason:
        raise Invalid("snoozing needs a reason")
    s = service_status.c
    conn.execute(update(service_status).where(s.task_id == task_id, s.device_id == device_id)
                 .values(snoozed_until=until, snooze_reason=reason if until is not None else None, updated_at=now))


def reset(conn: Connection, task_id: int, device_id: str, done_at: float, done: dict[str, float | None],
          work_order_id: int | None, now: float) -> None:
    """The task was done at ``done_at`` with these meters: the next one counts from here."""
    _status_row(conn, task_id, device_id)
    s = service_status.c
    conn.execute(update(service_status).where(s.task_id == task_id, s.device_id == device_id).values(
        done_at=done_at, work_order_id=work_order_id, snoozed_until=None, snooze_reason=None, updated_at=now,
        **{DONE_COLUMNS[m]: done.get(m) for m in DONE_COLUMNS}))


def has_task(conn: Connection, task_id: int, device_id: str) -> bool:
    s = service_status.c
    return conn.execute(select(s.task_id).where(s.task_id == task_id, s.device_id == device_id)).first() is not None


def _first_readings_after_done(conn: Connection, device_ids: list[str] | None) -> dict[tuple[int, str, str], float]:
    """Per (task, vehicle, meter): the first valid reading after the task was last done (two grouped queries)."""
    s, m = service_status.c, meter_readings.c
    where = [m.void.is_(False)]
    if device_ids is not None:
        where.append(s.device_id.in_(device_ids))
    first = (select(s.task_id, s.device_id, m.meter, func.min(m.read_at).label("at"))
             .join(meter_readings, and_(m.device_id == s.device_id, m.read_at > s.done_at))
             .where(*where).group_by(s.task_id, s.device_id, m.meter).subquery())
    rows = conn.execute(select(first.c.task_id, first.c.device_id, first.c.meter, func.min(m.value))
                        .join(meter_readings, and_(m.device_id == first.c.device_id, m.meter == first.c.meter,
                                                   m.read_at == first.c.at))
                        .where(m.void.is_(False)).group_by(first.c.task_id, first.c.device_id, first.c.meter))
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def vehicle_services(conn: Connection, device_id: str | None, now: float, window_days: float, *,
                     device_ids: Collection[str] | None = None) -> list[VehicleService]:
    """Every assigned task's due status at ``now``: one vehicle, the given ones, or (both None) the fleet."""
    s, t, p = service_status.c, service_tasks.c, service_programs.c
    wanted = [device_id] if device_id is not None else None if device_ids is None else sorted(device_ids)
    query = (select(service_status, service_tasks, p.name.label("program_name"))
             .join(service_tasks, t.id == s.task_id).join(service_programs, p.id == t.program_id))
    if wanted is not None:
        query = query.where(s.device_id.in_(wanted))
    rows = conn.execute(query.order_by(s.device_id, t.id)).all()
    use = meters.usage(conn, wanted, now, window_days) if rows else {}
    missing = any(getattr(r, col) is None for r in rows for col in DONE_COLUMNS.values())
    stand_in = _first_readings_after_done(conn, wanted) if missing else {}
    out = []
    for r in rows:
        u = use.get(r.device_id, meters.NO_USAGE)
        done = {m: getattr(r, col) for m, col in DONE_COLUMNS.items()}
        for m, value in done.items():
            if value is None:
                done[m] = stand_in.get((r.task_id, r.device_id, m))
        task = _task(r)  # the join has one "id" column: the task's (service_status has none)
        status = evaluate(list(task.triggers), r.done_at, done, u.current, u.rates, now, r.snoozed_until)
        out.append(VehicleService(r.device_id, r.program_id, r.program_name, task, r.done_at, done,
                                  r.work_order_id, r.snooze_reason, status))
    return out
