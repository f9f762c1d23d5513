"""The OBD-II ECU simulator, the poller against it over a real python-can virtual bus, and the recorder."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import can
import pytest

from edge_agent.counters import Counters
from edge_agent.decoding.obd.decoder import ObdDecoder, ObdResult
from edge_agent.decoding.obd.isotp import flow_control, single_frame
from edge_agent.decoding.obd.poller import ObdPoller, PollerSettings
from edge_agent.model import RawFrame, Sample, VehicleId
from firmware_profiles import Profile, load_profile
from hil.obd_ecu import ObdEcu, ObdVehicleState, VirtualBusEcus
from hil.record_obd import van_frames, with_request_id, write_candump

SIM = Path(__file__).resolve().parents[1] / "data" / "sim"
VIN = "1FAHP3FS12CR12345"
RUNNING = {"engine_speed": 1726.0, "wheel_speed": 50.0, "coolant_temp": 83.0}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("light_obd2")


def request(payload: bytes, can_id: int = 0x7DF, ts: float = 1.0, extended: bool = False) -> RawFrame:
    return RawFrame(ts, can_id, single_frame(payload), extended)


def test_answers_functional_and_physical_mode_01(profile: Profile) -> None:
    ecu = ObdEcu(profile, 0, state=ObdVehicleState(True, dict(RUNNING)))
    ecu.on_frame(request(b"\x01\x0c\x0d"))
    ecu.on_frame(request(b"\x01\x05", can_id=0x7E0, ts=2.0))
    ecu.on_frame(request(b"\x01\x05", can_id=0x7E1, ts=3.0))  # another ECU's physical id
    out = ecu.tick(10.0)
    assert [(f.timestamp, f.arbitration_id, f.data) for f in out] == [
        (1.005, 0x7E8, bytes([0x06, 0x41, 0x0C, 0x1A, 0xF8, 0x0D, 0x32, 0xAA])),
        (2.005, 0x7E8, bytes([0x03, 0x41, 0x05, 0x7B, 0xAA, 0xAA, 0xAA, 0xAA])),
    ]


def test_bitmaps_and_silence_for_unsupported_pids(profile: Profile) -> None:
    ecu = ObdEcu(profile, 1, pids={0x0D})
    ecu.on_frame(request(b"\x01\x00"))
    ecu.on_frame(request(b"\x01\x0c", ts=2.0))  # J1979: nothing supported -> no answer
    assert [f.data for f in ecu.tick(5.0)] == [bytes([0x06, 0x41, 0x00, 0x00, 0x08, 0x00, 0x00, 0xAA])]


def test_dtcs_and_unsupported_services(profile: Profile) -> None:
    ecu = ObdEcu(profile, 0, state=ObdVehicleState(stored=("P0301", "U0100")))
    ecu.on_frame(request(b"\x03"))
    ecu.on_frame(request(b"\x04", ts=2.0))  # functional, unsupported: no negative answer
    ecu.on_frame(request(b"\x22\xf1\x90", can_id=0x7E0, ts=3.0))  # physical: 7F 22 11
    assert [f.data[:6] for f in ecu.tick(5.0)] == [
        bytes([0x06, 0x43, 0x02, 0x03, 0x01, 0xC1]), bytes([0x03, 0x7F, 0x22, 0x11, 0xAA, 0xAA])
    ]


@pytest.mark.parametrize(("behaviour", "expected"), [("silent", []), ("negative", [bytes([0x7F, 0x01, 0x22])]),
                                                     ("slow", [bytes([0x7F, 0x01, 0x78]), bytes([0x41, 0x0D, 50])])])
def test_behaviours(profile: Profile, behaviour: str, expected: list[bytes]) -> None:
    ecu = ObdEcu(profile, 0, state=ObdVehicleState(True, dict(RUNNING)), behaviour=behaviour, slow_delay_s=0.3)
    ecu.on_frame(request(b"\x01\x0d"))
    out = ecu.tick(1.2) + ecu.tick(2.0)
    assert [f.data[1 : 1 + f.data[0]] for f in out] == expected
    if behaviour == "slow":  # "pending" at once, the answer slow_delay_s later
        assert [f.timestamp for f in out] == pytest.approx([1.005, 1.305])


def test_ignition_off_is_silent(profile: Profile) -> None:
    ecu = ObdEcu(profile, 0, vin=VIN, state=ObdVehicleState(ignition=False))
    ecu.on_frame(request(b"\x01\x00"))
    ecu.on_frame(request(b"\x09\x02"))
    assert ecu.tick(5.0) == []


def test_vin_waits_for_flow_control_and_honours_block_size(profile: Profile) -> None:
    ecu = ObdEcu(profile, 0, vin=VIN)
    ecu.on_frame(request(b"\x09\x02"))
    (ff,) = ecu.tick(1.5)
    assert ff.data[:5] == bytes([0x10, 0x14, 0x49, 0x02, 0x01])
    assert ecu.tick(1.9) == []  # no consecutive frame before flow control
    ecu.on_frame(RawFrame(2.0, 0x7E0, flow_control(block_size=1, st_min=10), False))
    (cf1,) = ecu.tick(2.5)
    assert cf1.data[0] == 0x21 and cf1.timestamp == pytest.approx(2.010)
    assert ecu.tick(2.9) == []  # BS=1: wait for the next flow control
    ecu.on_frame(RawFrame(3.0, 0x7E0, flow_control(), False))
    (cf2,) = ecu.tick(3.5)
    assert cf2.data[0] == 0x22


def test_no_flow_control_gives_up_after_n_bs(profile: Profile) -> None:
    ecu = ObdEcu(profile, 0, vin=VIN)
    ecu.on_frame(request(b"\x09\x02"))
    ecu.tick(1.5)
    ecu.tick(3.0)  # N_Bs (1 s) has passed: the transfer is abandoned
    ecu.on_frame(RawFrame(3.1, 0x7E0, flow_control(), False))
    assert ecu.tick(4.0) == []
    ecu.on_frame(request(b"\x01\x00", ts=4.0))  # and it answers new requests again
    assert len(ecu.tick(5.0)) == 1


def _bus_run(
    profile: Profile, ecus: list[ObdEcu], seconds: float, extended: bool
) -> tuple[ObdPoller, list[RawFrame], list[ObdResult]]:
    """Poller + decoder in this thread, ECUs in VirtualBusEcus' thread, over one virtual channel."""
    channel = f"obd-{uuid.uuid4().hex}"
    prof = with_request_id(profile, 0x18DB33F1) if extended else profile
    # P2 widened from 50 ms: two Python threads on a loaded CI box are slower than an ECU.
    poller = ObdPoller(prof, Counters(), PollerSettings(p2_s=0.25, off_probe_interval_s=0.5))
    decoder = ObdDecoder(prof, Counters())
    frames: list[RawFrame] = []
    results: list[ObdResult] = []
    bus = can.Bus(interface="virtual", channel=channel)

    def send(out: list[RawFrame]) -> None:
        for f in out:
            bus.send(can.Message(arbitration_id=f.arbitration_id, data=f.data, is_extended_id=f.is_extended))

    try:
        with VirtualBusEcus(ecus, channel):
            end = time.time() + seconds
            while time.time() < end:
                msg = bus.recv(timeout=0.002)
                if msg is not None:
                    frame = RawFrame(msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id)
                    frames.append(frame)
                    results.extend(decoder.feed(frame))
                    send(poller.on_frame(frame))
                send(poller.tick(time.time()))
    finally:
        bus.shutdown()
    return poller, frames, results


