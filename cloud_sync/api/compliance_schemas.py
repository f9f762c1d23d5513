"""Request and response bodies of the compliance API (``cloud_sync.api.compliance``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cloud_sync.compliance import dvir
from cloud_sync.compliance.drivers import MAX_EVENTS_PER_POST

#: Latest time accepted (2100-01-01 UTC): keeps calendar arithmetic (days, weeks, time zones) in range.
MAX_TIME = 4_102_444_800.0
IdText = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
Time = Field(allow_inf_nan=False, ge=0, le=MAX_TIME, description="Unix seconds")
Status = Literal["off", "sleeper", "driving", "on_duty"]


class DriverCreate(BaseModel):
    id: str = IdText
    name: str = Field(min_length=1, max_length=128)
    depot: str | None = Field(default=None, max_length=128)
    home_timezone: str | None = Field(default=None, max_length=64,
                                      description="IANA zone of the home terminal (49 CFR 395.2), e.g. America/Chicago")


class DriverPublic(BaseModel):
    id: str
    name: str
    depot: str | None
    home_timezone: str | None


class DutyEventCreate(BaseModel):
    at: float = Time
    status: Status
    device_id: str | None = Field(default=None, max_length=64,
                                  description="the vehicle the driver logs in on; its trips become driving")
    note: str | None = Field(default=None, max_length=500)


class DutyEventsCreate(BaseModel):
    source: Literal["vehicle", "staff"] = "staff"
    events: list[DutyEventCreate] = Field(min_length=1, max_length=MAX_EVENTS_PER_POST)


class DutyEventPublic(BaseModel):
    id: int
    at: float
    status: Status
    device_id: str | None
    source: str
    entered_by: str
    note: str | None
    recorded_at: float


class DutyEventsPublic(BaseModel):
    driver_id: str
    events: list[DutyEventPublic]


class IdsPublic(BaseModel):
    ids: list[int]


class ViolationPublic(BaseModel):
    rule: str
    cite: str
    window_start: float
    window_end: float
    at: float = Field(description="when the limit was first broken")
    minutes: float
    detail: str


class TimeLeftPublic(BaseModel):
    rule: str
    cite: str
    window_start: float
    window_end: float | None
    limit_minutes: float
    used_minutes: float
    left_minutes: float


class AllowancePublic(BaseModel):
    rule: str
    cite: str
    window_start: float
    window_end: float | None
    limit: int
    used: int
    left: int


class HoursPublic(BaseModel):
    driver_id: str
    pack: str
    regulation: str
    at: float
    timezone: str
    driving_left_minutes: float
    time_left: list[TimeLeftPublic]
    violations: list[ViolationPublic]
    allowances: list[AllowancePublic]
    assumptions: list[str]
    events_used: int = Field(description="stored duty events the answer rests on")
    latest_recorded_at: float | None = Field(description="newest of them by cloud arrival: a later value for the "
                                                         "same 'at' means the report was revised by late data")
    trips_used: int = Field(description="vehicle trips turned into driving while the driver was logged in")
    latest_trip_arrival: float | None = Field(description="newest cloud arrival among those trips' events")
    provisional_vehicles: list[str] = Field(description="vehicles used whose devices still report unsent records: "
                                                        "the answer may still change")


class DriverHoursSummary(BaseModel):
    driver_id: str
    name: str
    depot: str | None
    driving_left_minutes: float
    limiting_rule: str | None = Field(description="the rule that leaves the least driving time")
    violations: int
    violation_minutes: float
    provisional: bool


class FleetHoursPublic(BaseModel):
    pack: str
    at: float
    drivers: list[DriverHoursSummary] = Field(description="least driving time left first")


class RulePublic(BaseModel):
    id: str
    kind: str
    cite: str
    summary: str
    params: dict[str, int | str]


class RulePackPublic(BaseModel):
    name: str
    title: str
    regulation: str
    source: str
    timezone: str
    choices: dict[str, list[str]]
    assumptions: list[str]
    rules: list[RulePublic]


class DefectBody(BaseModel):
    item: str = Field(max_length=64)
    description: str = Field(min_length=1, max_length=dvir.MAX_TEXT)
    affects_safety: bool


class DvirCreate(BaseModel):
    kind: Literal["pre_trip", "post_trip"]
    driver_id: str = IdText
    inspected_at: float = Time
    items: dict[str, Literal["ok", "defect"]] = Field(
        description=f"every one of {list(dvir.REQUIRED_ITEMS)} (49 CFR 396.11(a)(1)), optionally 'other'")
    defects: list[DefectBody] = Field(default_factory=list, max_length=dvir.MAX_DEFECTS)
    driver_signature: str = Field(min_length=1, max_length=128)
    odometer_km: float | None = Field(default=None, allow_inf_nan=False, ge=0)
    location: str | None = Field(default=None, max_length=200)
    remarks: str | None = Field(default=None, max_length=dvir.MAX_TEXT)


class CertifyCreate(BaseModel):
    certification: Literal["repaired", "repair_unnecessary"]
    mechanic: str = Field(min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=dvir.MAX_TEXT)


class ReviewCreate(BaseModel):
    driver_id: str = IdText
    signature: str = Field(min_length=1, max_length=128)


class DvirPublic(BaseModel):
    id: int
    device_id: str
    kind: str
    driver_id: str
    inspected_at: float
    items: dict[str, str]
    defects: list[DefectBody]
    driver_signature: str
    odometer_km: float | None
    location: str | None
    remarks: str | None
    unsafe: bool
    certified_at: float | None
    certified_by: str | None
    mechanic: str | None
    certification: str | None
    certification_note: str | None
    reviewed_at: float | None
    reviewed_by: str | None
    review_signature: str | None
    recorded_at: float
    released: bool


class DvirsPublic(BaseModel):
    device_id: str
    reports: list[DvirPublic]


class MovementPublic(BaseModel):
    report_id: int
    window_start: float
    window_end: float
    first_moved_at: float
    moving_positions: int
    trips_started: int


class SafetyPublic(BaseModel):
    device_id: str
    safe_to_operate: bool
    status: Literal["ok", "not_safe_to_operate"]
    waiting_for: Literal["certification", "driver_review"] | None
    open_reports: list[DvirPublic]
    moved_while_unsafe: list[MovementPublic]
