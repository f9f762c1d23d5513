"""Maintenance API: service programs and due services, meter readings, settings; with the fault issues,
work orders and risk ranking of ``cloud_sync.api.maintenance_work`` (included in ``router``).

Who may call what is declared in ``cloud_sync.api.access`` (block "maintenance"). Vehicle routes are
depot-scoped by their ``{device}`` parameter; fleet-wide lists show only vehicles of the caller's
depots; an issue or work order of a vehicle the caller may not see is a 404, as an unknown id is.
Errors of ``cloud_sync.maintenance`` map to 404 (not found), 409 (conflicts with stored state, e.g. a
reading that goes backwards) and 422 (invalid request).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from cloud_sync.api.deps import CallerDep, ConnDep, ServicesDep
from cloud_sync.api.maintenance_schemas import (
    AssignCreate,
    AssignPublic,
    ConfigPublic,
    ConfigUpdate,
    DerivePublic,
    MeterCreate,
    MetersPublic,
    ProgramCreate,
    ProgramPublic,
    ReadingPublic,
    ServicePublic,
    ServicesPublic,
    SnoozeCreate,
    TaskCreate,
    TaskPublic,
    TriggerDuePublic,
    TriggerPublic,
    VoidCreate,
)
from cloud_sync.api.maintenance_work import ERRORS, DeviceParam, IdParam, depot_visible, run, visible_devices
from cloud_sync.api.maintenance_work import router as work_router
from cloud_sync.maintenance import config, derive, meters, programs, schedule
from cloud_sync.store.devices import get_device

router = APIRouter(tags=["maintenance"])
router.include_router(work_router)
AtParam = Annotated[float | None, Query(allow_inf_nan=False, description="evaluate as of this time (default now)")]


def _task(t: programs.Task) -> TaskPublic:
    return TaskPublic(id=t.id, program_id=t.program_id, name=t.name,
                      triggers=[TriggerPublic(meter=g.meter, every=g.every, soon=g.soon) for g in t.triggers])


def _program(p: programs.Program, caller: CallerDep, conn: ConnDep) -> ProgramPublic:
    visible = [d for d in p.vehicles if caller.depots is None or depot_visible(conn, caller, d)]
    return ProgramPublic(id=p.id, name=p.name, description=p.description, created_at=p.created_at,
                         tasks=[_task(t) for t in p.tasks], vehicles=visible)


def _service(s: programs.VehicleService) -> ServicePublic:
    st = s.status
    return ServicePublic(
        device_id=s.device_id, program_id=s.program_id, program=s.program, task_id=s.task.id, task=s.task.name,
        state=st.state, next_due_at=st.next_due_at, done_at=s.done_at, done_meters=s.done_meters,
        work_order_id=s.work_order_id, snoozed_until=st.snoozed_until, snooze_reason=s.snooze_reason,
        triggers=[TriggerDuePublic(meter=d.meter, unit=d.unit, every=d.every, soon=d.soon, last=d.last, due_at=d.due_at,
                                   current=d.current, remaining=d.remaining, daily_rate=d.daily_rate,
                                   forecast_at=d.forecast_at, state=d.state) for d in st.triggers])


def _reading(r: meters.Reading) -> ReadingPublic:
    return ReadingPublic(id=r.id, meter=r.meter, value=r.value, read_at=r.read_at, source=r.source, origin=r.origin,
                         record_id=r.record_id, void=r.void, void_reason=r.void_reason, note=r.note)


# -- programs -------------------------------------------------------------------------------------

@router.get("/v1/maintenance/programs", summary="Service programs with their tasks and vehicles",
            response_model=list[ProgramPublic], responses=ERRORS)
def list_programs(conn: ConnDep, caller: CallerDep) -> list[ProgramPublic]:
    return [_program(p, caller, conn) for p in programs.list_programs(conn)]


@router.post("/v1/maintenance/programs", summary="Create a service program", status_code=status.HTTP_201_CREATED,
             response_model=ProgramPublic, responses=ERRORS)
def create_program(body: ProgramCreate, services: ServicesDep, caller: CallerDep) -> ProgramPublic:
    with services.engine.begin() as conn:
        program = run(lambda: programs.create_program(conn, body.name, body.description, time.time()))
        return _program(program, caller, conn)


@router.get("/v1/maintenance/programs/{program_id}", summary="One service program", response_model=ProgramPublic,
            responses=ERRORS)
def get_program(program_id: IdParam, conn: ConnDep, caller: CallerDep) -> ProgramPublic:
    return _program(run(lambda: programs.get_program(conn, program_id)), caller, conn)


@router.post("/v1/maintenance/programs/{program_id}/tasks", summary="Add a service task (triggers: whichever first)",
             status_code=status.HTTP_201_CREATED, response_model=TaskPublic, responses=ERRORS)
def add_task(program_id: IdParam, body: TaskCreate, services: ServicesDep, _caller: CallerDep) -> TaskPublic:
    given = {meters.ODOMETER: body.odometer_km, meters.ENGINE_HOURS: body.engine_hours,
             meters.IDLE_HOURS: body.idle_hours, schedule.CALENDAR: body.calendar_days}
    intervals: dict[str, tuple[float | None, float | None]] = {
        m: (t.every, t.soon) for m, t in given.items() if t is not None}
    with services.engine.begin() as conn:
        return _task(run(lambda: programs.add_task(conn, program_id, body.name, intervals, time.time())))


@router.post("/v1/maintenance/programs/{program_id}/vehicles", summary="Apply a program to many vehicles at once",
             response_model=AssignPublic, responses=ERRORS)
def assign(program_id: IdParam, body: AssignCreate, services: ServicesDep, caller: CallerDep) -> AssignPublic:
    now = time.time()
    with services.engine.begin() as conn:
        wanted = set(body.devices)
        if body.depot is not None or body.profile is not None:
            wanted |= set(programs.select_devices(conn, body.depot, body.profile))
        if not wanted:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no vehicles: give devices, depot or profile")
        for device_id in sorted(wanted):
            device = get_device(conn, device_id)
            if device is None or not caller.sees_depot(device.depot):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no vehicle {device_id!r}")
        done_at = now if body.last_done_at is None else body.last_done_at
        added = run(lambda: programs.assign(conn, program_id, sorted(wanted), done_at, now))
    return AssignPublic(program_id=program_id, assigned=added, already=sorted(wanted - set(added)))


# -- services -------------------------------------------------------------------------------------

@router.get("/v1/maintenance/services", summary="Due state of every service task on every vehicle you see",
            response_model=ServicesPublic, responses=ERRORS)
def fleet_services(conn: ConnDep, caller: CallerDep, at: AtParam = None,
                   state: Annotated[str | None, Query(pattern="^(ok|due_soon|overdue|snoozed|unknown)$")] = None
                   ) -> ServicesPublic:
    now = time.time() if at is None else at
    window = config.get_config(conn).forecast_window_days
    items = [s for s in programs.vehicle_services(conn, None, now, window, device_ids=visible_devices(conn, caller))
             if state is None or s.status.state == state]
    return ServicesPublic(at=now, data=[_service(s) for s in items], count=len(items))


@router.get("/v1/vehicles/{device}/services", summary="A vehicle's service tasks: state, next due, forecast",
            response_model=ServicesPublic, responses=ERRORS)
def vehicle_services(device: DeviceParam, conn: ConnDep, _caller: CallerDep, at: AtParam = None) -> ServicesPublic:
    now = time.time() if at is None else at
    window = config.get_config(conn).forecast_window_days
    items = programs.vehicle_services(conn, device, now, window)
    return ServicesPublic(at=now, data=[_service(s) for s in items], count=len(items))


@router.post("/v1/vehicles/{device}/services/{task_id}/snooze", summary="Snooze a due service task",
             status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def snooze(device: DeviceParam, task_id: IdParam, body: SnoozeCreate, services: ServicesDep, _caller: CallerDep
           ) -> None:
    with services.engine.begin() as conn:
        run(lambda: programs.snooze(conn, task_id, device, body.until, body.reason, time.time()))


@router.delete("/v1/vehicles/{device}/services/{task_id}/snooze", summary="End a snooze",
               status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def unsnooze(device: DeviceParam, task_id: IdParam, services: ServicesDep, _caller: CallerDep) -> None:
    with services.engine.begin() as conn:
        run(lambda: programs.snooze(conn, task_id, device, None, None, time.time()))


# -- meters ---------------------------------------------------------------------------------------

@router.get("/v1/vehicles/{device}/meters", summary="Meter readings in time order (void ones flagged)",
            response_model=MetersPublic, responses=ERRORS)
def list_meters(device: DeviceParam, conn: ConnDep, _caller: CallerDep,
                meter: Annotated[str | None, Query(pattern="^(odometer_km|engine_hours|idle_hours)$")] = None,
                start: Annotated[float | None, Query(alias="from", allow_inf_nan=False)] = None,
                end: Annotated[float | None, Query(alias="to", allow_inf_nan=False)] = None,
                limit: Annotated[int, Query(ge=1, le=meters.MAX_LISTED)] = 200) -> MetersPublic:
    items = meters.list_readings(conn, device, meter, start, end, limit)
    return MetersPublic(device_id=device, current=meters.current(conn, device, time.time()),
                        data=[_reading(r) for r in items])


@router.post("/v1/vehicles/{device}/meters", summary="Enter a meter reading (refused with 409 if it goes backwards)",
             status_code=status.HTTP_201_CREATED, response_model=ReadingPublic, responses=ERRORS)
def add_meter(device: DeviceParam, body: MeterCreate, services: ServicesDep, caller: CallerDep) -> ReadingPublic:
    now = time.time()
    read_at = now if body.read_at is None else body.read_at
    with services.engine.begin() as conn:
        return _reading(run(lambda: meters.add_manual(
            conn, device, body.meter, body.value, read_at, now, void=body.void, void_reason=body.void_reason,
            entered_by=caller.actor, note=body.note)))


@router.post("/v1/vehicles/{device}/meters/{reading_id}/void", summary="Void a reading (kept, never used)",
             response_model=ReadingPublic, responses=ERRORS)
def void_meter(device: DeviceParam, reading_id: IdParam, body: VoidCreate, services: ServicesDep, _caller: CallerDep
               ) -> ReadingPublic:
    with services.engine.begin() as conn:
        reading = run(lambda: meters.get_reading(conn, reading_id))
        if reading.device_id != device:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meter reading {reading_id} on {device!r}")
        return _reading(run(lambda: meters.void_reading(conn, reading_id, body.reason)))


# -- settings and catch-up ------------------------------------------------------------------------

def _config(c: config.MaintenanceConfig) -> ConfigPublic:
    return ConfigPublic(reopen_within_trips=c.reopen_within_trips, forecast_window_days=c.forecast_window_days)


@router.get("/v1/maintenance/config", summary="Maintenance settings", response_model=ConfigPublic, responses=ERRORS)
def get_config(conn: ConnDep, _caller: CallerDep) -> ConfigPublic:
    return _config(config.get_config(conn))


@router.put("/v1/maintenance/config", summary="Change maintenance settings", response_model=ConfigPublic,
            responses=ERRORS)
def put_config(body: ConfigUpdate, services: ServicesDep, _caller: CallerDep) -> ConfigPublic:
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    with services.engine.begin() as conn:
        return _config(run(lambda: config.set_config(conn, time.time(), **values)))


@router.post("/v1/maintenance/derive", summary="Derive readings and issues from events not yet handled (catch-up)",
             response_model=DerivePublic, responses=ERRORS)
def derive_now(services: ServicesDep, _caller: CallerDep) -> DerivePublic:
    report = derive.derive_all(services.engine)
    return DerivePublic(outcomes={d: dict(c) for d, c in report.items() if c})


__all__ = ["router"]
