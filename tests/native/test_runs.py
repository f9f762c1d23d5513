"""The runs kernel equals its twin on generated timelines, and finds the runs a person would."""

from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from native import runs_py

pytestmark = pytest.mark.native

KERNEL = native.kernel("runs")

steps = st.one_of(
    st.floats(0.0, 5.0),  # ordinary sample spacing
    st.floats(-50.0, 0.0),  # the clock set backwards
    st.floats(50.0, 5000.0),  # silence (ignition off) or a clock leap forward
    st.just(math.nan),
)
timeline = st.lists(st.tuples(steps, st.booleans(), st.one_of(st.floats(0.0, 80.0), st.just(math.nan))),
                    max_size=80)


def _arrays(rows: list[tuple[float, bool, float]], t0: float = 1000.0) -> tuple[array, array, array]:
    ts, cond, rate = array("d"), array("B"), array("d")
    t = t0
    for step, c, r in rows:
        if math.isnan(step):
            ts.append(math.nan)
        else:
            t += step
            ts.append(t)
        cond.append(int(c))
        rate.append(r)
    return ts, cond, rate


def _same(a: tuple[array, ...], b: tuple[array, ...]) -> None:
    # Bytes, not ==: NaN must equal NaN, and -0.0 must not equal 0.0.
    assert [x.typecode for x in a] == [x.typecode for x in b]
    assert [x.tobytes() for x in a] == [x.tobytes() for x in b]


@settings(max_examples=400)
@given(timeline, timeline, st.floats(0.0, 30.0), st.floats(0.0, 10.0), st.floats(10.0, 100.0))
def test_kernel_equals_twin_across_two_batches(rows1, rows2, min_duration, debounce, max_gap) -> None:
    state_k = state_t = runs_py.new_state()
    for rows, t0 in ((rows1, 1000.0), (rows2, 1200.0)):
        ts, cond, rate = _arrays(rows, t0)
        got = KERNEL.find_runs(ts, cond, rate, state_k, min_duration, debounce, max_gap)
        want = runs_py.find_runs(ts, cond, rate, state_t, min_duration, debounce, max_gap)
        _same(got, want)
        state_k, state_t = got[-1], want[-1]


@settings(max_examples=200)
@given(timeline, st.integers(0, 80), st.floats(0.0, 30.0), st.floats(0.0, 10.0))
def test_splitting_a_batch_changes_nothing(rows, cut, min_duration, debounce) -> None:
    ts, cond, rate = _arrays(rows)
    cut = min(cut, len(ts))
    whole = KERNEL.find_runs(ts, cond, rate, runs_py.new_state(), min_duration, debounce, 60.0)
    first = KERNEL.find_runs(ts[:cut], cond[:cut], rate[:cut], runs_py.new_state(), min_duration, debounce, 60.0)
    second = KERNEL.find_runs(ts[cut:], cond[cut:], rate[cut:], first[-1], min_duration, debounce, 60.0)
    assert list(whole[0]) == list(first[0]) + [i + cut for i in second[0]]
    for k in (1, 2, 3, 4, 5, 6):
        assert whole[k].tobytes() == first[k].tobytes() + second[k].tobytes()
    assert whole[-1].tobytes() == second[-1].tobytes()


