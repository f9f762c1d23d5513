"""Request and response models of the maintenance API (``cloud_sync.api.maintenance``).

``XCreate`` for input, ``XPublic`` for output, as in ``cloud_sync.api.schemas``. Times are float
seconds since the Unix epoch; meters are km (odometer) and hours (engine, idle).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from cloud_sync.maintenance.config import MAX_FORECAST_WINDOW_DAYS, MAX_REOPEN_WITHIN_TRIPS
from cloud_sync.maintenance.work_orders import MAX_LINES
from edge_agent.wire.model import DEVICE_ID_RE

DeviceIdField = Field(pattern=f"^{DEVICE_ID_RE.pattern}$")
Text200 = Field(min_length=1, max_length=200)
#: Ids of programs, tasks, readings, issues and work orders: 32-bit integer keys on both backends.
RowId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ProgramCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(None, max_length=2000)


class TriggerCreate(BaseModel):
    every: float = Field(gt=0, allow_inf_nan=False)
    soon: float | None = Field(None, ge=0, allow_inf_nan=False, description="due-soon threshold (default: a tenth)")


class TaskCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    odometer_km: TriggerCreate | None = None
    engine_hours: TriggerCreate | None = None
    idle_hours: TriggerCreate | None = None
    calendar_days: TriggerCreate | None = None


class TriggerPublic(BaseModel):
    meter: str = Field(description="odometer_km | engine_hours | idle_hours | calendar")
    every: float
    soon: float


class TaskPublic(BaseModel):
    id: int
    program_id: int
    name: str
    triggers: list[TriggerPublic]


class ProgramPublic(BaseModel):
    id: int
    name: str
    description: str | None
    created_at: float
    tasks: list[TaskPublic]
    vehicles: list[str]


class AssignCreate(BaseModel):
    """Vehicles to apply the program to: listed, or every vehicle of a depot and/or profile."""

    devices: list[str] = Field(default_factory=list, max_length=10_000)
    depot: str | None = Field(None, max_length=128)
    profile: str | None = Field(None, max_length=64)
    last_done_at: float | None = Field(None, allow_inf_nan=False,
                                       description="when these vehicles were last serviced (default: now)")


class AssignPublic(BaseModel):
    program_id: int
    assigned: list[str] = Field(description="vehicles newly on the program")
    already: list[str] = Field(description="vehicles that were on it before")


class TriggerDuePublic(BaseModel):
    meter: str
    unit: str
    every: float
    soon: float
    last: float | None = Field(description="meter when last done (a time for the calendar)")
    due_at: float | None = Field(description="meter value (or time, for the calendar) at which it falls due")
    current: float | None
    remaining: float | None = Field(description="meter units (days for the calendar) left; negative when overdue")
    daily_rate: float | None = Field(description="recent mean use per day")
    forecast_at: float | None = Field(description="when the vehicle reaches due_at at its recent rate")
    state: str


class ServicePublic(BaseModel):
    device_id: str
    program_id: int
    program: str
    task_id: int
    task: str
    state: str = Field(description="ok | due_soon | overdue | snoozed | unknown (no reading of any trigger's meter)")
    next_due_at: float | None = Field(description="earliest forecast of any trigger")
    done_at: float
    done_meters: dict[str, float | None]
    work_order_id: int | None
    snoozed_until: float | None
    snooze_reason: str | None
    triggers: list[TriggerDuePublic]


class ServicesPublic(BaseModel):
    at: float
    data: list[ServicePublic]
    count: int


class SnoozeCreate(BaseModel):
    until: float = Field(allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=500)


class MeterCreate(BaseModel):
    meter: Literal["odometer_km", "engine_hours"]
    value: float = Field(ge=0, allow_inf_nan=False)
    read_at: float | None = Field(None, allow_inf_nan=False, description="when it was read (default: now)")
    void: bool = Field(False, description="keep a known-wrong reading on record without using it")
    void_reason: str | None = Field(None, max_length=500)
    note: str | None = Field(None, max_length=500)


class VoidCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ReadingPublic(BaseModel):
    id: int
    meter: str
    value: float
    read_at: float
    source: str = Field(description="vehicle | manual")
    origin: str | None = Field(description="vehicle: bus | integrated | run_time | idle_events; manual: who")
    record_id: int | None = Field(description="the vehicle event behind it")
    void: bool
    void_reason: str | None
    note: str | None


class MetersPublic(BaseModel):
    device_id: str
    current: dict[str, float | None] = Field(description="each meter's newest valid reading by time")
    data: list[ReadingPublic]


class OccurrencePublic(BaseModel):
    record_id: int
    kind: str
    device_time: float
    severity: str


class TracePublic(BaseModel):
    signal: str
    unit: str | None
    source: str | None
    points: list[tuple[float, float]] = Field(description="(device time, value)")


class IssuePublic(BaseModel):
    id: int
    device_id: str
    fault_key: str
    protocol: str
    source: str
    spn: int | None
    fmi: int | None
    code: str | None
    fault: str | None
    status: str = Field(description="open | acknowledged | dismissed | in_work_order | resolved")
    severity: str = Field(description="worst lamp lit with it: none | protect | mil | amber_warning | red_stop")
    active: bool
    occurrences: int
    first_seen_at: float
    last_seen_at: float
    last_cleared_at: float | None
    reopen_count: int
    note: str | None = Field(description="e.g. why it reopened (the fix did not hold)")
    acknowledged_at: float | None
    acknowledged_by: str | None
    dismissed_at: float | None
    dismissed_reason: str | None
    work_order_id: int | None
    resolved_at: float | None
    resolved_by_work_order_id: int | None


class IssueDetail(IssuePublic):
    recent_occurrences: list[OccurrencePublic]
    evidence: list[TracePublic] = Field(description="samples around the newest occurrence")


class IssuesPublic(BaseModel):
    data: list[IssuePublic]
    count: int


class DismissCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class LineCreate(BaseModel):
    kind: Literal["task", "part", "labour"]
    description: str = Text200
    service_task_id: RowId | None = Field(None, description="task lines: the service task this job does")
    part_number: str | None = Field(None, max_length=64)
    quantity: float | None = Field(None, allow_inf_nan=False)
    unit_cost: float | None = Field(None, allow_inf_nan=False)
    hours: float | None = Field(None, allow_inf_nan=False)
    rate: float | None = Field(None, allow_inf_nan=False)
    cost: float | None = Field(None, allow_inf_nan=False, description="task lines only (parts and labour compute it)")


class WorkOrderCreate(BaseModel):
    device_id: str = DeviceIdField
    title: str = Text200
    description: str | None = Field(None, max_length=4000)
    issue_ids: list[RowId] = Field(default_factory=list, max_length=MAX_LINES)
    lines: list[LineCreate] = Field(default_factory=list, max_length=MAX_LINES)


class LinesCreate(BaseModel):
    issue_ids: list[RowId] = Field(default_factory=list, max_length=MAX_LINES)
    lines: list[LineCreate] = Field(default_factory=list, max_length=MAX_LINES)


class CompleteCreate(BaseModel):
    completed_at: float | None = Field(None, allow_inf_nan=False, description="default: now")
    odometer_km: float | None = Field(None, ge=0, allow_inf_nan=False, description="read at completion")
    engine_hours: float | None = Field(None, ge=0, allow_inf_nan=False)


class LinePublic(BaseModel):
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


class WorkOrderPublic(BaseModel):
    id: int
    device_id: str
    status: str = Field(description="open | in_progress | completed")
    title: str
    description: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    meters_at_completion: dict[str, float | None]
    issue_ids: list[int]
    lines: list[LinePublic]
    parts_cost: float
    labour_cost: float
    labour_hours: float
    total_cost: float


class WorkOrdersPublic(BaseModel):
    data: list[WorkOrderPublic]
    count: int


class RiskPartPublic(BaseModel):
    name: str
    count: float
    weight: float
    points: float = Field(description="count x weight")
    detail: str


class ReviewCreate(BaseModel):
    outcome: Literal["confirmed", "dismissed", "rescheduled"]
    note: str | None = Field(None, max_length=2000)
    reschedule_to: float | None = Field(None, allow_inf_nan=False, description="required when rescheduled")


class ReviewPublic(BaseModel):
    id: int
    device_id: str
    outcome: str
    note: str | None
    reschedule_to: float | None
    score: float = Field(description="the score when staff reviewed it")
    parts: list[dict[str, Any]]
    reviewed_by: str | None
    reviewed_at: float


class VehicleRiskPublic(BaseModel):
    device_id: str
    score: float
    parts: list[RiskPartPublic]
    last_review: ReviewPublic | None


class RiskPublic(BaseModel):
    at: float
    data: list[VehicleRiskPublic]


class ReviewsPublic(BaseModel):
    data: list[ReviewPublic]


class ConfigPublic(BaseModel):
    reopen_within_trips: int = Field(description="a fault back within this many drive cycles after repair reopens")
    forecast_window_days: int = Field(description="usage forecasts average over this many days")


class ConfigUpdate(BaseModel):
    reopen_within_trips: int | None = Field(None, ge=0, le=MAX_REOPEN_WITHIN_TRIPS)
    forecast_window_days: int | None = Field(None, ge=1, le=MAX_FORECAST_WINDOW_DAYS)


class DerivePublic(BaseModel):
    outcomes: dict[str, dict[str, int]] = Field(description="per vehicle: events handled by outcome")
