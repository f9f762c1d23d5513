"""What the workflows have waiting now, per vehicle, for the KPI report (registered in ``WORKFLOW_COUNTERS``).

- ``faults_awaiting_review``: fault issues still ``open`` (nobody acknowledged, dismissed or scheduled them);
- ``overdue_services``: service tasks in state ``overdue`` (``cloud_sync.maintenance.schedule``);
- ``inspections_blocking``: 1 when a DVIR defect keeps the vehicle "not safe to operate"
  (``cloud_sync.compliance.dvir``).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, func, select

from cloud_sync.reports.kpis import WORKFLOW_COUNTERS


def maintenance_counts(conn: Connection, device_ids: list[str], now: float) -> Mapping[str, Mapping[str, int]]:
    from cloud_sync.maintenance import config, faults, programs
    from cloud_sync.maintenance.schedule import OVERDUE
    from cloud_sync.maintenance.tables import fault_issues

    wanted = set(device_ids)
    out: dict[str, dict[str, int]] = {d: {"faults_awaiting_review": 0, "overdue_services": 0} for d in device_ids}
    c = fault_issues.c
    for device, n in conn.execute(select(c.device_id, func.count()).where(c.status == faults.OPEN)
                                  .group_by(c.device_id)):
        if device in wanted:
            out[device]["faults_awaiting_review"] = int(n)
    window = config.get_config(conn).forecast_window_days
    for service in programs.vehicle_services(conn, None, now, window):
        if service.device_id in wanted and service.status.state == OVERDUE:
            out[service.device_id]["overdue_services"] += 1
    return out


def compliance_counts(conn: Connection, device_ids: list[str], now: float) -> Mapping[str, Mapping[str, int]]:
    from cloud_sync.compliance.tables import dvir_reports

    d = dvir_reports.c
    blocked = {row[0] for row in conn.execute(select(d.device_id).where(
        d.unsafe.is_(True), (d.certified_at.is_(None)) | (d.reviewed_at.is_(None))).distinct())}
    return {device: {"inspections_blocking": int(device in blocked)} for device in device_ids}


def register() -> None:
    for counter in (maintenance_counts, compliance_counts):
        if counter not in WORKFLOW_COUNTERS:
            WORKFLOW_COUNTERS.append(counter)