@pytest.mark.slow
@pytest.mark.parametrize("extended", [False, True], ids=["11-bit", "29-bit"])
def test_poller_against_simulator_over_virtual_bus(profile: Profile, extended: bool) -> None:
    engine_pids = {s.pid for s in profile.signals.values() if s.pid not in (None, 0x46)}
    state = ObdVehicleState(True, dict(RUNNING))
    engine = ObdEcu(profile, 0, extended=extended, pids=engine_pids, vin=VIN, state=state)
    gearbox = ObdEcu(profile, 1, extended=extended, pids={0x0D}, state=state)
    poller, frames, results = _bus_run(profile, [engine, gearbox], 3.0, extended)

    assert [p for _, p in list(poller.sent)[:2]] == [b"\x01\x00", b"\x01\x20"]  # discovery first
    pid_requests = [r for r in (p for _, _, p in engine.requests) if r[0] == 0x01 and r[1] % 0x20]
    assert pid_requests and all(len(r) - 1 <= 6 for r in pid_requests)
    asked = {pid for r in pid_requests for pid in r[1:]}
    assert 0x46 not in asked and asked == engine_pids | {0x0D}  # supported ones only, all of them
    # The engine's multi-frame answers (VIN, 6-PID responses) went on only after our flow control,
    # which it received over the bus on its physical request id.
    first_frames = [f for f in frames if f.arbitration_id == engine.response_id and f.data[0] >> 4 == 1]
    assert first_frames and len(engine.flow_controls) == len(first_frames)
    assert not [f for f in frames if f.arbitration_id == gearbox.response_id and f.data[0] >> 4 == 1]
    assert [v.vin for v in results if isinstance(v, VehicleId)] == [VIN]
    rpm = {s.value for s in results if isinstance(s, Sample) and s.signal == "engine_speed"}
    assert rpm == {1726.0}
    sources = {s.source for s in results if isinstance(s, Sample) and s.signal == "wheel_speed"}
    assert len(sources) == 2


@pytest.mark.slow
def test_no_polling_with_ignition_off_over_virtual_bus(profile: Profile) -> None:
    engine = ObdEcu(profile, 0, vin=VIN, state=ObdVehicleState(ignition=False))
    poller, frames, results = _bus_run(profile, [engine], 1.6, False)
    assert frames == [] and results == [] and poller.state == ObdPoller.OFF  # the ECU never spoke
    assert {p for _, p in poller.sent} == {b"\x01\x00"} and 2 <= len(poller.sent) <= 5  # 0.5 s probes


@pytest.mark.parametrize(("name", "kwargs"), [("van_obd2.log", {}), ("obd2_29bit.log", {"seconds": 20.0,
                                                                                       "extended": True})])
def test_recorder_is_deterministic(tmp_path: Path, name: str, kwargs: dict[str, object]) -> None:
    out = tmp_path / name
    write_candump(van_frames(**kwargs), out)  # type: ignore[arg-type]
    assert out.read_bytes() == (SIM / name).read_bytes()
