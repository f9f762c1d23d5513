"""Fault detector: DTCs appear once and clear after the debounce; threshold faults are debounced."""

from __future__ import annotations

import json

import pytest

from edge_agent.detection import DetectionBatch
from edge_agent.detection.faults import FaultDetector
from edge_agent.model import (
    DiagnosticMessage,
    Event,
    J1939Dtc,
    Lamps,
    LampState,
    ObdDtc,
    ObdDtcReport,
    Sample,
)
from firmware_profiles import load_profile

# The detectors run native/ kernels: CI runs these compiled and with FLEET_PURE_PYTHON=1.
pytestmark = pytest.mark.native

TRUCK = dict(load_profile("heavy_truck_j1939").thresholds)  # debounce 10 s, coolant 105, battery 23, oil 100
T0 = 1_700_000_000.0
AMBER = Lamps(protect=LampState.OFF, amber_warning=LampState.ON, red_stop=LampState.OFF, mil=LampState.OFF)
COOLANT_HIGH = J1939Dtc(spn=110, fmi=0, oc=3)


def _dm1(t: float, sa: int, *dtcs: J1939Dtc, kind: str = "DM1") -> DiagnosticMessage:
    return DiagnosticMessage(T0 + t, kind, sa, AMBER if dtcs else Lamps(), tuple(dtcs))


def _run(det: FaultDetector, batches: list[DetectionBatch]) -> list[Event]:
    return [e for b in batches for e in det.process(b)]


def _flapping_dm1() -> list[DetectionBatch]:
    # DM1 once a second (J1939-73): the code is present on odd seconds only for a minute, then gone.
    batches = [DetectionBatch(diagnostics=[_dm1(t, 0x00, *([COOLANT_HIGH] if t % 2 else []))]) for t in range(60)]
    batches += [DetectionBatch(diagnostics=[_dm1(t, 0x00)]) for t in range(60, 80)]
    return batches


def test_a_flapping_dtc_is_one_fault() -> None:
    events = _run(FaultDetector(TRUCK), _flapping_dm1())
    assert [e.kind for e in events] == ["dtc_appeared", "dtc_cleared"]
    appeared, cleared = events
    assert appeared.payload == {
        "protocol": "j1939", "source": "j1939:0x00", "spn": 110, "fmi": 0, "oc": 3, "since": T0 + 1,
        "lamps": {"mil": "off", "red_stop": "off", "amber_warning": "on", "protect": "off"},
    }
    assert cleared.payload["cleared_at"] == T0 + 60  # first DM1 without it, for good
    assert cleared.timestamp == T0 + 70  # missing for the 10 s debounce
    assert cleared.payload["flaps"] == 29
    assert appeared.priority == cleared.priority == 30
    # Without a debounce the same traffic is dozens of faults: the test above can fail.
    assert len(_run(FaultDetector({**TRUCK, "fault_debounce_s": 0.0}), _flapping_dm1())) == 60


def test_dtcs_are_kept_per_source_address_and_dm2_is_history() -> None:
    det = FaultDetector(TRUCK)
    events = _run(det, [
        DetectionBatch(diagnostics=[_dm1(0, 0x00, COOLANT_HIGH), _dm1(0, 0x03, COOLANT_HIGH)]),
        DetectionBatch(diagnostics=[_dm1(1, 0x00, COOLANT_HIGH), _dm1(1, 0x03, COOLANT_HIGH, kind="DM2")]),
        DetectionBatch(diagnostics=[_dm1(2, 0x0B, J1939Dtc(spn=3216, fmi=4, oc=1))]),
    ])
    assert [(e.kind, e.payload["source"], e.payload["spn"]) for e in events] == [
        ("dtc_appeared", "j1939:0x00", 110), ("dtc_appeared", "j1939:0x03", 110), ("dtc_appeared", "j1939:0x0B", 3216),
    ]


