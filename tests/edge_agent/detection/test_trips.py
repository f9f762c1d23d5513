"""Trip detector: trips from engine on/off, distance and fuel from bus counters or integration, meters."""

from __future__ import annotations

import itertools
import json

import pytest

from edge_agent.detection import DetectionBatch
from edge_agent.detection.trips import TripDetector
from edge_agent.model import Event, Fix, Sample
from firmware_profiles import load_profile

# The detectors run native/ kernels: CI runs these compiled and with FLEET_PURE_PYTHON=1.
pytestmark = pytest.mark.native

TRUCK = dict(load_profile("heavy_truck_j1939").thresholds)
VAN = dict(load_profile("light_obd2").thresholds)
T0 = 1_700_000_000.0


def _drive(t_from: int, t_to: int, kmh: float, rpm: float = 1500.0, bus_counters: bool = True,
           odo_m: float = 100_000_000.0, hours: float = 5000.0, fuel_l: float = 200_000.0) -> list[Sample]:
    """1 Hz samples; the bus counters (odometer m, engine hours h, total fuel L) advance with the drive."""
    out = []
    for t in range(t_from, t_to):
        ts = T0 + t
        out += [Sample(ts, "engine_speed", rpm, "j1939:0x00", "rpm"),
                Sample(ts, "fuel_rate", 30.0 if rpm > 0 else 0.0, "j1939:0x00", "L/h")]
        if kmh is not None:
            out.append(Sample(ts, "wheel_speed", kmh, "j1939:0x0B", "km/h"))
        if bus_counters:
            running = (t - t_from) if rpm > 0 else 0.0
            out += [Sample(ts, "odometer", odo_m + kmh * running / 3.6, "j1939:0xEE", "m"),
                    Sample(ts, "engine_hours", hours + running / 3600.0, "j1939:0x00", "h"),
                    Sample(ts, "total_fuel_used", fuel_l + 30.0 * running / 3600.0, "j1939:0x00", "L")]
    return out


def _feed(det: TripDetector, samples: list[Sample], batch: int = 60) -> list[Event]:
    return [e for k in range(0, len(samples), batch) for e in det.process(DetectionBatch(samples=samples[k:k + batch]))]


def _kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events if e.kind != "meter" or e.payload["reason"] == "trip_end"]


def test_trip_from_bus_counters() -> None:
    samples = _drive(0, 1200, 60.0) + _drive(1200, 1400, 0.0, rpm=0.0, odo_m=100_020_000.0,
                                            hours=5000 + 1200 / 3600, fuel_l=200_010.0)
    events = _feed(TripDetector(TRUCK), samples)
    assert _kinds(events) == ["trip_started", "trip_ended", "meter"]
    started = next(e for e in events if e.kind == "trip_started")
    ended = next(e for e in events if e.kind == "trip_ended")
    assert started.timestamp == T0 + 60 and started.payload["started_at"] == T0
    assert ended.payload["ended_at"] == T0 + 1200 and ended.timestamp == T0 + 1320  # 120 s end debounce
    assert ended.payload["duration_s"] == 1200.0
    assert ended.payload["distance_source"] == "odometer"
    assert ended.payload["distance_km"] == pytest.approx(20.0, abs=0.02)
    assert ended.payload["fuel_source"] == "total_fuel_used"
    assert ended.payload["fuel_l"] == pytest.approx(10.0, abs=0.01)
    meter = [e for e in events if e.kind == "meter"][-1]
    assert meter.payload["odometer_source"] == "bus" and meter.payload["odometer_km"] == pytest.approx(100_020.0)
    assert meter.payload["engine_hours_source"] == "bus"
    assert meter.payload["engine_hours"] == pytest.approx(5000 + 1200 / 3600, abs=1e-3)


def test_without_bus_counters_distance_fuel_and_meters_are_integrated() -> None:
    samples: list[Sample] = []
    for start in (0, 3000):  # two trips of 20 minutes at 60 km/h
        samples += _drive(start, start + 1200, 60.0, bus_counters=False)
        samples += _drive(start + 1200, start + 1400, 0.0, rpm=0.0, bus_counters=False)
    events = _feed(TripDetector(VAN), samples)
    assert _kinds(events) == ["trip_started", "trip_ended", "meter"] * 2
    trips = [e for e in events if e.kind == "trip_ended"]
    for trip in trips:
        assert trip.payload["distance_source"] == "integrated"
        assert trip.payload["distance_km"] == pytest.approx(20.0)
        assert trip.payload["fuel_source"] == "fuel_rate" and trip.payload["fuel_l"] == pytest.approx(10.0)
    meters = [e for e in events if e.kind == "meter" and e.payload["reason"] == "trip_end"]
    assert [m.payload["odometer_km"] for m in meters] == [pytest.approx(20.0), pytest.approx(40.0)]
    hours = [m.payload["engine_hours"] for m in meters]
    assert hours == [pytest.approx(1 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4)]
    assert {m.payload["odometer_source"] for m in meters} == {"integrated"}
    assert {m.payload["engine_hours_source"] for m in meters} == {"run_time"}


