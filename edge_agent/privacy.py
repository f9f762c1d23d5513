"""Private mode: outside working hours (or when the driver asks, where fleet policy allows) the vehicle
sends no location.

While private, the pipeline stores no positions, feeds no fixes to location detectors (geofences),
and strips every location field from the events it does store (trips, idle, faults keep their
durations, fuel, meters and codes). What remains is what the fleet may keep about private use:
distance and engine hours. Engine hours and odometer keep flowing as bus samples and ``meter``
events; the distance travelled on GNSS alone is summed here (great-circle steps between fixes, never
the fixes themselves) and reported in ``private_interval`` events, one when private mode ends and one
every ``PRIVATE_REPORT_S`` while it lasts, so a power cut loses at most that much of the summary.
A ``privacy_mode`` event marks every change, so staff know a gap in positions is deliberate.

Policy (``[privacy]`` in agent.toml)::

    [privacy]
    allowed = true                      # fleet policy: may this vehicle be private at all (default false)
    outside_working_hours = true        # private automatically outside the schedule below
    working_hours = ["Mon-Fri 06:00-19:00", "Sat 07:00-12:00"]
    timezone = "Europe/Berlin"          # IANA zone of the schedule (default UTC)

The driver's switch (``fleet-agent private on|off``) writes ``private_mode.json`` in the data
directory; the daemon reads it every status interval. With ``allowed = false`` the switch is refused
and the schedule ignored: location is always recorded (GDPR Art. 6(1)(b)/(c) cases such as a vehicle
that must be tracked at all times are a policy decision, not the driver's).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.errors import ConfigError
from edge_agent.model import Event, Fix, Priority

#: Payload keys that locate the vehicle; removed from every event stored while private.
LOCATION_KEYS = frozenset({"lat", "lon", "start_lat", "start_lon", "end_lat", "end_lon", "where", "position"})
#: Detectors that only make sense with a location (they get no fixes while private).
LOCATION_DETECTORS = frozenset({"geofence"})
#: How often a ``private_interval`` summary is stored while private mode lasts (seconds of device time).
PRIVATE_REPORT_S = 300.0
#: A step between two fixes longer than this is a jump (lost fix, multipath), not driving: not summed.
#: 70 m/s is 252 km/h, above any road vehicle we serve.
MAX_PLAUSIBLE_MPS = 70.0
#: Fixes this far apart in time are not joined (a tunnel, a stop with the receiver off).
MAX_STEP_GAP_S = 30.0
#: File the driver's switch writes, in the agent's data directory.
SWITCH_FILE = "private_mode.json"
#: Mean Earth radius (IUGG, 6371.0088 km) for the great-circle steps.
EARTH_RADIUS_M = 6_371_008.8

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC_RE = re.compile(r"^\s*([A-Za-z]{3})(?:\s*-\s*([A-Za-z]{3}))?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class WorkWindow:
    """Working hours on some weekdays (0 = Monday); ``end <= start`` runs past midnight."""

    days: frozenset[int]
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        t, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # Overnight shift: the part after midnight belongs to the previous day's window.
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


def parse_window(spec: str) -> WorkWindow:
    """``"Mon-Fri 06:00-19:00"``, ``"Sat 07:00-12:00"``, ``"Sun-Mon 22:00-06:00"`` (wraps)."""
    m = _SPEC_RE.match(spec)
    if m is None:
        raise ConfigError(f"privacy.working_hours: {spec!r} is not like 'Mon-Fri 06:00-19:00'")
    first, last = m.group(1).lower(), (m.group(2) or m.group(1)).lower()
    if first not in _DAYS or last not in _DAYS:
        raise ConfigError(f"privacy.working_hours: {spec!r}: days are Mon, Tue, Wed, Thu, Fri, Sat, Sun")
    a, b = _DAYS.index(first), _DAYS.index(last)
    days = frozenset((a + i) % 7 for i in range(((b - a) % 7) + 1))
    h1, m1, h2, m2 = (int(m.group(i)) for i in range(3, 7))
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ConfigError(f"privacy.working_hours: {spec!r}: not a time of day")
    end = time(0, 0) if h2 == 24 else time(h2, m2)
    if time(h1, m1) == end and h2 != 24:
        raise ConfigError(f"privacy.working_hours: {spec!r}: empty window")
    return WorkWindow(days, time(h1, m1), end)


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    allowed: bool = False
    outside_working_hours: bool = False
    working_hours: tuple[WorkWindow, ...] = ()
    timezone: str = "UTC"

    def working_at(self, timestamp: float) -> bool:
        local = datetime.fromtimestamp(timestamp, ZoneInfo(self.timezone))
        return any(w.contains(local) for w in self.working_hours)

    def private_at(self, timestamp: float, driver_switch: bool | None) -> tuple[bool, str]:
        """Whether location is private at ``timestamp``, and why (``policy``, ``driver``, ``schedule``)."""
        if not self.allowed:
            return False, "policy"
        if driver_switch is not None:
            return driver_switch, "driver"
        if self.outside_working_hours and self.working_hours:
            return not self.working_at(timestamp), "schedule"
        return False, "schedule"


def parse_policy(table: Mapping[str, Any] | None) -> PrivacyPolicy:
    """Validate the ``[privacy]`` table (None: private mode off)."""
    if table is None:
        return PrivacyPolicy()
    unknown = set(table) - {"allowed", "outside_working_hours", "working_hours", "timezone"}
    if unknown:
        raise ConfigError(f"privacy.{sorted(unknown)[0]}: unknown field "
                          "(allowed: allowed, outside_working_hours, timezone, working_hours)")
    for key in ("allowed", "outside_working_hours"):
        if not isinstance(table.get(key, False), bool):
            raise ConfigError(f"privacy.{key}: must be true or false")
    specs = table.get("working_hours", [])
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise ConfigError("privacy.working_hours: must be a list like ['Mon-Fri 06:00-19:00']")
    zone = table.get("timezone", "UTC")
    try:
        ZoneInfo(zone) if isinstance(zone, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"privacy.timezone: {zone!r} is not an IANA time zone") from None
    if not isinstance(zone, str):
        raise ConfigError("privacy.timezone: must be an IANA time zone name like 'Europe/Berlin'")
    windows = tuple(parse_window(s) for s in specs)
    outside = bool(table.get("outside_working_hours", False))
    if outside and not windows:
        raise ConfigError("privacy.outside_working_hours: needs privacy.working_hours")
    return PrivacyPolicy(bool(table.get("allowed", False)), outside, windows, zone)


def read_switch(data_dir: Path) -> bool | None:
    """The driver's switch: True (private), False (explicitly not), None (no switch, or unreadable)."""
    try:
        data = json.loads((data_dir / SWITCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("private") if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None


def write_switch(data_dir: Path, private: bool | None, now: float) -> None:
    """Set (or with None, clear) the driver's switch, atomically."""
    path = data_dir / SWITCH_FILE
    if private is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"private": private, "set_at": now}), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def scrub(payload: Mapping[str, object]) -> dict[str, object]:
    """The payload without its location fields."""
    return {k: v for k, v in payload.items() if k not in LOCATION_KEYS}


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class PrivacyGate:
    """Decides, fix by fix, whether location is private, and keeps the private-use summary."""

    def __init__(self, policy: PrivacyPolicy, switch: bool | None = None) -> None:
        self.policy = policy
        self.switch = switch
        self.private = False
        self._reason = "policy"
        self._since = 0.0
        self._last_report = 0.0
        self._distance_m = 0.0
        self._last: tuple[float, float, float] | None = None  # (t, lat, lon) of the last private fix

    def update(self, timestamp: float) -> list[Event]:
        """Re-evaluate at device time ``timestamp``; returns the events a change (or a report) makes."""
        private, reason = self.policy.private_at(timestamp, self.switch)
        events: list[Event] = []
        if private != self.private:
            if self.private:
                events.append(self._summary(timestamp, final=True))
            events.append(Event(timestamp, "privacy_mode", Priority.EVENT, {"private": private, "reason": reason}))
            self.private, self._reason, self._since = private, reason, timestamp
            self._last_report, self._distance_m, self._last = timestamp, 0.0, None
        elif self.private and timestamp - self._last_report >= PRIVATE_REPORT_S:
            events.append(self._summary(timestamp, final=False))
        return events

    def add_fix(self, fix: Fix) -> None:
        """Sum the step to this private fix (the fix itself is not kept)."""
        if not (fix.valid and math.isfinite(fix.lat) and math.isfinite(fix.lon)):
            return
        last, self._last = self._last, (fix.timestamp, fix.lat, fix.lon)
        if last is None:
            return
        dt = fix.timestamp - last[0]
        if dt <= 0 or dt > MAX_STEP_GAP_S:
            return
        step = great_circle_m(last[1], last[2], fix.lat, fix.lon)
        if step / dt <= MAX_PLAUSIBLE_MPS:
            self._distance_m += step

    def scrub_events(self, events: Sequence[Event]) -> list[Event]:
        """Events as stored while private: without location."""
        return [Event(e.timestamp, e.kind, e.priority, scrub(e.payload)) for e in events]

    def _summary(self, timestamp: float, *, final: bool) -> Event:
        payload: dict[str, object] = {
            "started_at": self._last_report, "ended_at": timestamp, "private_since": self._since,
            "distance_km": round(self._distance_m / 1000.0, 4), "distance_source": "gnss",
            "reason": self._reason, "final": final,
        }
        self._last_report, self._distance_m = timestamp, 0.0
        return Event(timestamp, "private_interval", Priority.EVENT, payload)

    def state(self) -> dict[str, object]:
        return {"private": self.private, "reason": self._reason, "since": self._since,
                "last_report": self._last_report, "distance_m": self._distance_m}

    def restore(self, state: Mapping[str, object]) -> None:
        private, since, last, dist = (state.get(k) for k in ("private", "since", "last_report", "distance_m"))
        if isinstance(private, bool) and all(isinstance(v, int | float) for v in (since, last, dist)):
            self.private = private
            self._reason = str(state.get("reason", "policy"))
            self._since, self._last_report, self._distance_m = float(since), float(last), float(dist)  # type: ignore[arg-type]
