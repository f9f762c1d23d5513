"""When a service task is due: whichever trigger comes first, and a forecast of the date (pure functions).

A task has up to four triggers: odometer (km), engine hours, idle hours and calendar (days), each with
an interval and a "due soon" threshold. From the last time the task was done (its meters and date),
the vehicle's meters now and its recent usage per day, each trigger gives:

- ``due_at``: the meter value (or the time, for the calendar) at which the task falls due;
- ``remaining``: how much of that meter (or how many days) is left; negative once overdue;
- ``forecast_at``: when the vehicle will reach it at its recent rate (in the past when overdue: about
  when it fell due); None for a meter the vehicle does not report or does not use;
- ``state``: ``overdue`` (remaining <= 0), ``due_soon`` (remaining <= the threshold), ``ok``, or
  ``unknown`` (no reading of that meter yet).

The task's state is the worst of its triggers, shown as ``snoozed`` while staff have snoozed it and it
is not ``ok``; ``next_due_at`` is the earliest forecast of any trigger.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_sync.maintenance.meters import DAY_S, ENGINE_HOURS, IDLE_HOURS, ODOMETER

CALENDAR = "calendar"
OK, DUE_SOON, OVERDUE, SNOOZED, UNKNOWN = "ok", "due_soon", "overdue", "snoozed", "unknown"
STATES = (OK, DUE_SOON, OVERDUE, SNOOZED, UNKNOWN)
_RANK = {UNKNOWN: 0, OK: 1, DUE_SOON: 2, OVERDUE: 3}
UNITS = {ODOMETER: "km", ENGINE_HOURS: "h", IDLE_HOURS: "h", CALENDAR: "days"}


@dataclass(frozen=True, slots=True)
class Trigger:
    meter: str  # a meter name or CALENDAR
    every: float
    soon: float


@dataclass(frozen=True, slots=True)
class TriggerDue:
    meter: str
    unit: str
    every: float
    soon: float
    last: float | None  # meter value when last done; for the calendar, last/due_at/current are times
    due_at: float | None
    current: float | None
    remaining: float | None
    daily_rate: float | None
    forecast_at: float | None
    state: str


@dataclass(frozen=True, slots=True)
class DueStatus:
    state: str
    next_due_at: float | None
    triggers: tuple[TriggerDue, ...]
    snoozed_until: float | None


def _state(remaining: float | None, soon: float) -> str:
    if remaining is None:
        return UNKNOWN
    if remaining <= 0:
        return OVERDUE
    return DUE_SOON if remaining <= soon else OK


def _meter_due(t: Trigger, last: float | None, now_value: float | None, rate: float | None, now: float
               ) -> TriggerDue:
    if last is None or now_value is None:
        return TriggerDue(t.meter, UNITS[t.meter], t.every, t.soon, last, None, now_value, None, rate, None, UNKNOWN)
    due_at = last + t.every
    remaining = due_at - now_value
    forecast = now + remaining / rate * DAY_S if rate is not None and rate > 0 else None
    return TriggerDue(t.meter, UNITS[t.meter], t.every, t.soon, last, due_at, now_value, remaining, rate, forecast,
                      _state(remaining, t.soon))


def _calendar_due(t: Trigger, done_at: float, now: float) -> TriggerDue:
    due_at = done_at + t.every * DAY_S
    remaining = (due_at - now) / DAY_S
    return TriggerDue(CALENDAR, UNITS[CALENDAR], t.every, t.soon, done_at, due_at, now, remaining, 1.0, due_at,
                      _state(remaining, t.soon))


def evaluate(triggers: list[Trigger], done_at: float, done_meters: dict[str, float | None],
             now_meters: dict[str, float | None], rates: dict[str, float | None], now: float,
             snoozed_until: float | None = None) -> DueStatus:
    """The due status of one task on one vehicle at ``now`` (see the module docstring)."""
    dues = []
    for t in triggers:
        if t.meter == CALENDAR:
            dues.append(_calendar_due(t, done_at, now))
        else:
            dues.append(_meter_due(t, done_meters.get(t.meter), now_meters.get(t.meter), rates.get(t.meter), now))
    worst = max((d.state for d in dues), key=_RANK.__getitem__, default=UNKNOWN)
    snoozed = snoozed_until if snoozed_until is not None and snoozed_until > now else None
    state = SNOOZED if snoozed is not None and worst in (DUE_SOON, OVERDUE) else worst
    forecasts = [d.forecast_at for d in dues if d.forecast_at is not None]
    return DueStatus(state, min(forecasts, default=None), tuple(dues), snoozed)


def used_fraction(due: TriggerDue) -> float | None:
    """How much of the interval is used up (1.0 = due now), for meters with a reading; None otherwise."""
    if due.remaining is None or due.every <= 0:
        return None
    return (due.every - due.remaining) / due.every
