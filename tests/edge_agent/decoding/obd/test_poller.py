"""ObdPoller as a pure state machine on simulated time, against the hil OBD ECU simulator."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.counters import Counters
from edge_agent.decoding.obd.decoder import ObdDecoder
from edge_agent.decoding.obd.poller import ObdPoller, PollerSettings, drive
from edge_agent.model import RawFrame, Sample, VehicleId
from firmware_profiles import Profile, load_profile
from hil.obd_ecu import ObdEcu, ObdVehicleState, simulate
from hil.record_obd import with_request_id

RUNNING = {"engine_speed": 800.0, "wheel_speed": 20.0, "coolant_temp": 85.0, "odometer": 1_000_000.0}
VIN = "1FAHP3FS12CR12345"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("light_obd2")


def running(**kw: object) -> ObdVehicleState:
    return ObdVehicleState(True, dict(RUNNING), **kw)  # type: ignore[arg-type]


def run(poller: ObdPoller, ecus: list[ObdEcu], seconds: float, on_step=None) -> list[RawFrame]:
    return list(simulate(poller, ecus, 100.0, seconds, 0.001, on_step))


def mode01(poller: ObdPoller) -> list[bytes]:
    """Mode 01 requests after discovery and probes (the polling ones)."""
    return [p for _, p in poller.sent if p[0] == 0x01 and p[1] != 0x00 and p[1] % 0x20 != 0]


def test_discovery_walks_bitmaps_while_the_next_one_is_supported(profile: Profile) -> None:
    poller = ObdPoller(profile)
    run(poller, [ObdEcu(profile, 0, state=running())], 0.5)
    bitmaps = [p for _, p in poller.sent if p[0] == 0x01 and len(p) == 2 and p[1] % 0x20 == 0]
    assert bitmaps[:6] == [bytes([0x01, b]) for b in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0)]
    assert bytes([0x01, 0xC0]) not in bitmaps  # the 0xA0 bitmap does not announce 0xC0
    assert poller.discovered and poller.state == ObdPoller.POLLING
    assert set(poller.polled_pids) == {s.pid for s in profile.signals.values()}


def test_at_most_six_pids_per_request_and_each_pid_once_per_cycle(profile: Profile) -> None:
    poller = ObdPoller(profile)
    run(poller, [ObdEcu(profile, 0, state=running())], 3.5)
    requests = mode01(poller)
    assert requests and all(len(r) - 1 <= 6 for r in requests)
    per_cycle = len(poller.polled_pids)
    asked = [pid for r in requests[:3] for pid in r[1:]]
    assert sorted(asked) == sorted(poller.polled_pids) and len(asked) == per_cycle


def test_profile_limit_below_six_is_respected(profile: Profile) -> None:
    small = replace(profile, obd=replace(profile.obd, max_pids_per_request=2))  # type: ignore[type-var]
    poller = ObdPoller(small)
    run(poller, [ObdEcu(small, 0, state=running())], 1.5)
    assert mode01(poller) and all(len(r) - 1 <= 2 for r in mode01(poller))


def test_only_supported_pids_are_polled(profile: Profile) -> None:
    poller = ObdPoller(profile)
    engine = ObdEcu(profile, 0, pids={0x0C, 0x05}, state=running())
    gearbox = ObdEcu(profile, 1, pids={0x0D}, state=running())
    frames = run(poller, [engine, gearbox], 3.0)
    assert {pid for r in mode01(poller) for pid in r[1:]} == {0x0C, 0x05, 0x0D}
    assert poller.supported_by == {0x7E8: {0x05, 0x0C}, 0x7E9: {0x0D}}
    decoder = ObdDecoder(profile, Counters())
    samples = [s for f in frames for s in decoder.feed(f) if isinstance(s, Sample)]
    assert {(s.signal, s.source) for s in samples} == {
        ("engine_speed", "obd:0x7E8"), ("coolant_temp", "obd:0x7E8"), ("wheel_speed", "obd:0x7E9")
    }


def test_no_polling_while_the_vehicle_sleeps_then_wakes(profile: Profile) -> None:
    poller = ObdPoller(profile, settings=PollerSettings(off_probe_interval_s=5.0))
    ecu = ObdEcu(profile, 0, state=ObdVehicleState(ignition=False))

    def wake(i: int, t: float) -> None:
        if t >= 20.0:
            ecu.state = running()

    run(poller, [ecu], 24.0, wake)
    before = [p for ts, p in poller.sent if ts < 120.0]
    assert before == [bytes([0x01, 0x00])] * len(before) and 4 <= len(before) <= 5  # slow probes only
    probe_times = [ts for ts, _ in poller.sent if ts < 120.0]
    assert all(b - a >= 5.0 for a, b in pairwise(probe_times))
    assert poller.state == ObdPoller.POLLING and mode01(poller)


def test_engine_stopped_with_key_on_is_not_polled(profile: Profile) -> None:
    poller = ObdPoller(profile, settings=PollerSettings(off_probe_interval_s=2.0))
    ecu = ObdEcu(profile, 0, state=ObdVehicleState(True, {**RUNNING, "engine_speed": 0.0}))
    run(poller, [ecu], 10.0)
    assert poller.state == ObdPoller.OFF and poller.engine_running is False
    # One polling cycle found rpm 0; after that only probes, which ask for 0x0C too.
    later = [p for ts, p in poller.sent if ts > 102.0]
    assert later and set(later) == {bytes([0x01, 0x00, 0x0C])}


def test_caller_ignition_flag_overrides_engine_speed(profile: Profile) -> None:
    off = ObdPoller(profile, ignition=False)
    run(off, [ObdEcu(profile, 0, state=running())], 3.0)
    assert off.state == ObdPoller.OFF and mode01(off) == []
    on = ObdPoller(profile, ignition=True)
    run(on, [ObdEcu(profile, 0, state=ObdVehicleState(True, {**RUNNING, "engine_speed": 0.0}))], 3.0)
    assert on.state == ObdPoller.POLLING and len(mode01(on)) >= 6


def test_vin_multi_frame_gets_flow_control_11_and_29_bit(profile: Profile) -> None:
    for extended, fc_id in ((False, 0x7E0), (True, 0x18DA10F1)):
        prof = with_request_id(profile, 0x18DB33F1) if extended else profile
        poller = ObdPoller(prof, counters := Counters())
        ecu = ObdEcu(prof, 0, extended=extended, vin=VIN, state=running())
        frames = run(poller, [ecu], 1.5)
        fcs = [f for f in frames if f.arbitration_id == fc_id]
        assert fcs and all(f.data[:3] == b"\x30\x00\x00" and f.is_extended == extended for f in fcs)
        assert len(ecu.flow_controls) == len(fcs) == counters.get("obd_flow_controls")
        decoder = ObdDecoder(prof, Counters())
        vins = [v for f in frames for v in decoder.feed(f) if isinstance(v, VehicleId)]
        assert [v.vin for v in vins] == [VIN] and poller.vin_seen


def test_without_flow_control_the_vin_never_completes(profile: Profile) -> None:
    class Deaf(ObdPoller):
        def on_frame(self, frame: RawFrame) -> list[RawFrame]:
            super().on_frame(frame)
            return []  # swallow the flow control

    poller = Deaf(profile)
    ecu = ObdEcu(profile, 0, vin=VIN, state=running())
    frames = run(poller, [ecu], 3.0)
    counters = Counters()
    decoder = ObdDecoder(profile, counters)
    assert not [v for f in frames for v in decoder.feed(f) if isinstance(v, VehicleId)]
    decoder.finish(frames[-1].timestamp)
    assert counters.decode_errors().get("obd_isotp_timeout", 0) >= 1


def test_response_pending_waits_for_p2_star(profile: Profile) -> None:
    poller = ObdPoller(profile, counters := Counters())
    ecu = ObdEcu(profile, 0, state=running(), behaviour="slow", slow_delay_s=0.4)
    run(poller, [ecu], 3.0)
    gaps = [b - a for (a, _), (b, _) in pairwise(poller.sent)]
    assert poller.discovered and mode01(poller)
    assert min(gaps[:5]) >= 0.4  # each request waited for the late answer instead of moving on
    assert counters.get("obd_request_timeouts") == 0


def test_negative_ecu_is_not_polled_for_pids(profile: Profile) -> None:
    poller = ObdPoller(profile)
    ecu = ObdEcu(profile, 0, state=running(), behaviour="negative")
    frames = run(poller, [ecu], 3.0)
    assert poller.supported == frozenset() and mode01(poller) == []
    counters = Counters()
    decoder = ObdDecoder(profile, counters)
    for f in frames:
        decoder.feed(f)
    assert counters.decode_errors()["obd_negative_response"] >= 1


def test_vehicle_falling_silent_stops_polling(profile: Profile) -> None:
    poller = ObdPoller(profile, counters := Counters(), settings=PollerSettings(off_probe_interval_s=10.0))
    ecu = ObdEcu(profile, 0, vin=VIN, state=running())  # with a VIN every request is answered while awake

    def sleep(i: int, t: float) -> None:
        if t >= 2.0:
            ecu.state = ObdVehicleState(ignition=False)

    run(poller, [ecu], 8.0, sleep)
    assert poller.state == ObdPoller.OFF
    assert counters.get("obd_request_timeouts") == PollerSettings().timeouts_before_off
    assert not [ts for ts, _ in poller.sent if ts > 103.0]  # nothing more until the next probe


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x7E8, 0x7E9, 0x7DF, 0x7E0]), st.binary(max_size=8)), max_size=30))
def test_random_frames_never_break_the_poller(profile: Profile, rows: list[tuple[int, bytes]]) -> None:
    poller = ObdPoller(profile)
    now = 0.0
    for can_id, data in rows:
        now += 0.01
        poller.tick(now)
        for fc in poller.on_frame(RawFrame(now, can_id, data, False)):
            assert fc.arbitration_id in range(0x7E0, 0x7E8) and fc.data[0] == 0x30
    assert poller.state in (ObdPoller.DISCOVERY, ObdPoller.POLLING, ObdPoller.OFF)


def test_drive_sends_flow_control_then_requests(profile: Profile) -> None:
    class ListSink:
        def __init__(self) -> None:
            self.frames: list[RawFrame] = []

        def send(self, frame: RawFrame) -> None:
            self.frames.append(frame)

    sink = ListSink()
    poller = ObdPoller(profile)
    assert drive(poller, [], sink, 0.0) == 1 and sink.frames[0].data[:3] == b"\x02\x01\x00"
    ff = RawFrame(0.01, 0x7E8, bytes([0x10, 0x0A, 0x41, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]), False)
    assert drive(poller, [ff], sink, 0.011) == 1  # flow control; the request is still open
    assert sink.frames[1].arbitration_id == 0x7E0 and sink.frames[1].data[:3] == b"\x30\x00\x00"


def test_no_flow_control_for_answers_to_someone_elses_request(profile: Profile) -> None:
    poller = ObdPoller(profile)
    ff = RawFrame(0.0, 0x7E8, bytes([0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x46, 0x41]), False)
    assert poller.on_frame(ff) == []  # nothing asked yet: a workshop tester's exchange
    poller.tick(1.0)
    assert [f.arbitration_id for f in poller.on_frame(RawFrame(1.01, 0x7E8, ff.data, False))] == [0x7E0]
