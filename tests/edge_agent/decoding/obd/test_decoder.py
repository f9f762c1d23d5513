"""ObdDecoder over frames: routing, counting, fuzzing, and the recorded van captures."""

from __future__ import annotations

from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.counters import DECODE_ERROR_DOCS, Counters
from edge_agent.decoding.obd.decoder import ObdDecoder, ObdResult, source_name
from edge_agent.model import ObdDtcReport, RawFrame, Sample, VehicleId
from firmware_profiles import Profile, load_profile

SIM = Path(__file__).resolve().parents[4] / "tests" / "data" / "sim"
REAL = Path(__file__).resolve().parents[4] / "tests" / "data" / "real" / "can"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("light_obd2")


def read_candump(path: Path) -> list[RawFrame]:
    return [
        RawFrame(m.timestamp, m.arbitration_id, bytes(m.data), m.is_extended_id, str(m.channel or ""))
        for m in can.CanutilsLogReader(str(path))
    ]


def decode_all(profile: Profile, frames: list[RawFrame]) -> tuple[list[ObdResult], Counters, ObdDecoder]:
    counters = Counters()
    decoder = ObdDecoder(profile, counters)
    out = [item for f in frames for item in decoder.feed(f)]
    return out, counters, decoder


def test_non_obd_and_request_ids_are_ignored(profile: Profile) -> None:
    frames = [
        RawFrame(1.0, 0x7DF, bytes([0x02, 0x01, 0x0C, 0, 0, 0, 0, 0]), False),  # our request
        RawFrame(1.0, 0x7E0, bytes([0x30, 0, 0, 0, 0, 0, 0, 0]), False),  # our flow control
        RawFrame(1.0, 0x18FEF100, bytes([0x04, 0x41, 0x0C, 0x1A, 0xF8, 0, 0, 0]), True),  # J1939 CCVS1
        RawFrame(1.0, 0x123, bytes([0x04, 0x41, 0x0C, 0x1A, 0xF8, 0, 0, 0]), False),
        RawFrame(1.0, 0x7E8, bytes([0x04, 0x41, 0x0C, 0x1A, 0xF8, 0, 0, 0]), True),  # 29-bit 0x7E8 is not OBD
    ]
    out, counters, _ = decode_all(profile, frames)
    assert out == [] and counters.decode_errors() == {}


def test_sources_name_the_responder(profile: Profile) -> None:
    out, _, _ = decode_all(profile, [
        RawFrame(1.0, 0x7E9, bytes([0x03, 0x41, 0x0D, 0x32, 0xAA, 0xAA, 0xAA, 0xAA]), False),
        RawFrame(2.0, 0x18DAF110, bytes([0x03, 0x41, 0x0D, 0x33, 0xAA, 0xAA, 0xAA, 0xAA]), True),
    ])
    assert out == [Sample(1.0, "wheel_speed", 50.0, "obd:0x7E9", "km/h"),
                   Sample(2.0, "wheel_speed", 51.0, "obd:0x18DAF110", "km/h")]
    assert source_name(0x7E8, False) == "obd:0x7E8"


def test_negative_and_pending_responses_are_counted(profile: Profile) -> None:
    nrc = RawFrame(1.0, 0x7E8, bytes([0x03, 0x7F, 0x09, 0x12, 0, 0, 0, 0]), False)
    pending = RawFrame(1.1, 0x7E8, bytes([0x03, 0x7F, 0x01, 0x78, 0, 0, 0, 0]), False)
    out, counters, decoder = decode_all(profile, [nrc, nrc, pending])
    assert out == []
    assert counters.decode_errors() == {"obd_negative_response": 2}
    assert counters.get("obd_response_pending") == 1
    assert decoder.negative_responses == {("obd:0x7E8", 0x09, 0x12): 2}


def test_bitmaps_are_remembered_per_responder(profile: Profile) -> None:
    _, _, decoder = decode_all(profile, [
        RawFrame(1.0, 0x7E8, bytes([0x06, 0x41, 0x00, 0x00, 0x18, 0x00, 0x01, 0xAA]), False),
        RawFrame(1.0, 0x7E9, bytes([0x06, 0x41, 0x00, 0x00, 0x08, 0x00, 0x00, 0xAA]), False),
    ])
    assert decoder.supported == {"obd:0x7E8": {0x0C, 0x0D, 0x20}, "obd:0x7E9": {0x0D}}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x7E8, 0x7E9, 0x7DF, 0x7E0, 0x18DAF110, 0x100]),
                          st.binary(min_size=0, max_size=12),
                          st.floats(min_value=0, max_value=5, allow_nan=False)), max_size=40))
def test_random_frames_never_raise(profile: Profile, rows: list[tuple[int, bytes, float]]) -> None:
    counters = Counters()
    decoder = ObdDecoder(profile, counters)
    for can_id, data, ts in rows:
        for item in decoder.feed(RawFrame(ts, can_id, data, can_id > 0x7FF)):
            assert isinstance(item, Sample | ObdDtcReport | VehicleId)
    decoder.finish(10.0)
    assert set(counters.decode_errors()) <= set(DECODE_ERROR_DOCS)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_random_payloads_in_valid_isotp_never_raise(profile: Profile, payload: bytes) -> None:
    from edge_agent.decoding.obd.isotp import segment

    counters = Counters()
    decoder = ObdDecoder(profile, counters)
    for i, data in enumerate(segment(payload)):
        decoder.feed(RawFrame(i * 0.001, 0x7E8, data, False))
    assert set(counters.decode_errors()) <= set(DECODE_ERROR_DOCS)


def test_van_capture_decodes_cleanly(profile: Profile) -> None:
    out, counters, _ = decode_all(profile, read_candump(SIM / "van_obd2.log"))
    assert counters.decode_errors() == {}
    samples = [s for s in out if isinstance(s, Sample)]
    rpm = [s.value for s in samples if s.signal == "engine_speed"]
    speeds = {s.source for s in samples if s.signal == "wheel_speed"}
    assert min(rpm) == 0.0 and 750.0 in rpm and max(rpm) > 2500.0
    assert speeds == {"obd:0x7E8", "obd:0x7E9"}  # engine and gearbox both report speed
    odometer = [s.value for s in samples if s.signal == "odometer"]
    assert odometer == sorted(odometer) and odometer[-1] - odometer[0] > 500.0  # ~0.7 km driven
    reports = [r for r in out if isinstance(r, ObdDtcReport)]
    codes = {(r.status, d.code) for r in reports for d in r.dtcs}
    assert codes == {("stored", "P0301"), ("pending", "P0420")}
    assert [v.vin for v in out if isinstance(v, VehicleId)] == ["WF0XXXTTGXKA12345"]


def test_29bit_capture_decodes(profile: Profile) -> None:
    out, counters, _ = decode_all(profile, read_candump(SIM / "obd2_29bit.log"))
    assert counters.decode_errors() == {}
    sources = {s.source for s in out if isinstance(s, Sample)}
    assert sources == {"obd:0x18DAF110", "obd:0x18DAF111"}
    assert any(isinstance(v, VehicleId) for v in out)


def test_real_obd_captures_never_crash(profile: Profile) -> None:
    """Any openly licensed OBD-II capture placed in tests/data/real/can/ decodes without raising."""
    paths = sorted(REAL.glob("*obd*")) if REAL.is_dir() else []
    if not paths:
        pytest.skip("no real OBD-II capture in tests/data/real/can/ yet")
    for path in paths:
        _, counters, _ = decode_all(profile, read_candump(path))
        assert set(counters.decode_errors()) <= set(DECODE_ERROR_DOCS), path.name
