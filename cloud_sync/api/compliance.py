"""Compliance API: drivers and their duty-status events, a driver's hours under a rule pack, DVIRs (submit,
certify, review) and a vehicle's safety status.

Who may call what is declared in ``cloud_sync.api.access`` (block "compliance"). Driver routes are scoped by
the driver's depot (a driver the caller may not see is a 404, as an unknown one is); vehicle routes by their
``{device}`` parameter. Errors of ``cloud_sync.compliance`` map to 404, 409 and 422.
"""

from __future__ import annotations

import functools
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import Connection

from cloud_sync.api.compliance_schemas import (
    MAX_TIME,
    AllowancePublic,
    CertifyCreate,
    DefectBody,
    DriverCreate,
    DriverHoursSummary,
    DriverPublic,
    DutyEventPublic,
    DutyEventsCreate,
    DutyEventsPublic,
    DvirCreate,
    DvirPublic,
    DvirsPublic,
    FleetHoursPublic,
    HoursPublic,
    IdsPublic,
    MovementPublic,
    ReviewCreate,
    RulePackPublic,
    RulePublic,
    SafetyPublic,
    TimeLeftPublic,
    ViolationPublic,
)
from cloud_sync.api.deps import CallerDep, ConnDep, ServicesDep, check_depot
from cloud_sync.api.workflow import ERRORS, run
from cloud_sync.compliance import drivers, dvir, hours, rulepack
from cloud_sync.compliance.duty import DutyStatus
from cloud_sync.governance.identity import Principal
from edge_agent.wire.model import DEVICE_ID_RE

router = APIRouter(tags=["compliance"])
DeviceParam = Annotated[str, Path(pattern=f"^{DEVICE_ID_RE.pattern}$", description="device id")]
DriverParam = Annotated[str, Path(min_length=1, max_length=64, description="driver id")]
AtParam = Annotated[float | None, Query(allow_inf_nan=False, ge=0, le=MAX_TIME, description="as of (default now)")]
CycleParam = Annotated[str | None, Query(max_length=64, description="US: cycle_70_8 (default) or cycle_60_7")]
#: Most drivers one fleet-hours call evaluates (each is a pass over four weeks of history, ~20-35 ms).
MAX_FLEET_DRIVERS = 500
def _visible_driver(conn: Connection, caller: Principal, driver_id: str) -> drivers.Driver:
    found = drivers.get_driver(conn, driver_id)
    if found is None or not caller.sees_depot(found.depot):  # 404 either way: existence is not told
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no driver {driver_id!r}")
    return found


@router.get("/v1/compliance/rule-packs", summary="Bundled rule packs with every rule and its citation",
            response_model=list[RulePackPublic], responses=ERRORS)
def list_packs(caller: CallerDep) -> list[RulePackPublic]:
    out = []
    for name in rulepack.available():
        p = rulepack.load(name)
        out.append(RulePackPublic(
            name=p.name, title=p.title, regulation=p.regulation, source=p.source, timezone=str(p.timezone),
            choices={k: list(v) for k, v in p.choices.items()}, assumptions=list(p.assumptions),
            rules=[RulePublic(id=r.id, kind=r.kind, cite=r.cite, summary=r.summary, params=dict(r.params))
                   for r in p.rules.values()]))
    return out


@router.post("/v1/drivers", summary="Register a driver", status_code=201, response_model=DriverPublic,
             responses=ERRORS)
def create_driver(body: DriverCreate, caller: CallerDep, services: ServicesDep) -> DriverPublic:
    check_depot(caller, body.depot)
    tz = body.home_timezone
    if tz is not None:
        run(lambda: hours.zone(tz))
    with services.engine.begin() as conn:
        run(lambda: drivers.add_driver(conn, drivers.Driver(body.id, body.name, body.depot, body.home_timezone)))
    return DriverPublic(id=body.id, name=body.name, depot=body.depot, home_timezone=body.home_timezone)


@router.post("/v1/drivers/{driver}/duty-events", summary="Add duty-status events (log in/out, or entered by staff)",
             status_code=201, response_model=IdsPublic, responses=ERRORS)
def add_duty_events(driver: DriverParam, body: DutyEventsCreate, caller: CallerDep,
                    services: ServicesDep) -> IdsPublic:
    with services.engine.begin() as conn:
        _visible_driver(conn, caller, driver)
        rows = [(e.at, DutyStatus(e.status), e.device_id, e.note) for e in body.events]
        ids = run(lambda: drivers.add_events(conn, driver, rows, body.source, caller.actor))
    return IdsPublic(ids=ids)