def test_a_run_with_a_brief_blip_is_one_run_and_durations_follow_the_samples() -> None:
    # 1 Hz: true for 0..9, false at 10 (blip, shorter than the 3 s debounce), true 11..19, false 20..25.
    ts = array("d", [float(t) for t in range(26)])
    cond = array("B", [1] * 10 + [0] + [1] * 9 + [0] * 6)
    rate = array("d", [3600.0] * 26)  # 3600 units/h -> 1 unit per second
    ev_index, ev_kind, ev_on, ev_off, on_ts, off_ts, ev_acc, mono, state = KERNEL.find_runs(
        ts, cond, rate, runs_py.new_state(), 5.0, 3.0, 60.0
    )
    assert list(ev_kind) == [runs_py.EV_STARTED, runs_py.EV_ENDED]
    assert list(ev_index) == [5, 23]  # confirmed after 5 s; ended once false for 3 s (20..23)
    assert list(ev_on) == [0.0, 0.0]
    assert list(ev_off) == [5.0, 20.0]
    assert list(on_ts) == [0.0, 0.0] and list(off_ts) == [5.0, 20.0]
    assert ev_acc[1] == pytest.approx(20.0 * 3600.0)  # the blip is inside the run
    assert list(mono) == list(ts)
    assert state[runs_py.S_RUN] == 0.0


def test_clock_backwards_gives_no_negative_duration_and_silence_ends_the_run() -> None:
    ts = array("d", [100.0, 101.0, 102.0, 50.0, 51.0, 52.0, 900.0, 901.0])
    cond = array("B", [1, 1, 1, 1, 1, 1, 1, 1])
    rate = array("d", [0.0] * 8)
    ev_index, ev_kind, ev_on, ev_off, on_ts, off_ts, _acc, mono, _state = KERNEL.find_runs(
        ts, cond, rate, runs_py.new_state(), 1.0, 0.0, 30.0
    )
    assert list(mono) == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 34.0, 35.0]
    # Started at 101, ended by the silence before 900 (at the last sample before it), restarted.
    assert list(ev_kind) == [1, 2, 1]
    assert list(ev_index) == [1, 6, 7]
    assert ev_off[1] - ev_on[1] == 4.0
    # In source time: started at 100, confirmed at 101, ended at 52 (the last sample before the silence).
    assert list(on_ts) == [100.0, 100.0, 900.0] and list(off_ts) == [101.0, 52.0, 901.0]
    assert all(off >= on for on, off in zip(ev_on, ev_off, strict=True))


def test_bad_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        KERNEL.find_runs(array("d", [1.0]), array("B"), array("d", [0.0]), runs_py.new_state(), 1.0, 1.0, 1.0)


def test_kernel_equals_twin_on_a_recorded_capture() -> None:
    """The van capture (tests/data/sim, recorded from our OBD-II simulator): engine-on runs and the
    distance integrated over them, batch by batch as the trip detector calls the kernel."""
    from pathlib import Path

    from edge_agent.counters import Counters
    from edge_agent.decoding.obd.decoder import ObdDecoder
    from edge_agent.model import Sample
    from edge_agent.sources.can_replay import CanReplaySource
    from firmware_profiles import load_profile

    capture = Path(__file__).resolve().parents[1] / "data" / "sim" / "van_obd2.log"
    counters = Counters()
    decoder = ObdDecoder(load_profile("light_obd2"), counters)
    source = CanReplaySource(capture, counters=counters)
    samples: list[Sample] = []
    while (frames := source.read_batch(256)) is not None:
        samples += [s for f in frames for s in decoder.feed(f) if isinstance(s, Sample)]
    rpm = [s for s in samples if s.signal == "engine_speed"]
    assert len(rpm) > 50
    kmh: dict[float, float] = {s.timestamp: s.value for s in samples if s.signal == "wheel_speed"}
    state_k = state_t = runs_py.new_state()
    events = 0
    for k in range(0, len(rpm), 16):
        chunk = rpm[k:k + 16]
        ts = array("d", [s.timestamp for s in chunk])
        cond = array("B", [s.value > 400.0 for s in chunk])
        rate = array("d", [kmh.get(s.timestamp, math.nan) for s in chunk])
        got = KERNEL.find_runs(ts, cond, rate, state_k, 20.0, 5.0, 30.0)
        want = runs_py.find_runs(ts, cond, rate, state_t, 20.0, 5.0, 30.0)
        _same(got, want)
        state_k, state_t = got[-1], want[-1]
        events += len(got[0])
    assert events >= 1
