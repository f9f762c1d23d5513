"""Compliance tables: drivers, their duty-status events, and driver vehicle inspection reports (DVIRs).

Every row carries what the retention jobs of the governance module need: the driver, the vehicle (device id),
the time the record is about (``at`` / ``inspected_at``) and when the cloud recorded it (``recorded_at``).
Duty events are never updated: a correction is a new event at the same ``at`` (the later ``id`` wins), so
the history of what was entered, and when, stays visible (49 CFR 395.8(j)-style edits keep the original).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Double, ForeignKey, Index, Integer, String, Table, Text

from cloud_sync.store import schema

#: Minimum retention the regulations set, per table: (months, citation). The governance retention jobs apply them
#: (the longest that applies to the fleet); the rows carry driver, vehicle and dates for it.
RETENTION_MINIMUMS: dict[str, list[tuple[int, str]]] = {
    "duty_events": [(6, "49 CFR 395.8(k)(1): records of duty status and supporting documents, 6 months"),
                    (12, "Regulation (EU) 165/2014 Art. 33(2): tachograph data kept by the undertaking, 12 months")],
    "dvir_reports": [(3, "49 CFR 396.11(a)(4): original DVIR, repair certification and review, 3 months")],
}

DriverId = String(64)
Actor = String(128)  # cloud_sync.governance: an actor name ("user:alice", "settings:admin")

drivers = Table(
    "drivers",
    schema.metadata,
    Column("id", DriverId, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("depot", String(128)),
    Column("home_timezone", String(64)),  # 49 CFR 395.2: the carrier's 24-hour period is the home terminal's
    Column("created_at", Double, nullable=False),
)

duty_events = Table(
    "duty_events",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("driver_id", DriverId, ForeignKey("drivers.id"), nullable=False),
    Column("at", Double, nullable=False),
    Column("status", String(16), nullable=False),  # duty.DutyStatus
    Column("device_id", schema.DeviceId, ForeignKey("devices.id")),  # the vehicle the driver logged in on
    Column("source", String(16), nullable=False),  # "vehicle" (driver log in/out) or "staff" (entered)
    Column("entered_by", Actor, nullable=False),
    Column("note", Text),
    Column("recorded_at", Double, nullable=False),
)
Index("duty_events_by_driver", duty_events.c.driver_id, duty_events.c.at, duty_events.c.id)

dvir_reports = Table(
    "dvir_reports",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", schema.DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("driver_id", DriverId, ForeignKey("drivers.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # pre_trip | post_trip
    Column("inspected_at", Double, nullable=False),
    Column("odometer_km", Double),
    Column("location", String(200)),
    Column("items", JSON(none_as_null=True), nullable=False),  # item -> "ok" | "defect"
    Column("defects", JSON(none_as_null=True), nullable=False),  # [{item, description, affects_safety}]
    Column("remarks", Text),
    Column("driver_signature", String(128), nullable=False),
    Column("unsafe", Boolean, nullable=False),  # a defect likely to affect safety (396.11(a)(3)(i))
    Column("certified_at", Double),
    Column("certified_by", Actor),
    Column("mechanic", String(128)),
    Column("certification", String(24)),  # repaired | repair_unnecessary
    Column("certification_note", Text),
    Column("reviewed_at", Double),
    Column("reviewed_by", DriverId),
    Column("review_signature", String(128)),
    Column("recorded_at", Double, nullable=False),
    Column("entered_by", Actor, nullable=False),
)
Index("dvir_reports_by_device", dvir_reports.c.device_id, dvir_reports.c.inspected_at)

ALL = [drivers, duty_events, dvir_reports]
