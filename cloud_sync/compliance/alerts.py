"""Compliance events for webhooks: a DVIR reporting a safety defect (``inspection.failed``, queued with the
report in ``dvir.submit``) and driving-hours violations (``violation``, found by ``queue_violations``).

Violations are computed, not stored: ``queue_violations`` evaluates every driver under the fleet's rule
pack and queues each violation once, keyed by driver, pack, rule and window start, so running it every few
minutes (``fleet-cloud compliance alerts --every 600``) reports a violation when it first shows and never
again, even as the window it belongs to keeps growing. Late vehicle data can reveal a violation in the
past: it is reported when it shows, with its own times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from cloud_sync.compliance import drivers, hours
from cloud_sync.webhooks import enqueue


@dataclass(frozen=True)
class AlertRun:
    drivers: int
    violations: int
    queued: int


def inspection_failed(conn: Connection, device_id: str, report_id: int, payload: dict[str, object],
                      inspected_at: float, now: float) -> None:
    """Queue ``inspection.failed`` for a DVIR with a defect affecting safety (in the caller's transaction)."""
    enqueue(conn, "inspection.failed", device_id, f"dvir:{report_id}", inspected_at,
            {"report_id": report_id, **payload}, now=now)


def queue_violations(engine: Engine, pack: str, *, now: float | None = None) -> AlertRun:
    at = time.time() if now is None else now
    found = queued = 0
    with engine.begin() as conn:
        everyone = drivers.list_drivers(conn, limit=100_000)
        for driver in everyone:
            result = hours.evaluate(conn, driver.id, pack, at=at)
            for v in result.report.violations:
                found += 1
                key = f"violation:{driver.id}:{result.pack.name}:{v.rule}:{v.start}"
                payload: dict[str, object] = {
                    "driver_id": driver.id, "depot": driver.depot, "pack": result.pack.name, "rule": v.rule,
                    "cite": v.cite, "window_start": v.start, "window_end": v.end, "minutes": v.minutes,
                    "detail": v.detail, "provisional": bool(result.provisional_vehicles),
                }
                queued += enqueue(conn, "violation", "", key, float(v.at), payload, now=at)
    return AlertRun(len(everyone), found, queued)
