"""A driver's hours from the store: stored duty events plus driving from the vehicle's trips, evaluated by a
rule pack as of a time.

``LOOKBACK_S`` bounds the history read: four weeks hold every window of the bundled packs (8 days for the
US cycle, two weeks plus the previous weekly rest for the EU) with room. Whatever happened before it is
taken as rest, the packs' stated assumption, so the lookback must stay longer than any window.

The report says which events it rests on (``events_used``, ``latest_recorded_at``): duty events entered late
(staff corrections, a vehicle's backlog arriving) change the answer for the same ``at``, and the caller can
see the report was revised.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from cloud_sync.compliance import drivers, rulepack
from cloud_sync.compliance.duty import timeline
from cloud_sync.compliance.errors import Invalid
from cloud_sync.compliance.report import HoursReport
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
    report = pack.evaluate(timeline(derived, until), until, dict(choices or {}))
    latest = max((e.recorded_at for e in stored), default=None)
    return DriverHours(driver_id, pack, now, report, len(stored), latest, str(pack.timezone))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"unknown time zone {name!r} (an IANA name such as America/Chicago)") from exc