@router.get("/v1/drivers/{driver}/duty-events", summary="A driver's duty-status events as entered",
            response_model=DutyEventsPublic, responses=ERRORS)
def list_duty_events(driver: DriverParam, caller: CallerDep, conn: ConnDep,
                     start: Annotated[float | None, Query(alias="from", allow_inf_nan=False)] = None,
                     end: Annotated[float | None, Query(alias="to", allow_inf_nan=False)] = None) -> DutyEventsPublic:
    _visible_driver(conn, caller, driver)
    rows = drivers.events(conn, driver, start, end)
    return DutyEventsPublic(driver_id=driver, events=[
        DutyEventPublic(id=e.id, at=e.at, status=e.status.value, device_id=e.device_id, source=e.source,
                        entered_by=e.entered_by, note=e.note, recorded_at=e.recorded_at) for e in rows])


@router.get("/v1/drivers/{driver}/hours", summary="Time left per rule and violations under a rule pack",
            response_model=HoursPublic, responses=ERRORS)
def driver_hours(driver: DriverParam, caller: CallerDep, conn: ConnDep,
                 pack: Annotated[str, Query(max_length=64, description="rule pack, e.g. us_fmcsa_property")],
                 at: AtParam = None, cycle: CycleParam = None) -> HoursPublic:
    _visible_driver(conn, caller, driver)
    choices = {} if cycle is None else {"cycle": cycle}
    h = run(lambda: hours.evaluate(conn, driver, pack, at=at, choices=choices))
    r = h.report
    return HoursPublic(
        driver_id=driver, pack=h.pack.name, regulation=h.pack.regulation, at=h.at, timezone=h.timezone,
        driving_left_minutes=r.driving_left_minutes,
        time_left=[TimeLeftPublic(rule=t.rule, cite=t.cite, window_start=t.start, window_end=t.end,
                                  limit_minutes=t.limit_minutes, used_minutes=t.used_minutes,
                                  left_minutes=t.left_minutes) for t in r.time_left],
        violations=[ViolationPublic(rule=v.rule, cite=v.cite, window_start=v.start, window_end=v.end, at=v.at,
                                    minutes=v.minutes, detail=v.detail) for v in r.violations],
        allowances=[AllowancePublic(rule=a.rule, cite=a.cite, window_start=a.start, window_end=a.end, limit=a.limit,
                                    used=a.used, left=a.left) for a in r.allowances],
        assumptions=list(h.pack.assumptions), events_used=h.events_used, latest_recorded_at=h.latest_recorded_at,
        trips_used=h.trips_used, latest_trip_arrival=h.latest_trip_arrival,
        provisional_vehicles=h.provisional_vehicles)


@router.get("/v1/compliance/hours", summary="Drivers by least driving time left under a rule pack",
            response_model=FleetHoursPublic, responses=ERRORS)
def fleet_hours(caller: CallerDep, conn: ConnDep,
                pack: Annotated[str, Query(max_length=64, description="rule pack, e.g. eu_561_2006")],
                depot: Annotated[str | None, Query(max_length=128)] = None, at: AtParam = None,
                cycle: CycleParam = None,
                limit: Annotated[int, Query(ge=1, le=MAX_FLEET_DRIVERS)] = 100) -> FleetHoursPublic:
    """Who is close to a limit: every visible driver (of ``depot``) evaluated as of ``at``."""
    if depot is not None:
        check_depot(caller, depot)
    now = time.time() if at is None else at
    choices = {} if cycle is None else {"cycle": cycle}
    out = []
    for d in drivers.list_drivers(conn, depot, limit=MAX_FLEET_DRIVERS):
        if not caller.sees_depot(d.depot):
            continue
        h = run(functools.partial(hours.evaluate, conn, d.id, pack, at=now, choices=choices))
        r = h.report
        limiting = min((t for t in r.time_left if t.limits_driving), key=lambda t: t.left_minutes, default=None)
        out.append(DriverHoursSummary(
            driver_id=d.id, name=d.name, depot=d.depot, driving_left_minutes=r.driving_left_minutes,
            limiting_rule=None if limiting is None else limiting.rule, violations=len(r.violations),
            violation_minutes=sum(v.minutes for v in r.violations), provisional=bool(h.provisional_vehicles)))
        if len(out) >= limit:
            break
    out.sort(key=lambda x: (x.driving_left_minutes, x.driver_id))
    return FleetHoursPublic(pack=pack, at=now, drivers=out)