def test_obd_stored_and_pending_lists() -> None:
    det = FaultDetector(TRUCK)

    def report(t: float, status: str, *codes: str) -> DetectionBatch:
        dtcs = tuple(ObdDtc(c, status, "obd:0x7E8") for c in codes)
        return DetectionBatch(obd_dtcs=[ObdDtcReport(T0 + t, status, "obd:0x7E8", dtcs)])

    events = _run(det, [report(0, "stored", "P0301"), report(0, "pending", "P0420"), report(5, "stored", "P0301"),
                        report(5, "pending"), report(10, "pending", "P0420"), report(30, "pending")]
                  + [report(t, "stored", "P0301") for t in range(35, 60, 5)])
    assert [(e.kind, e.payload["code"], e.payload["status"]) for e in events] == [
        ("dtc_appeared", "P0301", "stored"), ("dtc_appeared", "P0420", "pending"),
        ("dtc_cleared", "P0420", "pending"),
    ]
    assert events[2].timestamp == T0 + 40  # gone at 30, and still gone 10 s later


def _signal(t: float, signal: str, value: float, unit: str = "") -> Sample:
    return Sample(T0 + t, signal, value, "j1939:0x00", unit)


def test_threshold_fault_is_debounced_on_both_edges() -> None:
    temps = [104.0] * 30 + [106.0] * 5 + [104.0] * 20 + [106.0, 104.0] * 10 + [107.0] * 30 + [99.0] * 30
    samples = [_signal(t, "coolant_temp", v, "degC") for t, v in enumerate(temps)]
    events = _run(FaultDetector(TRUCK), [DetectionBatch(samples=samples[k:k + 17]) for k in range(0, 145, 17)])
    # The 5 s excursion is too short. The alternating stretch (dips shorter than the debounce) is one
    # fault that starts with it at t=55 and is confirmed 10 s later; it runs on through the steady rise.
    assert [e.kind for e in events] == ["fault_raised", "fault_cleared"]
    raised, cleared = events
    assert raised.payload["fault"] == "coolant_over_temp" and raised.payload["threshold"] == 105.0
    assert raised.payload["since"] == T0 + 55 and raised.timestamp == T0 + 65
    assert cleared.payload["cleared_at"] == T0 + 105 and cleared.payload["duration_s"] == 50.0
    assert cleared.timestamp == T0 + 115


@pytest.mark.parametrize(("rpm", "raised"), [(0.0, False), (700.0, True)])
def test_low_oil_pressure_counts_only_with_the_engine_running(rpm: float, raised: bool) -> None:
    samples = []
    for t in range(40):
        samples += [_signal(t, "engine_speed", rpm, "rpm"), _signal(t, "oil_pressure", 20.0, "kPa")]
    events = FaultDetector(TRUCK).process(DetectionBatch(samples=samples))
    assert [e.kind for e in events] == (["fault_raised"] if raised else [])


def test_missing_threshold_disables_the_check() -> None:
    van = dict(load_profile("light_obd2").thresholds)  # no oil pressure limit on the van
    det = FaultDetector(van)
    assert [c.fault for c in det.checks] == ["coolant_over_temp", "low_battery_voltage"]
    samples = [s for t in range(40) for s in (_signal(t, "engine_speed", 800.0), _signal(t, "oil_pressure", 1.0))]
    assert det.process(DetectionBatch(samples=samples)) == []


@pytest.mark.parametrize("cut", [1, 2, 30, 61, 65, 75])
def test_restart_through_state_continues_without_duplicates(cut: int) -> None:
    batches = _flapping_dm1()
    coolant = [DetectionBatch(samples=[_signal(t, "coolant_temp", 110.0 if 20 <= t < 50 else 90.0)])
               for t in range(80)]
    merged = [
        DetectionBatch(samples=c.samples, diagnostics=b.diagnostics) for b, c in zip(batches, coolant, strict=True)
    ]
    whole = _run(FaultDetector(TRUCK), merged)
    first = FaultDetector(TRUCK)
    before = _run(first, merged[:cut])
    second = FaultDetector(TRUCK)
    second.restore(json.loads(json.dumps(first.state(), allow_nan=False)))
    assert before + _run(second, merged[cut:]) == whole
    assert [e.kind for e in whole] == ["dtc_appeared", "fault_raised", "fault_cleared", "dtc_cleared"]


def test_restore_is_lenient() -> None:
    det = FaultDetector(TRUCK)
    det.restore({"dtcs": {"x": "junk", "y": {"payload": {}}}, "runs": {"coolant_over_temp": [1]}, "engine": 5})
    assert det.state()["dtcs"] == {}
    assert [e.kind for e in _run(det, _flapping_dm1())] == ["dtc_appeared", "dtc_cleared"]
