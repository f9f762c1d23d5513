"""A driver's hours from the store: stored duty events plus driving from the vehicle's trips, evaluated by a
rule pack as of a time.

``LOOKBACK_S`` bounds the history read: four weeks hold every window of the bundled packs (8 days for the
US cycle, two weeks plus the previous weekly rest for the EU) with room. Whatever happened before it is
taken as rest, the packs' stated assumption, so the lookback must stay longer than any window.

The report says what it rests on: duty events (``events_used``, ``latest_recorded_at``) and the vehicles'
trips (``trips_used``, ``latest_trip_arrival``). Data that arrives late (a staff correction, a vehicle's backlog)
changes the answer for the same ``at``, and these show it was revised; ``provisional_vehicles`` names the
vehicles whose devices still report unsent records, so the answer may change again.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from cloud_sync.compliance import drivers, rulepack
from cloud_sync.compliance.duty import timeline
from cloud_sync.compliance.errors import Invalid
from cloud_sync.compliance.report import HoursReport
from cloud_sync.store import schema
from edge_agent.errors import ConfigError

LOOKBACK_S = 28 * 24 * 3600


@dataclass(frozen=True, slots=True)
class DriverHours:
    driver_id: str
    pack: rulepack.RulePack
    at: float
    report: HoursReport
    events_used: int
    latest_recorded_at: float | None
    timezone: str
    trips_used: int
    latest_trip_arrival: float | None
    provisional_vehicles: list[str]


def evaluate(conn: Connection, driver_id: str, pack_name: str, *, at: float | None = None,
             choices: dict[str, str] | None = None) -> DriverHours:
    driver = drivers.require_driver(conn, driver_id)
    try:
        pack = rulepack.load(pack_name)
        pack.check_choices(dict(choices or {}))
    except ConfigError as exc:
        raise Invalid(str(exc)) from exc
    if driver.home_timezone and pack.engine == "us_property":
        # 395.2: the carrier's days are the home terminal's; EU weeks stay in the pack's zone (tachograph UTC).
        pack = dataclasses.replace(pack, timezone=zone(driver.home_timezone))
    now = time.time() if at is None else at
    stored = drivers.events(conn, driver_id, now - LOOKBACK_S, now)
    derived = drivers.derive(conn, stored, now)
    until = round(now)
    report = pack.evaluate(timeline(derived.events, until), until, dict(choices or {}))
    latest = max((e.recorded_at for e in stored), default=None)
    return DriverHours(driver_id, pack, now, report, len(stored), latest, str(pack.timezone), derived.trips_used,
                       derived.latest_trip_arrival, _with_backlog(conn, derived.vehicles or set()))


def _with_backlog(conn: Connection, vehicles: set[str]) -> list[str]:
    """Vehicles the answer used whose device reports records not yet sent (``device_health.backlog_records``):
    their trips may still arrive and change it."""
    if not vehicles:
        return []
    h = schema.device_health
    rows = conn.execute(select(h.c.device_id).where(h.c.device_id.in_(sorted(vehicles)), h.c.backlog_records > 0))
    return sorted(rows.scalars())


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"unknown time zone {name!r} (an IANA name such as America/Chicago)") from exc