def _dvir(r: dvir.Report) -> DvirPublic:
    d = r.draft
    return DvirPublic(
        id=r.id, device_id=r.device_id, kind=d.kind, driver_id=d.driver_id, inspected_at=d.inspected_at,
        items=d.items, defects=[DefectBody(item=x.item, description=x.description, affects_safety=x.affects_safety)
                                for x in d.defects],
        driver_signature=d.driver_signature, odometer_km=d.odometer_km, location=d.location, remarks=d.remarks,
        unsafe=r.unsafe, certified_at=r.certified_at, certified_by=r.certified_by, mechanic=r.mechanic,
        certification=r.certification, certification_note=r.certification_note, reviewed_at=r.reviewed_at,
        reviewed_by=r.reviewed_by, review_signature=r.review_signature, recorded_at=r.recorded_at,
        released=r.released)


@router.post("/v1/vehicles/{device}/dvirs", summary="Submit a pre-trip or post-trip inspection report",
             status_code=201, response_model=DvirPublic, responses=ERRORS)
def submit_dvir(device: DeviceParam, body: DvirCreate, caller: CallerDep, services: ServicesDep) -> DvirPublic:
    draft = dvir.ReportDraft(body.kind, body.driver_id, body.inspected_at, dict(body.items),
                             [dvir.Defect(x.item, x.description, x.affects_safety) for x in body.defects],
                             body.driver_signature, body.odometer_km, body.location, body.remarks)
    with services.engine.begin() as conn:
        _visible_driver(conn, caller, body.driver_id)
        return _dvir(run(lambda: dvir.submit(conn, device, draft, caller.actor)))


@router.get("/v1/vehicles/{device}/dvirs", summary="A vehicle's inspection reports, newest first",
            response_model=DvirsPublic, responses=ERRORS)
def list_dvirs(device: DeviceParam, caller: CallerDep, conn: ConnDep,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DvirsPublic:
    return DvirsPublic(device_id=device, reports=[_dvir(r) for r in dvir.reports(conn, device, limit)])


@router.post("/v1/vehicles/{device}/dvirs/{report_id}/certify",
             summary="Certify the defects repaired, or repair unnecessary (49 CFR 396.11(a)(3)(ii))",
             response_model=DvirPublic, responses=ERRORS)
def certify_dvir(device: DeviceParam, report_id: Annotated[int, Path(ge=1)], body: CertifyCreate,
                 caller: CallerDep, services: ServicesDep) -> DvirPublic:
    with services.engine.begin() as conn:
        return _dvir(run(lambda: dvir.certify(conn, device, report_id, body.certification, body.mechanic,
                                               caller.actor, body.note)))


@router.post("/v1/vehicles/{device}/dvirs/{report_id}/review",
             summary="The next driver reviews the certified report and signs (49 CFR 396.13(c))",
             response_model=DvirPublic, responses=ERRORS)
def review_dvir(device: DeviceParam, report_id: Annotated[int, Path(ge=1)], body: ReviewCreate,
                caller: CallerDep, services: ServicesDep) -> DvirPublic:
    with services.engine.begin() as conn:
        _visible_driver(conn, caller, body.driver_id)
        return _dvir(run(lambda: dvir.review(conn, device, report_id, body.driver_id, body.signature)))


@router.get("/v1/vehicles/{device}/safety", summary="Safe to operate? Open defect reports, movement while unsafe",
            response_model=SafetyPublic, responses=ERRORS)
def vehicle_safety(device: DeviceParam, caller: CallerDep, conn: ConnDep) -> SafetyPublic:
    s = run(lambda: dvir.safety(conn, device))
    return SafetyPublic(
        device_id=device, safe_to_operate=s.safe_to_operate,
        status="ok" if s.safe_to_operate else "not_safe_to_operate",
        waiting_for=s.waiting_for,  # type: ignore[arg-type]
        open_reports=[_dvir(r) for r in s.open_reports],
        moved_while_unsafe=[MovementPublic(report_id=m["report_id"], window_start=m["from"], window_end=m["to"],
                                           first_moved_at=m["first_moved_at"], moving_positions=m["moving_positions"],
                                           trips_started=m["trips_started"]) for m in s.moved_while_unsafe])
