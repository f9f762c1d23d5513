"""Due state of a service task: whichever trigger first, each at its due-soon edge, snoozes and forecasts."""

from __future__ import annotations

import pytest

from cloud_sync.maintenance.schedule import CALENDAR, Trigger, evaluate, used_fraction

DAY = 86_400.0
NOW = 1_764_028_800.0
OIL = [Trigger("odometer_km", 20_000, 1_000), Trigger("engine_hours", 500, 25), Trigger(CALENDAR, 365, 30)]


def _eval(odo: float | None, hours: float | None, days_ago: float, rates=None, snoozed_until=None):
    return evaluate(OIL, NOW - days_ago * DAY, {"odometer_km": 100_000.0, "engine_hours": 4_000.0},
                    {"odometer_km": odo, "engine_hours": hours}, rates or {}, NOW, snoozed_until)


@pytest.mark.parametrize(("odo", "state"), [(118_999.9, "ok"), (119_000.0, "due_soon"), (119_999.9, "due_soon"),
                                            (120_000.0, "overdue")])
def test_odometer_trigger_at_its_edges(odo, state):
    status = _eval(odo, 4_000.0, 10)
    assert status.state == state and status.triggers[0].state == state


def test_whichever_comes_first_decides():
    status = _eval(101_000.0, 4_480.0, 10)  # few km, but the engine hours are nearly used up
    assert [t.state for t in status.triggers] == ["ok", "due_soon", "ok"]
    assert status.state == "due_soon"
    status = _eval(101_000.0, 4_100.0, 365)  # a year has passed: the calendar is overdue
    assert [t.state for t in status.triggers] == ["ok", "ok", "overdue"] and status.state == "overdue"
    assert status.triggers[2].remaining == pytest.approx(0.0)


def test_forecast_from_recent_use_and_the_earliest_is_next_due():
    status = _eval(110_000.0, 4_100.0, 10, rates={"odometer_km": 500.0, "engine_hours": 10.0})
    odo, hours, cal = status.triggers
    assert odo.due_at == 120_000.0 and odo.remaining == 10_000.0 and odo.forecast_at == NOW + 20 * DAY
    assert hours.forecast_at == NOW + 40 * DAY and cal.forecast_at == NOW + 355 * DAY
    assert status.next_due_at == NOW + 20 * DAY
    assert used_fraction(odo) == pytest.approx(0.5)


def test_snoozed_only_while_due_and_until_the_snooze_ends():
    assert _eval(121_000.0, 4_000.0, 1, snoozed_until=NOW + DAY).state == "snoozed"
    assert _eval(121_000.0, 4_000.0, 1, snoozed_until=NOW - 1).state == "overdue"  # the snooze ran out
    assert _eval(100_500.0, 4_000.0, 1, snoozed_until=NOW + DAY).state == "ok"


def test_a_meter_without_readings_is_unknown_not_ok():
    status = evaluate([Trigger("odometer_km", 20_000, 1_000)], NOW, {"odometer_km": None}, {"odometer_km": None}, {},
                      NOW)
    assert status.state == "unknown" and status.next_due_at is None
