"""Maintenance tables (created by migration ``maintenance`` in ``cloud_sync.store.migrations``).

Everything vehicle-derived is keyed by the event that produced it, so deriving twice (a duplicate
batch, a re-run after a crash) changes nothing: ``maintenance_processed`` holds every event the
derivation has handled (``cloud_sync.maintenance.derive``), ``meter_readings`` has a unique
``(device, meter, record_id)`` and ``fault_occurrences`` is keyed by the event's record.

Times are float seconds since the Unix epoch, as in the rest of the store: device time for what the
vehicle reported, the cloud's clock (or the time staff give) for what staff do.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cloud_sync.store.schema import DeviceId, metadata

Name = String(128)

maintenance_config = Table(
    "maintenance_config",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON(none_as_null=True), nullable=False),
    Column("updated_at", Double, nullable=False),
)

maintenance_processed = Table(
    "maintenance_processed",
    metadata,
    Column("device_id", DeviceId, primary_key=True),
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("outcome", String(32), nullable=False),  # what the event became (see derive.Outcome)
    Column("processed_at", Double, nullable=False),
)

meter_readings = Table(
    "meter_readings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("meter", String(16), nullable=False),  # meters.METERS
    Column("value", Double, nullable=False),
    Column("read_at", Double, nullable=False),
    Column("source", String(16), nullable=False),  # "vehicle" | "manual"
    Column("origin", String(64)),  # vehicle: bus | integrated | run_time | idle_events; manual: who entered it
    Column("record_id", BigInteger),  # the vehicle event behind the reading (NULL for manual ones)
    Column("void", Boolean, nullable=False),
    Column("void_reason", Text),
    Column("note", Text),
    Column("created_at", Double, nullable=False),
)
# NULLs are distinct in a unique index (SQLite and PostgreSQL): manual readings never collide.
Index("meter_readings_by_record", meter_readings.c.device_id, meter_readings.c.meter, meter_readings.c.record_id,
      unique=True)
Index("meter_readings_by_time", meter_readings.c.device_id, meter_readings.c.meter, meter_readings.c.read_at)

service_programs = Table(
    "service_programs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Name, nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", Double, nullable=False),
)

service_tasks = Table(
    "service_tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("program_id", Integer, ForeignKey("service_programs.id"), nullable=False),
    Column("name", Name, nullable=False),
    # Interval and due-soon threshold per trigger (NULL: the trigger is not used); km, h, h, days.
    Column("every_km", Double), Column("soon_km", Double),
    Column("every_engine_h", Double), Column("soon_engine_h", Double),
    Column("every_idle_h", Double), Column("soon_idle_h", Double),
    Column("every_days", Double), Column("soon_days", Double),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("program_id", "name", name="service_tasks_name"),
)

program_vehicles = Table(
    "program_vehicles",
    metadata,
    Column("program_id", Integer, ForeignKey("service_programs.id"), primary_key=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), primary_key=True),
    Column("assigned_at", Double, nullable=False),
)

service_status = Table(
    "service_status",
    metadata,
    Column("task_id", Integer, ForeignKey("service_tasks.id"), primary_key=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), primary_key=True),
    # The last time the task was done (or the baseline given when the program was applied) and the
    # meters then (NULL: no reading yet; the first reading after ``done_at`` stands in).
    Column("done_at", Double, nullable=False),
    Column("done_km", Double), Column("done_engine_h", Double), Column("done_idle_h", Double),
    Column("work_order_id", Integer),
    Column("snoozed_until", Double),
    Column("snooze_reason", Text),
    Column("updated_at", Double, nullable=False),
)
Index("service_status_by_device", service_status.c.device_id)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("status", String(16), nullable=False),  # open | in_progress | completed
    Column("title", String(200), nullable=False),
    Column("description", Text),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("completed_at", Double),
    Column("odometer_km", Double), Column("engine_hours", Double), Column("idle_hours", Double),  # at completion
    Column("updated_at", Double, nullable=False),
)
Index("work_orders_by_device", work_orders.c.device_id, work_orders.c.status)

work_order_lines = Table(
    "work_order_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("work_order_id", Integer, ForeignKey("work_orders.id"), nullable=False),
    Column("kind", String(8), nullable=False),  # task | part | labour
    Column("description", String(200), nullable=False),
    Column("service_task_id", Integer, ForeignKey("service_tasks.id")),
    Column("part_number", String(64)),
    Column("quantity", Double), Column("unit_cost", Double),  # parts
    Column("hours", Double), Column("rate", Double),  # labour
    Column("cost", Double, nullable=False),
    Column("created_at", Double, nullable=False),
)
Index("work_order_lines_by_order", work_order_lines.c.work_order_id)

fault_issues = Table(
    "fault_issues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("fault_key", String(160), nullable=False),  # faults.FaultIdentity.key
    Column("protocol", String(16), nullable=False),  # j1939 | obd2 | threshold
    Column("source", String(64), nullable=False),
    Column("spn", BigInteger), Column("fmi", Integer), Column("code", String(16)), Column("fault", String(64)),
    Column("status", String(16), nullable=False),  # faults.STATUSES
    Column("severity", String(16), nullable=False),  # worst lamp seen: faults.SEVERITY_RANK
    Column("occurrences", Integer, nullable=False),
    Column("first_seen_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("last_record_id", BigInteger, nullable=False),
    Column("last_cleared_at", Double),  # device time of the newest clear; active while last_seen_at is newer
    Column("reopen_count", Integer, nullable=False),
    Column("note", Text),
    Column("acknowledged_at", Double), Column("acknowledged_by", String(128)),
    Column("dismissed_at", Double), Column("dismissed_reason", Text),
    Column("work_order_id", Integer, ForeignKey("work_orders.id")),
    Column("resolved_at", Double),
    Column("resolved_by_work_order_id", Integer),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)
Index("fault_issues_by_identity", fault_issues.c.device_id, fault_issues.c.fault_key, fault_issues.c.id)
Index("fault_issues_by_status", fault_issues.c.status, fault_issues.c.device_id)

fault_occurrences = Table(
    "fault_occurrences",
    metadata,
    Column("device_id", DeviceId, primary_key=True),
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("issue_id", Integer, ForeignKey("fault_issues.id"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("device_time", Double, nullable=False),
    Column("severity", String(16), nullable=False),
)
Index("fault_occurrences_by_issue", fault_occurrences.c.issue_id, fault_occurrences.c.device_time)

risk_reviews = Table(
    "risk_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("outcome", String(16), nullable=False),  # confirmed | dismissed | rescheduled
    Column("note", Text),
    Column("reschedule_to", Double),
    Column("score", Double, nullable=False),  # the ranking as it stood when staff judged it
    Column("parts", JSON(none_as_null=True), nullable=False),
    Column("reviewed_by", String(128)),
    Column("reviewed_at", Double, nullable=False),
)
Index("risk_reviews_by_device", risk_reviews.c.device_id, risk_reviews.c.reviewed_at)

ALL = [maintenance_config, maintenance_processed, meter_readings, service_programs, service_tasks, program_vehicles,
       service_status, work_orders, work_order_lines, fault_issues, fault_occurrences, risk_reviews]
