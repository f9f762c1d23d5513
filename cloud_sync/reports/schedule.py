"""The scheduled summary: the last complete day (or week) of KPIs, queued as a ``report.ready`` webhook.

``send_due`` is idempotent: its webhook event key names the period and whether the report was final,
so calling it every few minutes (``fleet-cloud reports send --every 600``, or a systemd timer/cron)
sends each period's provisional summary once and, when every vehicle has caught up, the final one once.
Periods are UTC calendar days (weeks start on Monday, ISO 8601).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import Engine

from cloud_sync.reports.kpis import Report, Scope, build_report
from cloud_sync.webhooks import enqueue

PERIODS = ("day", "week")


@dataclass(frozen=True)
class Sent:
    period_start: float
    period_end: float
    final: bool
    queued: int  # deliveries queued now (0: already sent, or nobody subscribed)


def last_complete_period(period: str, now: float) -> tuple[float, float]:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}")
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        end = today
        start = end - timedelta(days=1)
    else:
        end = today - timedelta(days=today.weekday())
        start = end - timedelta(days=7)
    return start.timestamp(), end.timestamp()


def _scope_summary(scope: Scope) -> dict[str, object]:
    return {"key": scope.key, "vehicles": scope.vehicles, "provisional": scope.provisional,
            "kpis": {k.name: k.value for k in scope.kpis.values()},
            "breached": sorted(k.name for k in scope.kpis.values() if k.breached)}


def summary(report: Report, period: str) -> dict[str, object]:
    """The webhook payload: fleet and depot figures, what is breached, and where the full report is."""
    query = urlencode({"from": report.start, "to": report.end})
    return {
        "period": period, "start": report.start, "end": report.end, "final": not report.provisional,
        "fleet": _scope_summary(report.fleet), "depots": [_scope_summary(d) for d in report.depots],
        "links": {"json": f"/v1/reports/kpis?{query}", "csv": f"/v1/reports/kpis?{query}&format=csv"},
    }


def send_due(engine: Engine, period: str = "day", *, fuel_price: float | None = None,
             now: float | None = None) -> Sent:
    at = time.time() if now is None else now
    start, end = last_complete_period(period, at)
    with engine.begin() as conn:
        report = build_report(conn, start, end, fuel_price=fuel_price, now=at)
        final = not report.provisional
        key = f"report:{period}:{datetime.fromtimestamp(start, UTC).date().isoformat()}:" + (
            "final" if final else "provisional")
        queued = enqueue(conn, "report.ready", "", key, end, summary(report, period), now=at)
    return Sent(start, end, final, queued)
