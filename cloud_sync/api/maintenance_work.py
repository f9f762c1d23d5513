"""Maintenance API, the work side: fault issues (acknowledge, dismiss, evidence), work orders (open, start,
add lines, complete) and the per-vehicle risk ranking with staff outcomes. Included by
``cloud_sync.api.maintenance`` (whose docstring says how access and errors work)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import Connection

from cloud_sync.api.deps import CallerDep, ConnDep, ServicesDep
from cloud_sync.api.maintenance_schemas import (
    CompleteCreate,
    DismissCreate,
    IssueDetail,
    IssuePublic,
    IssuesPublic,
    LineCreate,
    LinePublic,
    LinesCreate,
    OccurrencePublic,
    ReviewCreate,
    ReviewPublic,
    ReviewsPublic,
    RiskPartPublic,
    RiskPublic,
    TracePublic,
    VehicleRiskPublic,
    WorkOrderCreate,
    WorkOrderPublic,
    WorkOrdersPublic,
)
from cloud_sync.api.workflow import ERRORS, run
from cloud_sync.governance.identity import Principal
from cloud_sync.maintenance import config, faults, meters, risk, work_orders
from cloud_sync.store.devices import get_device, list_devices
from edge_agent.wire.model import DEVICE_ID_RE

router = APIRouter(tags=["maintenance"])

DeviceParam = Annotated[str, Path(pattern=f"^{DEVICE_ID_RE.pattern}$", description="device id")]
#: Ids of programs, tasks, readings, issues and work orders are 32-bit integer keys on both backends.
MAX_ID = 2**31 - 1
IdParam = Annotated[int, Path(ge=1, le=MAX_ID)]
RecordIdParam = Annotated[int, Query(ge=0, le=2**63 - 1, description="the occurrence's record id")]
#: Occurrences listed with an issue (the evidence is for the newest).
RECENT_OCCURRENCES = 20


def depot_visible(conn: Connection, caller: Principal, device_id: str) -> bool:
    device = get_device(conn, device_id)
    return device is not None and caller.sees_depot(device.depot)


def visible_devices(conn: Connection, caller: Principal) -> list[str]:
    """Ids of the vehicles the caller may see (fleet-wide lists are computed for these only)."""
    return [d.id for d in list_devices(conn) if caller.sees_depot(d.depot)]


def _visible_or_404(conn: Connection, caller: Principal, device_id: str, what: str) -> None:
    if not depot_visible(conn, caller, device_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")  # existence is not told across depots


# -- issues ---------------------------------------------------------------------------------------

def _issue(i: faults.Issue) -> IssuePublic:
    d = i.identity
    return IssuePublic(
        id=i.id, device_id=i.device_id, fault_key=d.key, protocol=d.protocol, source=d.source, spn=d.spn, fmi=d.fmi,
        code=d.code, fault=d.fault, status=i.status, severity=i.severity, active=i.active, occurrences=i.occurrences,
        first_seen_at=i.first_seen_at, last_seen_at=i.last_seen_at, last_cleared_at=i.last_cleared_at,
        reopen_count=i.reopen_count, note=i.note, acknowledged_at=i.acknowledged_at,
        acknowledged_by=i.acknowledged_by, dismissed_at=i.dismissed_at, dismissed_reason=i.dismissed_reason,
        work_order_id=i.work_order_id, resolved_at=i.resolved_at, resolved_by_work_order_id=i.resolved_by_work_order_id)


def _traces(conn: Connection, device_id: str, record_id: int, t: float) -> list[TracePublic]:
    return [TracePublic(signal=tr.signal, unit=tr.unit, source=tr.source, points=tr.points)
            for tr in faults.evidence(conn, device_id, record_id, t)]


def _visible_issue(conn: Connection, caller: Principal, issue_id: int) -> faults.Issue:
    issue = run(lambda: faults.get_issue(conn, issue_id))
    _visible_or_404(conn, caller, issue.device_id, f"fault issue {issue_id}")
    return issue


@router.get("/v1/maintenance/issues", summary="Fault issues, newest activity first", response_model=IssuesPublic,
            responses=ERRORS)
def list_issues(conn: ConnDep, caller: CallerDep,
                device: Annotated[str | None, Query(pattern=f"^{DEVICE_ID_RE.pattern}$")] = None,
                issue_status: Annotated[list[str] | None, Query(alias="status")] = None,
                limit: Annotated[int, Query(ge=1, le=faults.MAX_LISTED)] = 100) -> IssuesPublic:
    wanted = tuple(issue_status) if issue_status else None
    if wanted is not None and not set(wanted) <= set(faults.STATUSES):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"status must be among {faults.STATUSES}")
    items = [i for i in faults.list_issues(conn, device, wanted, limit) if depot_visible(conn, caller, i.device_id)]
    return IssuesPublic(data=[_issue(i) for i in items], count=len(items))


@router.get("/v1/maintenance/issues/{issue_id}", summary="A fault issue with its occurrences and evidence",
            response_model=IssueDetail, responses=ERRORS)
def get_issue(issue_id: IdParam, conn: ConnDep, caller: CallerDep) -> IssueDetail:
    issue = _visible_issue(conn, caller, issue_id)
    recent = faults.occurrences(conn, issue_id, RECENT_OCCURRENCES)
    evidence = _traces(conn, issue.device_id, issue.last_record_id, issue.last_seen_at)
    return IssueDetail(**_issue(issue).model_dump(), evidence=evidence, recent_occurrences=[
        OccurrencePublic(record_id=o.record_id, kind=o.kind, device_time=o.device_time, severity=o.severity)
        for o in recent])


@router.get("/v1/maintenance/issues/{issue_id}/evidence", summary="Samples around one occurrence of an issue",
            response_model=list[TracePublic], responses=ERRORS)
def get_evidence(issue_id: IdParam, record_id: RecordIdParam, conn: ConnDep, caller: CallerDep) -> list[TracePublic]:
    issue = _visible_issue(conn, caller, issue_id)
    found = [o for o in faults.occurrences(conn, issue_id, faults.MAX_LISTED) if o.record_id == record_id]
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"record {record_id} is not an occurrence of issue {issue_id}")
    return _traces(conn, issue.device_id, record_id, found[0].device_time)


@router.post("/v1/maintenance/issues/{issue_id}/acknowledge", summary="Acknowledge an open issue",
             response_model=IssuePublic, responses=ERRORS)
def acknowledge(issue_id: IdParam, services: ServicesDep, caller: CallerDep) -> IssuePublic:
    with services.engine.begin() as conn:
        _visible_issue(conn, caller, issue_id)
        return _issue(run(lambda: faults.acknowledge(conn, issue_id, caller.actor, time.time())))


@router.post("/v1/maintenance/issues/{issue_id}/dismiss", summary="Dismiss an issue, with the reason",
             response_model=IssuePublic, responses=ERRORS)
def dismiss(issue_id: IdParam, body: DismissCreate, services: ServicesDep, caller: CallerDep) -> IssuePublic:
    with services.engine.begin() as conn:
        _visible_issue(conn, caller, issue_id)
        return _issue(run(lambda: faults.dismiss(conn, issue_id, f"{body.reason} ({caller.actor})", time.time())))


# -- work orders ----------------------------------------------------------------------------------

def _line_input(line: LineCreate) -> work_orders.LineInput:
    return work_orders.LineInput(line.kind, line.description, line.service_task_id, line.part_number, line.quantity,
                                 line.unit_cost, line.hours, line.rate, line.cost)


def _work_order(w: work_orders.WorkOrder) -> WorkOrderPublic:
    return WorkOrderPublic(
        id=w.id, device_id=w.device_id, status=w.status, title=w.title, description=w.description,
        created_at=w.created_at, started_at=w.started_at, completed_at=w.completed_at,
        meters_at_completion=w.meters_at_completion, issue_ids=list(w.issue_ids),
        lines=[LinePublic(id=ln.id, kind=ln.kind, description=ln.description, service_task_id=ln.service_task_id,
                          part_number=ln.part_number, quantity=ln.quantity, unit_cost=ln.unit_cost, hours=ln.hours,
                          rate=ln.rate, cost=ln.cost) for ln in w.lines],
        parts_cost=w.parts_cost, labour_cost=w.labour_cost, labour_hours=w.labour_hours, total_cost=w.total_cost)


def _visible_order(conn: Connection, caller: Principal, order_id: int) -> work_orders.WorkOrder:
    order = run(lambda: work_orders.get_work_order(conn, order_id))
    _visible_or_404(conn, caller, order.device_id, f"work order {order_id}")
    return order


@router.get("/v1/maintenance/work-orders", summary="Work orders, newest first", response_model=WorkOrdersPublic,
            responses=ERRORS)
def list_work_orders(conn: ConnDep, caller: CallerDep,
                     device: Annotated[str | None, Query(pattern=f"^{DEVICE_ID_RE.pattern}$")] = None,
                     order_status: Annotated[str | None, Query(alias="status",
                                                               pattern="^(open|in_progress|completed)$")] = None,
                     limit: Annotated[int, Query(ge=1, le=work_orders.MAX_LISTED)] = 100) -> WorkOrdersPublic:
    items = [w for w in work_orders.list_work_orders(conn, device, order_status, limit)
             if depot_visible(conn, caller, w.device_id)]
    return WorkOrdersPublic(data=[_work_order(w) for w in items], count=len(items))


@router.post("/v1/maintenance/work-orders", summary="Open a work order, taking over fault issues",
             status_code=status.HTTP_201_CREATED, response_model=WorkOrderPublic, responses=ERRORS)
def create_work_order(body: WorkOrderCreate, services: ServicesDep, caller: CallerDep) -> WorkOrderPublic:
    with services.engine.begin() as conn:
        _visible_or_404(conn, caller, body.device_id, f"vehicle {body.device_id!r}")
        return _work_order(run(lambda: work_orders.create(
            conn, body.device_id, body.title, body.description, body.issue_ids,
            [_line_input(line) for line in body.lines], time.time())))


@router.get("/v1/maintenance/work-orders/{order_id}", summary="One work order with lines and costs",
            response_model=WorkOrderPublic, responses=ERRORS)
def get_work_order(order_id: IdParam, conn: ConnDep, caller: CallerDep) -> WorkOrderPublic:
    return _work_order(_visible_order(conn, caller, order_id))


@router.post("/v1/maintenance/work-orders/{order_id}/lines", summary="Add tasks, parts, labour or issues",
             response_model=WorkOrderPublic, responses=ERRORS)
def add_lines(order_id: IdParam, body: LinesCreate, services: ServicesDep, caller: CallerDep) -> WorkOrderPublic:
    with services.engine.begin() as conn:
        _visible_order(conn, caller, order_id)
        return _work_order(run(lambda: work_orders.add_lines(
            conn, order_id, [_line_input(line) for line in body.lines], body.issue_ids, time.time())))


@router.post("/v1/maintenance/work-orders/{order_id}/start", summary="Mark a work order in progress",
             response_model=WorkOrderPublic, responses=ERRORS)
def start(order_id: IdParam, services: ServicesDep, caller: CallerDep) -> WorkOrderPublic:
    with services.engine.begin() as conn:
        _visible_order(conn, caller, order_id)
        return _work_order(run(lambda: work_orders.start(conn, order_id, time.time())))


@router.post("/v1/maintenance/work-orders/{order_id}/complete",
             summary="Complete: record meters, resolve its issues, reset its service tasks",
             response_model=WorkOrderPublic, responses=ERRORS)
def complete(order_id: IdParam, body: CompleteCreate, services: ServicesDep, caller: CallerDep) -> WorkOrderPublic:
    now = time.time()
    typed = {m: v for m, v in ((meters.ODOMETER, body.odometer_km), (meters.ENGINE_HOURS, body.engine_hours))
             if v is not None}
    with services.engine.begin() as conn:
        _visible_order(conn, caller, order_id)
        done_at = now if body.completed_at is None else body.completed_at
        return _work_order(run(lambda: work_orders.complete(conn, order_id, done_at, typed, now)))


# -- risk -----------------------------------------------------------------------------------------

def _review(r: risk.Review) -> ReviewPublic:
    return ReviewPublic(id=r.id, device_id=r.device_id, outcome=r.outcome, note=r.note, reschedule_to=r.reschedule_to,
                        score=r.score, parts=r.parts, reviewed_by=r.reviewed_by, reviewed_at=r.reviewed_at)


@router.get("/v1/maintenance/risk", summary="Vehicles ranked by risk, every part of the score shown",
            response_model=RiskPublic, responses=ERRORS)
def ranking(conn: ConnDep, caller: CallerDep,
            at: Annotated[float | None, Query(allow_inf_nan=False, description="as of (default now)")] = None
            ) -> RiskPublic:
    now = time.time() if at is None else at
    window = config.get_config(conn).forecast_window_days
    items = risk.ranking(conn, now, window, visible_devices(conn, caller))
    return RiskPublic(at=now, data=[VehicleRiskPublic(
        device_id=v.device_id, score=v.score,
        parts=[RiskPartPublic(name=p.name, count=p.count, weight=p.weight, points=p.points, detail=p.detail)
               for p in v.parts],
        last_review=None if v.last_review is None else _review(v.last_review)) for v in items])


@router.get("/v1/vehicles/{device}/risk/reviews", summary="Staff outcomes of a vehicle's risk reviews",
            response_model=ReviewsPublic, responses=ERRORS)
def list_reviews(device: DeviceParam, conn: ConnDep, _caller: CallerDep) -> ReviewsPublic:
    return ReviewsPublic(data=[_review(r) for r in risk.reviews(conn, device)])


@router.post("/v1/vehicles/{device}/risk/reviews", summary="Record what staff found (confirmed/dismissed/rescheduled)",
             status_code=status.HTTP_201_CREATED, response_model=ReviewPublic, responses=ERRORS)
def add_review(device: DeviceParam, body: ReviewCreate, services: ServicesDep, caller: CallerDep) -> ReviewPublic:
    with services.engine.begin() as conn:
        window = config.get_config(conn).forecast_window_days
        return _review(run(lambda: risk.add_review(conn, device, body.outcome, body.note, body.reschedule_to,
                                                   caller.actor, time.time(), window)))
