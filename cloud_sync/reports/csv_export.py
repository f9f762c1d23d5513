"""The KPI report as CSV: one row per vehicle, then one per depot, then the fleet; a column per KPI
(in ``kpis.toml`` order), a ``<kpi>_breached`` column for each KPI with a threshold, and whether the
row is provisional and why."""

from __future__ import annotations

import csv
import io

from cloud_sync.reports.definitions import definitions
from cloud_sync.reports.kpis import Report


def to_csv(report: Report) -> str:
    defs = definitions()
    header = ["scope", "key", "vehicles", "period_start", "period_end", "provisional"]
    for name, d in defs.items():
        header.append(f"{name} ({d.unit})")
        if d.threshold is not None:
            header.append(f"{name}_breached")
    header.append("provisional_reasons")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for scope in [*report.vehicles, *report.depots, report.fleet]:
        row: list[object] = [scope.kind, scope.key, scope.vehicles, report.start, report.end,
                             "yes" if scope.provisional else "no"]
        for name, d in defs.items():
            kpi = scope.kpis[name]
            row.append("" if kpi.value is None else kpi.value)
            if d.threshold is not None:
                row.append("" if kpi.breached is None else ("yes" if kpi.breached else "no"))
        row.append("; ".join(scope.provisional_reasons))
        writer.writerow(row)
    return out.getvalue()
