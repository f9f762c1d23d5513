"""Fleet-wide maintenance settings, stored in the database so the API, every ingest worker and the
derivation job read the same values (``GET/PUT /v1/maintenance/config``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from cloud_sync.maintenance.errors import Invalid
from cloud_sync.maintenance.tables import maintenance_config

#: A fault back within this many drive cycles (trips started) after its repair reopens the issue.
DEFAULT_REOPEN_WITHIN_TRIPS = 3
#: Usage forecasts (km, engine hours, idle hours per day) average over this many recent days.
DEFAULT_FORECAST_WINDOW_DAYS = 30
MAX_REOPEN_WITHIN_TRIPS = 1000
MAX_FORECAST_WINDOW_DAYS = 366


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    reopen_within_trips: int = DEFAULT_REOPEN_WITHIN_TRIPS
    forecast_window_days: int = DEFAULT_FORECAST_WINDOW_DAYS

    def __post_init__(self) -> None:
        if not 0 <= self.reopen_within_trips <= MAX_REOPEN_WITHIN_TRIPS:
            raise Invalid(f"reopen_within_trips must be 0..{MAX_REOPEN_WITHIN_TRIPS}")
        if not 1 <= self.forecast_window_days <= MAX_FORECAST_WINDOW_DAYS:
            raise Invalid(f"forecast_window_days must be 1..{MAX_FORECAST_WINDOW_DAYS}")


_FIELDS = {f.name for f in dataclasses.fields(MaintenanceConfig)}


def get_config(conn: Connection) -> MaintenanceConfig:
    stored = {k: v for k, v in conn.execute(select(maintenance_config.c.key, maintenance_config.c.value))
              if k in _FIELDS and type(v) is int}
    return MaintenanceConfig(**stored)


def set_config(conn: Connection, now: float, **values: int) -> MaintenanceConfig:
    """Change some settings (validated together); returns the settings now in force."""
    unknown = set(values) - _FIELDS
    if unknown:
        raise Invalid(f"unknown settings {sorted(unknown)}")
    new = dataclasses.replace(get_config(conn), **values)
    for key, value in values.items():
        conn.execute(delete(maintenance_config).where(maintenance_config.c.key == key))
        conn.execute(insert(maintenance_config).values(key=key, value=value, updated_at=now))
    return new
