"""Work orders: a job on one vehicle with its tasks, parts and labour, opened from fault issues or by hand.

``open -> in_progress -> completed`` (or straight from open to completed). Completing one, in a single
transaction:

- records the meters at completion: the ones staff typed (stored as manual readings, so one that goes
  backwards refuses the completion) or else the vehicle's readings at that time;
- resolves every issue attached to it (the fault workflow then watches for the fault coming back);
- resets each service task its task lines name, from the completion time and meters.

Costs: a part line costs quantity x unit cost, a labour line hours x rate, a task line what staff say
(default 0); the order's totals are sums of its lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud_sync.maintenance import faults, meters, programs
from cloud_sync.maintenance.errors import Conflict, Invalid, NotFound
from cloud_sync.maintenance.tables import fault_issues, work_order_lines, work_orders
from cloud_sync.store.devices import get_device

OPEN, IN_PROGRESS, COMPLETED = "open", "in_progress", "completed"
STATUSES = (OPEN, IN_PROGRESS, COMPLETED)
TASK, PART, LABOUR = "task", "part", "labour"
LINE_KINDS = (TASK, PART, LABOUR)
MAX_LINES = 200
MAX_LISTED = 500
#: Largest money or quantity figure accepted on a line: catches a misplaced decimal point early.
MAX_AMOUNT = 1e9
#: A completion may be backdated (paperwork comes in late) but not dated ahead of the cloud's clock.
MAX_AHEAD_S = 300.0


@dataclass(frozen=True, slots=True)
class LineInput:
    kind: str
    description: str
    service_task_id: int | None = None
    part_number: str | None = None
    quantity: float | None = None
    unit_cost: float | None = None
    hours: float | None = None
    rate: float | None = None
    cost: float | None = None  # task lines only


@dataclass(frozen=True, slots=True)
class Line:
    id: int
    kind: str
    description: str
    service_task_id: int | None
    part_number: str | None
    quantity: float | None
    unit_cost: float | None
    hours: float | None
    rate: float | None
    cost: float


@dataclass(frozen=True, slots=True)
class WorkOrder:
    id: int
    device_id: str
    status: str
    title: str
    description: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    meters_at_completion: dict[str, float | None]
    lines: tuple[Line, ...]
    issue_ids: tuple[int, ...]

    @property
    def parts_cost(self) -> float:
        return sum(line.cost for line in self.lines if line.kind == PART)

    @property
    def labour_cost(self) -> float:
        return sum(line.cost for line in self.lines if line.kind == LABOUR)

    @property
    def labour_hours(self) -> float:
        return sum(line.hours or 0.0 for line in self.lines if line.kind == LABOUR)

    @property
    def total_cost(self) -> float:
        return sum(line.cost for line in self.lines)


def _amount(name: str, value: float | None, *, positive: bool = False) -> float:
    if value is None or not math.isfinite(value) or value < 0 or value > MAX_AMOUNT or (positive and value == 0):
        raise Invalid(f"{name} must be a finite number in {'(0' if positive else '[0'}, {MAX_AMOUNT:g}]")
    return value


def _line_values(conn: Connection, device_id: str, line: LineInput) -> dict[str, Any]:
    if line.kind not in LINE_KINDS:
        raise Invalid(f"line kind {line.kind!r} is not one of {LINE_KINDS}")
    values: dict[str, Any] = {"kind": line.kind, "description": line.description, "service_task_id": None,
                              "part_number": None, "quantity": None, "unit_cost": None, "hours": None, "rate": None}
    if line.kind == PART:
        values.update(part_number=line.part_number, quantity=_amount("quantity", line.quantity, positive=True),
                      unit_cost=_amount("unit_cost", line.unit_cost))
        values["cost"] = round(values["quantity"] * values["unit_cost"], 2)
    elif line.kind == LABOUR:
        values.update(hours=_amount("hours", line.hours, positive=True), rate=_amount("rate", line.rate))
        values["cost"] = round(values["hours"] * values["rate"], 2)
    else:
        if line.service_task_id is not None:
            programs.get_task(conn, line.service_task_id)
            if not programs.has_task(conn, line.service_task_id, device_id):
                raise Invalid(f"service task {line.service_task_id} is not on a program applied to {device_id!r}")
        values["service_task_id"] = line.service_task_id
        values["cost"] = 0.0 if line.cost is None else _amount("cost", line.cost)
    return values


def _line(r: Any) -> Line:
    return Line(r.id, r.kind, r.description, r.service_task_id, r.part_number, r.quantity, r.unit_cost, r.hours,
                r.rate, r.cost)


def get_work_order(conn: Connection, work_order_id: int) -> WorkOrder:
    row = conn.execute(select(work_orders).where(work_orders.c.id == work_order_id)).first()
    if row is None:
        raise NotFound(f"no work order {work_order_id}")
    lines = tuple(_line(r) for r in conn.execute(select(work_order_lines).where(
        work_order_lines.c.work_order_id == work_order_id).order_by(work_order_lines.c.id)))
    f = fault_issues.c
    issue_ids = tuple(conn.execute(select(f.id).where(
        (f.work_order_id == work_order_id) | (f.resolved_by_work_order_id == work_order_id)).order_by(f.id)).scalars())
    return WorkOrder(row.id, row.device_id, row.status, row.title, row.description, row.created_at, row.started_at,
                     row.completed_at, {meters.ODOMETER: row.odometer_km, meters.ENGINE_HOURS: row.engine_hours,
                                        meters.IDLE_HOURS: row.idle_hours}, lines, issue_ids)


def list_work_orders(conn: Connection, device_id: str | None, status: str | None, limit: int = MAX_LISTED
                     ) -> list[WorkOrder]:
    c = work_orders.c
    query = select(c.id)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    if status is not None:
        query = query.where(c.status == status)
    ids = conn.execute(query.order_by(c.id.desc()).limit(min(limit, MAX_LISTED))).scalars().all()
    return [get_work_order(conn, i) for i in ids]


def _attach_issues(conn: Connection, work_order_id: int, device_id: str, issue_ids: list[int], now: float) -> None:
    for issue_id in sorted(set(issue_ids)):
        issue = faults.get_issue(conn, issue_id)
        if issue.device_id != device_id:
            raise Invalid(f"issue {issue_id} is on vehicle {issue.device_id!r}, not {device_id!r}")
        if issue.status not in (faults.OPEN, faults.ACKNOWLEDGED):
            raise Conflict(f"issue {issue_id} is {issue.status}; only open or acknowledged issues go into a work order")
        conn.execute(update(fault_issues).where(fault_issues.c.id == issue_id).values(
            status=faults.IN_WORK_ORDER, work_order_id=work_order_id, updated_at=now))


def create(conn: Connection, device_id: str, title: str, description: str | None, issue_ids: list[int],
           lines: list[LineInput], now: float) -> WorkOrder:
    """Open a work order on a vehicle, taking over the given issues."""
    if get_device(conn, device_id) is None:
        raise NotFound(f"no vehicle {device_id!r}")
    if len(lines) > MAX_LINES:
        raise Invalid(f"at most {MAX_LINES} lines per work order")
    values = [_line_values(conn, device_id, line) for line in lines]
    wo_id = conn.execute(insert(work_orders).values(
        device_id=device_id, status=OPEN, title=title, description=description, created_at=now, updated_at=now)
        .returning(work_orders.c.id)).scalar_one()
    _attach_issues(conn, wo_id, device_id, issue_ids, now)
    for v in values:
        conn.execute(insert(work_order_lines).values(work_order_id=wo_id, created_at=now, **v))
    return get_work_order(conn, wo_id)


def _editable(conn: Connection, work_order_id: int) -> WorkOrder:
    wo = get_work_order(conn, work_order_id)
    if wo.status == COMPLETED:
        raise Conflict(f"work order {work_order_id} is completed")
    return wo


def add_lines(conn: Connection, work_order_id: int, lines: list[LineInput], issue_ids: list[int], now: float
              ) -> WorkOrder:
    wo = _editable(conn, work_order_id)
    if len(wo.lines) + len(lines) > MAX_LINES:
        raise Invalid(f"at most {MAX_LINES} lines per work order")
    values = [_line_values(conn, wo.device_id, line) for line in lines]
    _attach_issues(conn, work_order_id, wo.device_id, issue_ids, now)
    for v in values:
        conn.execute(insert(work_order_lines).values(work_order_id=work_order_id, created_at=now, **v))
    conn.execute(update(work_orders).where(work_orders.c.id == work_order_id).values(updated_at=now))
    return get_work_order(conn, work_order_id)


def start(conn: Connection, work_order_id: int, now: float) -> WorkOrder:
    wo = _editable(conn, work_order_id)
    if wo.status == OPEN:
        conn.execute(update(work_orders).where(work_orders.c.id == work_order_id)
                     .values(status=IN_PROGRESS, started_at=now, updated_at=now))
    return get_work_order(conn, work_order_id)


def complete(conn: Connection, work_order_id: int, completed_at: float, typed: dict[str, float], now: float
             ) -> WorkOrder:
    """Complete the order (see the module docstring); ``typed``: meters staff read at completion."""
    wo = _editable(conn, work_order_id)
    if not math.isfinite(completed_at) or completed_at > now + MAX_AHEAD_S:
        raise Invalid("completed_at is in the future")
    for meter, value in typed.items():
        meters.add_manual(conn, wo.device_id, meter, value, completed_at, now,
                          note=f"read at completion of work order #{work_order_id}")
    at_completion = meters.current(conn, wo.device_id, completed_at)
    conn.execute(update(work_orders).where(work_orders.c.id == work_order_id).values(
        status=COMPLETED, completed_at=completed_at, started_at=wo.started_at or completed_at, updated_at=now,
        odometer_km=at_completion[meters.ODOMETER], engine_hours=at_completion[meters.ENGINE_HOURS],
        idle_hours=at_completion[meters.IDLE_HOURS]))
    f = fault_issues.c
    conn.execute(update(fault_issues).where(f.work_order_id == work_order_id).values(
        status=faults.RESOLVED, resolved_at=completed_at, resolved_by_work_order_id=work_order_id, updated_at=now))
    for task_id in sorted({line.service_task_id for line in wo.lines if line.service_task_id is not None}):
        programs.reset(conn, task_id, wo.device_id, completed_at, at_completion, work_order_id, now)
    return get_work_order(conn, work_order_id)
