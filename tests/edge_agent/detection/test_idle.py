"""Idle detector: fuel measured or estimated, PTO, GNSS speed, clock jumps, silence and restarts."""

from __future__ import annotations

import json

import pytest

from edge_agent.detection import DetectionBatch
from edge_agent.detection.idle import IdleDetector
from edge_agent.model import Event, Fix, Sample
from firmware_profiles import load_profile

# The detectors run native/ kernels: CI runs these compiled and with FLEET_PURE_PYTHON=1.
pytestmark = pytest.mark.native

TRUCK = dict(load_profile("heavy_truck_j1939").thresholds)  # 450 rpm, 300 s, 3 L/h estimate
T0 = 1_700_000_000.0
SRC = "j1939:0x00"


def _second(t: float, rpm: float, kmh: float | None, fuel: float | None = None, pto: float | None = None,
            ts: float | None = None) -> list[Sample]:
    stamp = T0 + t if ts is None else ts
    out = [Sample(stamp, "engine_speed", rpm, SRC, "rpm")]
    if kmh is not None:
        out.append(Sample(stamp, "wheel_speed", kmh, "j1939:0x0B", "km/h"))
    if fuel is not None:
        out.append(Sample(stamp, "fuel_rate", fuel, SRC, "L/h"))
    if pto is not None:
        out.append(Sample(stamp, "pto_state", pto, "j1939:0x0B"))
    return out


def _feed(det: IdleDetector, samples: list[Sample], batch: int = 50) -> list[Event]:
    events: list[Event] = []
    for k in range(0, len(samples), batch):
        events += det.process(DetectionBatch(samples=samples[k:k + batch]))
    return events


def _idle_then_drive(idle_s: int = 600, fuel: float | None = None, pto: float | None = None) -> list[Sample]:
    out: list[Sample] = []
    for t in range(idle_s):
        out += _second(t, 650.0, 0.0, fuel, pto)
    for t in range(idle_s, idle_s + 60):
        out += _second(t, 1400.0, 30.0, fuel, pto)
    return out


def test_idle_without_fuel_rate_uses_the_profile_estimate() -> None:
    events = _feed(IdleDetector(TRUCK), _idle_then_drive())
    assert [e.kind for e in events] == ["idle_started", "idle_ended"]
    started, ended = events
    assert started.timestamp == T0 + 300 and started.payload["started_at"] == T0
    assert ended.payload["started_at"] == T0 and ended.payload["ended_at"] == T0 + 600
    assert ended.timestamp == T0 + 605  # moving for the 5 s end debounce
    assert ended.payload["duration_s"] == 600.0
    assert ended.payload["fuel_source"] == "estimated"
    assert ended.payload["fuel_l"] == pytest.approx(3.0 * 600 / 3600)  # 3 L/h for 10 minutes
    assert ended.payload["source"] == SRC


def test_idle_with_fuel_rate_integrates_it() -> None:
    events = _feed(IdleDetector(TRUCK), _idle_then_drive(fuel=2.4))
    ended = events[-1]
    assert ended.kind == "idle_ended" and ended.payload["fuel_source"] == "measured"
    assert ended.payload["fuel_l"] == pytest.approx(2.4 * 600 / 3600)


def test_no_estimate_and_no_rate_reports_no_fuel() -> None:
    thresholds = {k: v for k, v in TRUCK.items() if k != "idle_fuel_rate_lph"}
    ended = _feed(IdleDetector(thresholds), _idle_then_drive())[-1]
    assert ended.payload["fuel_source"] == "none" and ended.payload["fuel_l"] is None


def test_short_stop_is_not_idle() -> None:
    assert _feed(IdleDetector(TRUCK), _idle_then_drive(idle_s=299)) == []


@pytest.mark.parametrize(("pto", "idle"), [(5.0, False), (1.0, False), (0.0, True), (3.0, True), (31.0, True)])
def test_pto_engaged_is_work_not_idle(pto: float, idle: bool) -> None:
    events = _feed(IdleDetector(TRUCK), _idle_then_drive(pto=pto))
    assert bool(events) is idle


def test_gnss_speed_overrides_a_zero_wheel_speed() -> None:
    det = IdleDetector(TRUCK)
    events: list[Event] = []
    for t0 in range(0, 600, 5):
        # The receiver says 8 m/s (a wheel-speed sensor stuck at zero, or a towed/ferried truck).
        fix = Fix(T0 + t0, 48.0, 11.0, True, quality=1, speed_mps=8.0)
        events += det.process(DetectionBatch(fixes=[fix]))
        events += det.process(DetectionBatch(samples=[s for t in range(t0, t0 + 5) for s in _second(t, 650, 0.0)]))
    assert events == []


def test_gnss_alone_can_say_still() -> None:
    det = IdleDetector(TRUCK)
    events: list[Event] = []
    for t0 in range(0, 400, 5):
        fix = Fix(T0 + t0, 48.1, 11.2, True, quality=1, speed_mps=0.1)
        events += det.process(DetectionBatch(fixes=[fix]))
        events += det.process(DetectionBatch(samples=[s for t in range(t0, t0 + 5) for s in _second(t, 650, None)]))
    assert [e.kind for e in events] == ["idle_started"]
    assert (events[0].payload["lat"], events[0].payload["lon"]) == (48.1, 11.2)


def test_clock_set_backwards_gives_no_duplicate_and_no_negative_duration() -> None:
    samples: list[Sample] = []
    for t in range(400):
        samples += _second(t, 650.0, 0.0)
    for t in range(400, 700):  # the bus clock jumps back one hour at t=400 and runs on from there
        samples += _second(t, 650.0, 0.0, ts=T0 + t - 3600.0)
    for t in range(700, 720):
        samples += _second(t, 1400.0, 40.0, ts=T0 + t - 3600.0)
    events = _feed(IdleDetector(TRUCK), samples)
    assert [e.kind for e in events] == ["idle_started", "idle_ended"]
    duration = events[1].payload["duration_s"]
    assert duration == 699.0  # 700 samples, the backwards step counted as zero


def test_bus_silence_ends_idle_at_the_last_sample() -> None:
    samples: list[Sample] = []
    for t in range(400):
        samples += _second(t, 650.0, 0.0)
    for t in range(4000, 4010):  # ignition off for an hour, then driving
        samples += _second(t, 1400.0, 50.0)
    events = _feed(IdleDetector(TRUCK), samples)
    assert [e.kind for e in events] == ["idle_started", "idle_ended"]
    assert events[1].payload["duration_s"] == 399.0
    assert events[1].payload["ended_at"] == T0 + 399


@pytest.mark.parametrize("cut", [100, 1000, 1201, 1800, 1815])
def test_restart_mid_idle_continues_without_duplicates(cut: int) -> None:
    samples = _idle_then_drive(fuel=2.4)
    whole = _feed(IdleDetector(TRUCK), samples)
    first = IdleDetector(TRUCK)
    before = _feed(first, samples[:cut])
    second = IdleDetector(TRUCK)
    second.restore(json.loads(json.dumps(first.state(), allow_nan=False)))
    assert before + _feed(second, samples[cut:]) == whole


def test_restore_is_lenient() -> None:
    det = IdleDetector(TRUCK)
    det.restore({"fuel_runs": [1, 2], "held": {"engine_speed": "x"}, "gnss": None})
    assert [e.kind for e in _feed(det, _idle_then_drive())] == ["idle_started", "idle_ended"]


def test_missing_required_thresholds_refused() -> None:
    with pytest.raises(ValueError, match="idle_min_duration_s"):
        IdleDetector({"idle_engine_speed_rpm": 400.0})