def test_periodic_meters_at_most_every_interval() -> None:
    events = _feed(TripDetector({**TRUCK, "meter_interval_s": 300.0}), _drive(0, 1800, 50.0))
    periodic = [e.timestamp for e in events if e.kind == "meter" and e.payload["reason"] == "periodic"]
    assert len(periodic) >= 5
    assert all(b - a >= 300.0 for a, b in itertools.pairwise(periodic))


def test_ignition_off_silence_ends_the_trip_at_the_last_sample() -> None:
    samples = _drive(0, 600, 40.0, bus_counters=False) + _drive(5000, 5010, 0.0, rpm=800.0, bus_counters=False)
    events = _feed(TripDetector(TRUCK), samples)
    ended = next(e for e in events if e.kind == "trip_ended")
    assert ended.payload["ended_at"] == T0 + 599 and ended.payload["duration_s"] == 599.0
    assert ended.timestamp == T0 + 5000


def test_gnss_speed_is_used_when_the_bus_has_no_wheel_speed() -> None:
    det = TripDetector(TRUCK)
    events: list[Event] = []
    for t0 in range(0, 1200, 5):
        events += det.process(DetectionBatch(fixes=[Fix(T0 + t0, 48.0, 11.0, True, quality=1, speed_mps=10.0)]))
        samples = [Sample(T0 + t, "engine_speed", 1500.0, "obd:0x7E8", "rpm") for t in range(t0, t0 + 5)]
        events += det.process(DetectionBatch(samples=samples))
    events += det.process(DetectionBatch(samples=[Sample(T0 + t, "engine_speed", 0.0, "x", "rpm")
                                                  for t in range(1200, 1400)]))
    ended = next(e for e in events if e.kind == "trip_ended")
    assert ended.payload["distance_km"] == pytest.approx(12.0)  # 10 m/s for 1200 s
    assert ended.payload["lat"] == 48.0


@pytest.mark.parametrize("cut", [30, 400, 2000, 3800, 4100])
def test_restart_mid_trip_continues_without_duplicates(cut: int) -> None:
    samples = _drive(0, 1200, 60.0) + _drive(1200, 1400, 0.0, rpm=0.0, odo_m=100_020_000.0,
                                            hours=5000 + 1200 / 3600, fuel_l=200_010.0)
    whole = _feed(TripDetector(TRUCK), samples)
    first = TripDetector(TRUCK)
    before = _feed(first, samples[:cut])
    second = TripDetector(TRUCK)
    second.restore(json.loads(json.dumps(first.state(), allow_nan=False)))
    after = _feed(second, samples[cut:])
    assert _kinds(before + after) == _kinds(whole) == ["trip_started", "trip_ended", "meter"]
    assert [e.payload for e in before + after if e.kind == "trip_ended"] == [
        e.payload for e in whole if e.kind == "trip_ended"
    ]


@pytest.mark.parametrize("cut_s", [30, 600])  # before the trip's start is confirmed, and mid-drive
def test_agent_killed_mid_trip_loses_its_unflushed_samples_and_still_reports_the_one_trip(cut_s: int) -> None:
    samples = _drive(0, 1200, 60.0) + _drive(1200, 1400, 0.0, rpm=0.0, odo_m=100_020_000.0,
                                            hours=5000 + 1200 / 3600, fuel_l=200_010.0)
    per_s = 6  # engine speed, fuel rate, wheel speed and the three bus counters each second
    whole = [e for e in _feed(TripDetector(TRUCK), samples) if e.kind == "trip_ended"]
    first = TripDetector(TRUCK)
    before = _feed(first, samples[:cut_s * per_s])
    committed = json.loads(json.dumps(first.state(), allow_nan=False))  # what the last flush committed
    # SIGKILL: what the agent read after that flush died with it, and the bus ran on for 20 s meanwhile.
    second = TripDetector(TRUCK)
    second.restore(committed)
    after = _feed(second, samples[(cut_s + 20) * per_s:])
    assert _kinds(before + after) == ["trip_started", "trip_ended", "meter"]
    ended = next(e.payload for e in after if e.kind == "trip_ended")
    for key in ("started_at", "ended_at", "duration_s", "distance_km", "distance_source", "fuel_l"):
        assert ended[key] == pytest.approx(whole[0].payload[key]), key


def test_restore_is_lenient() -> None:
    det = TripDetector(TRUCK)
    det.restore({"distance_runs": [1.0], "held": {"odometer": [1]}, "trip": None, "last_meter": "x"})
    assert "trip_ended" in _kinds(_feed(det, _drive(0, 300, 30.0) + _drive(300, 500, 0.0, rpm=0.0)))
