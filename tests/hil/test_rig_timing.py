"""The rig's timing on a loaded machine, without playing a scenario: a stalled rig loop holds the scenario
clock (``hil.player.StallHold``), and the bundled truck scenarios leave the agent's trip end debounce a
margin inside their last engine-off step.

Both were behind a CI flake of depot_day in the demo (two xdist workers on two cores): the trip never
ended because the engine-off spell the agent saw before ignition off came out shorter than its debounce.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.detection.clock import EVAL_STEP_S
from hil.player import STALL_S, TICK_S, StallHold
from hil.rig import HilRig
from hil.scenario import bundled_scenarios, load_scenario

#: How late (wall seconds) an agent may read its frames once and still see the engine off long enough:
#: it stamps frames as it reads them, so a late read shortens the spell it measures by as much.
AGENT_LATE_S = 0.5


def test_a_stalled_rig_loop_holds_the_scenario_clock_instead_of_skipping_ahead(tmp_path: Path) -> None:
    scenario = load_scenario(bundled_scenarios()["depot_day"])
    rig = HilRig(scenario, tmp_path)
    hold = StallHold(rig, 0.0)
    now = 0.0
    for _ in range(10):  # ordinary turns, a little late as sleeps are: the clock runs with the wall
        now += TICK_S + STALL_S / 2
        hold.turn(now)
    assert hold.stalls == 0 and rig.scenario_time(now) == pytest.approx(now * scenario.speedup)
    before = rig.scenario_time(now)
    now += 0.5  # the loop did not run for half a second
    hold.turn(now)
    # The scenario resumes one tick after where it stalled: the vehicle's state was not cut short.
    assert rig.scenario_time(now) == pytest.approx(before + TICK_S * scenario.speedup)
    assert (hold.stalls, hold.resume) == (1, now) and hold.held_s == pytest.approx(0.5 - TICK_S)
    # A gap the rig accounts for itself (the agent's restart pauses the clock) is not held twice.
    paused = rig._paused
    hold.skip(now + 3.0)
    hold.turn(now + 3.0 + TICK_S)
    assert rig._paused == paused and hold.stalls == 1


@pytest.mark.parametrize("name", [n for n in sorted(bundled_scenarios())
                                  if not load_scenario(bundled_scenarios()[n]).is_obd])
def test_the_last_engine_off_outlasts_the_trip_end_debounce_with_a_margin(name: str) -> None:
    scenario = load_scenario(bundled_scenarios()[name])
    if not any(e.kind == "trip_ended" for e in scenario.expectations):
        pytest.skip(f"{name} expects no trip end")
    actions = [s.action for s in scenario.steps if s.action in ("idle", "drive", "engine_off", "ignition_off")]
    assert actions[-2:] == ["engine_off", "ignition_off"], "after ignition off only a restart would end the trip"
    engine_off = [s for s in scenario.steps if s.action == "engine_off"][-1]
    wall_s = engine_off.duration_s / scenario.speedup
    # The detector evaluates at most every EVAL_STEP_S: the spell's first and deciding evaluations may
    # each come that much after the frames that made them.
    needed = scenario.thresholds["trip_end_debounce_s"] + 2 * EVAL_STEP_S + AGENT_LATE_S
    assert wall_s >= needed, f"{name}: engine_off lasts {wall_s:.2f} s of bus time, the trip end needs {needed:.2f} s"
