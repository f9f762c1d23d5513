"""SampleGate: rate, deadband, on-change, heartbeat, clock jumps and NaN, per (signal, source)."""

from __future__ import annotations

import math

import pytest

from edge_agent.errors import ConfigError
from edge_agent.model import Sample
from edge_agent.sampling import HEARTBEAT_S, SampleGate

NAN = float("nan")


def s(ts: float, value: float, signal: str = "rpm", source: str = "j1939:0x00") -> Sample:
    return Sample(ts, signal, value, source, "rpm")


def kept_times(gate: SampleGate, samples: list[Sample]) -> list[float]:
    return [x.timestamp for x in gate.admit_many(samples)]


def test_rate_only_admits_first_then_one_per_period() -> None:
    gate = SampleGate({"rpm": (1.0, 0.0)})
    # 10 Hz input of a changing value for 3 s: a 1 Hz gate keeps t = 0, 1.0, 2.0, 3.0.
    samples = [s(i / 10, 800.0 + i) for i in range(31)]
    assert kept_times(gate, samples) == [0.0, 1.0, 2.0, 3.0]


def test_rate_is_measured_from_the_last_admitted_not_the_last_seen() -> None:
    gate = SampleGate({"rpm": (2.0, 0.0)})
    assert kept_times(gate, [s(0.0, 1), s(0.3, 1), s(0.49, 1), s(0.5, 1), s(0.9, 1), s(1.0, 1)]) == [0.0, 0.5, 1.0]


def test_deadband_admits_large_moves_between_rate_ticks() -> None:
    gate = SampleGate({"rpm": (0.1, 50.0)})  # one every 10 s, or on a move of 50 rpm
    samples = [s(0.0, 800), s(1.0, 849.9), s(2.0, 850.0), s(3.0, 899.0), s(4.0, 800.0), s(5.0, 760.0)]
    # 850 moves 50 from 800 (admitted, new reference 850); 899 is 49 away; 800 is 50 away (down);
    # 760 is only 40 from the new reference 800.
    assert kept_times(gate, samples) == [0.0, 2.0, 4.0]
    assert kept_times(gate, [s(14.0, 760.0)]) == [14.0]  # 10 s after the last admitted (4.0)


def test_rate_zero_and_no_deadband_means_on_change_only() -> None:
    gate = SampleGate({"gear": (0.0, 0.0)})
    samples = [s(t, v, "gear") for t, v in [(0, 1), (1, 1), (2, 2), (3, 2), (50, 2), (51, 3), (52, 1)]]
    assert kept_times(gate, samples) == [0, 2, 51, 52]


def test_rate_zero_with_deadband_needs_the_deadband() -> None:
    gate = SampleGate({"fuel": (0.0, 1.0)})
    samples = [s(t, v, "fuel") for t, v in [(0, 50.0), (1, 50.5), (2, 50.9), (3, 51.0), (4, 50.2)]]
    assert kept_times(gate, samples) == [0, 3]


def test_heartbeat_admits_a_constant_signal_after_more_than_300_s() -> None:
    gate = SampleGate({"gear": (0.0, 0.0), "rpm": (0.001, 0.0)})  # rpm: one per 1000 s by rate
    assert gate.admit(s(0.0, 4, "gear"))
    assert gate.admit(s(0.0, 800))
    assert not gate.admit(s(HEARTBEAT_S, 4, "gear"))  # exactly 300 s: not yet "more than"
    assert not gate.admit(s(HEARTBEAT_S, 800))
    assert gate.admit(s(HEARTBEAT_S + 0.5, 4, "gear"))
    assert gate.admit(s(HEARTBEAT_S + 0.5, 800))
    assert not gate.admit(s(2 * HEARTBEAT_S, 4, "gear"))  # re-based on the heartbeat at 300.5
    assert gate.admit(s(2 * HEARTBEAT_S + 1.0, 4, "gear"))


def test_clock_going_backwards_admits_and_rebases() -> None:
    gate = SampleGate({"rpm": (1.0, 0.0)})
    assert kept_times(gate, [s(100.0, 1), s(100.5, 1), s(5.0, 1), s(5.5, 1), s(6.0, 1)]) == [100.0, 5.0, 6.0]


def test_keys_are_per_signal_and_source() -> None:
    gate = SampleGate({"rpm": (1.0, 0.0)})
    samples = [s(0.0, 1, source="a"), s(0.0, 1, source="b"), s(0.5, 1, source="a"), s(0.5, 1, source="c"),
               s(0.5, 1, signal="speed", source="a")]
    kept = gate.admit_many(samples)
    assert [(x.signal, x.source, x.timestamp) for x in kept] == [
        ("rpm", "a", 0.0), ("rpm", "b", 0.0), ("rpm", "c", 0.5), ("speed", "a", 0.5),
    ]


def test_unknown_signals_are_always_admitted() -> None:
    gate = SampleGate({"rpm": (1.0, 0.0)})
    samples = [s(0.0, 1, "coolant"), s(0.0, 1, "coolant"), s(0.01, 1, "coolant")]
    assert gate.admit_many(samples) == samples


@pytest.mark.parametrize("spec", [(0.0, 0.0), (0.0, 5.0), (1.0, 0.0), (1.0, 5.0)])
def test_nan_after_a_number_is_a_change_and_back_again(spec: tuple[float, float]) -> None:
    gate = SampleGate({"rpm": spec})
    # All within one rate period: only NaN transitions (and the first sample) are admitted.
    samples = [s(0.0, 800), s(0.1, NAN), s(0.2, NAN), s(0.3, 800), s(0.4, 800)]
    kept = gate.admit_many(samples)
    assert [x.timestamp for x in kept] == [0.0, 0.1, 0.3]
    assert math.isnan(kept[1].value)


def test_first_sample_nan_then_nan_is_no_change() -> None:
    gate = SampleGate({"rpm": (0.0, 0.0)})
    assert kept_times(gate, [s(0.0, NAN), s(1.0, NAN), s(2.0, 7.0)]) == [0.0, 2.0]


def test_admit_and_admit_many_agree() -> None:
    spec = {"rpm": (2.0, 25.0), "gear": (0.0, 0.0)}
    samples = [s(i * 0.05, 800 + (i * 7) % 60, "rpm" if i % 3 else "gear") for i in range(400)]
    one = SampleGate(spec)
    many = SampleGate(spec)
    assert [x for x in samples if one.admit(x)] == many.admit_many(samples)


@pytest.mark.parametrize("bad", [(-1.0, 0.0), (1.0, -0.5), (NAN, 0.0), (1.0, math.inf)])
def test_bad_specs_are_refused_with_the_signal_name(bad: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="rpm"):
        SampleGate({"rpm": bad})
