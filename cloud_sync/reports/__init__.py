"""KPIs staff act on, per vehicle, depot and period, and the scheduled summary.

- ``definitions``: each KPI's unit, threshold, direction and owner role (data: ``kpis.toml``).
- ``vehicle``: one vehicle's figures for a period from its stored events and health.
- ``kpis``: the report (vehicles, depots, fleet), provisional flags, links to the records behind each figure.
- ``csv_export``: the report as CSV.
- ``schedule``: the summary of the last complete period, queued as a ``report.ready`` webhook.
"""

from cloud_sync.reports import workflows
from cloud_sync.reports.kpis import Report, build_report

workflows.register()

__all__ = ["Report", "build_report"]
