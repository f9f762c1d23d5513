"""ISO-TP reassembly: single/first/consecutive frames, SN wrap, N_Cr timeouts, bad PCI, interleaving."""

from __future__ import annotations

import pytest

from edge_agent.counters import Counters
from edge_agent.decoding.obd.isotp import (
    MAX_PAYLOAD,
    IsoTpReassembler,
    is_request_id,
    is_response_id,
    physical_request_id,
    response_id_for,
    segment,
    single_frame,
)
from edge_agent.model import RawFrame


def frames(payload: bytes, can_id: int = 0x7E8, t0: float = 10.0, gap: float = 0.001) -> list[RawFrame]:
    return [RawFrame(t0 + i * gap, can_id, data, False) for i, data in enumerate(segment(payload))]


def feed_all(r: IsoTpReassembler, fs: list[RawFrame]) -> list[bytes]:
    return [m.payload for f in fs if (m := r.feed(f)) is not None]


def test_single_frame_strips_padding_by_length() -> None:
    r = IsoTpReassembler(Counters())
    for pad in (0x00, 0x55, 0xAA, 0xCC):
        msg = r.feed(RawFrame(1.0, 0x7E8, bytes([0x04, 0x41, 0x0C, 0x1A, 0xF8, pad, pad, pad]), False))
        assert msg is not None and msg.payload == bytes([0x41, 0x0C, 0x1A, 0xF8])


def test_vin_first_frame_and_consecutive_frames() -> None:
    payload = bytes([0x49, 0x02, 0x01]) + b"1FAHP3FS12CR12345"
    fs = frames(payload)
    assert [f.data[0] >> 4 for f in fs] == [1, 2, 2]
    r = IsoTpReassembler(c := Counters())
    assert feed_all(r, fs) == [payload]
    assert r.open_sessions == 0 and c.decode_errors() == {}


def test_sequence_number_wraps_from_15_to_0() -> None:
    payload = bytes(range(256)) * 2  # 512 bytes: 73 consecutive frames, SN wraps four times
    fs = frames(payload)
    sns = [f.data[0] & 0xF for f in fs[1:]]
    assert sns[:17] == [*range(1, 16), 0, 1]
    assert feed_all(IsoTpReassembler(Counters()), fs) == [payload]


def test_wrong_sequence_number_aborts_and_counts() -> None:
    fs = frames(bytes(30))
    bad = RawFrame(fs[2].timestamp, 0x7E8, bytes([0x23]) + fs[2].data[1:], False)  # SN 3 instead of 2
    r = IsoTpReassembler(c := Counters())
    assert feed_all(r, [fs[0], fs[1], bad, *fs[3:]]) == []
    assert c.decode_errors()["obd_isotp"] >= 2  # the bad SN, then the orphaned rest
    assert r.open_sessions == 0


def test_consecutive_frame_after_n_cr_times_out() -> None:
    fs = frames(bytes(20), gap=0.5)
    late = RawFrame(fs[1].timestamp + 1.2, 0x7E8, fs[2].data, False)  # > 1000 ms after the previous
    r = IsoTpReassembler(c := Counters())
    assert feed_all(r, [fs[0], fs[1], late]) == []
    assert c.decode_errors()["obd_isotp_timeout"] == 1


def test_expire_drops_stale_sessions_only() -> None:
    r = IsoTpReassembler(c := Counters())
    r.feed(frames(bytes(20), can_id=0x7E8, t0=1.0)[0])
    r.feed(frames(bytes(20), can_id=0x7E9, t0=1.8)[0])
    assert r.expire(2.5) == 1 and r.open_sessions == 1
    assert c.decode_errors() == {"obd_isotp_timeout": 1}


def test_interleaved_responders_reassemble_separately() -> None:
    a = frames(b"A" * 20, can_id=0x7E8)
    b = frames(b"B" * 15, can_id=0x7E9)
    mixed = [a[0], b[0], a[1], b[1], a[2], b[2]]
    r = IsoTpReassembler(c := Counters())
    got = {m.arbitration_id: m.payload for f in mixed if (m := r.feed(f)) is not None}
    assert got == {0x7E8: b"A" * 20, 0x7E9: b"B" * 15}
    assert c.decode_errors() == {}


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no PCI at all
        bytes([0x00, 0x41]),  # SF length 0 on classic CAN
        bytes([0x07, 0x41, 0x0C]),  # SF claims 7 bytes, carries 2
        bytes([0x10, 0x05, 1, 2, 3, 4, 5, 6]),  # FF announcing <= 7 bytes
        bytes([0x10, 0x20, 1]),  # FF shorter than 8 bytes
        bytes([0x21, 1, 2, 3]),  # CF with no session
        bytes([0x45, 1, 2, 3, 4, 5, 6, 7]),  # PCI type 4 does not exist
        bytes([0xF0] * 8),
    ],
)
def test_garbage_pci_is_counted_not_raised(data: bytes) -> None:
    r = IsoTpReassembler(c := Counters())
    assert r.feed(RawFrame(1.0, 0x7E8, data, False)) is None
    assert c.decode_errors() == {"obd_isotp": 1}


def test_can_fd_escapes_do_not_crash() -> None:
    r = IsoTpReassembler(c := Counters())
    fd_sf = bytes([0x00, 10]) + bytes(range(10)) + bytes(4)  # 16-byte FD frame, SF_DL escape
    msg = r.feed(RawFrame(1.0, 0x7E8, fd_sf, False))
    assert msg is not None and msg.payload == bytes(range(10))
    big_ff = bytes([0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0xAA, 0xAA])  # 65536 bytes: over our bound
    assert r.feed(RawFrame(1.0, 0x7E9, big_ff, False)) is None
    assert c.decode_errors() == {"obd_isotp": 1}


def test_session_table_is_bounded() -> None:
    r = IsoTpReassembler(c := Counters(), max_sessions=2)
    for i, can_id in enumerate((0x7E8, 0x7E9, 0x7EA)):
        r.feed(frames(bytes(20), can_id=can_id, t0=1.0 + i * 0.001)[0])
    assert r.open_sessions == 2
    assert c.decode_errors() == {"obd_isotp_overflow": 1}


def test_flow_control_is_recorded_not_emitted() -> None:
    r = IsoTpReassembler(Counters())
    assert r.feed(RawFrame(1.0, 0x7E0, bytes([0x30, 0x00, 0x0A, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]), False)) is None
    fc = r.flow_controls[(0x7E0, False)]
    assert (fc.flow_status, fc.block_size, fc.st_min) == (0, 0, 10)


def test_segment_limits() -> None:
    assert single_frame(b"\x01\x00") == bytes([0x02, 0x01, 0x00, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA])
    with pytest.raises(ValueError):
        segment(bytes(MAX_PAYLOAD + 1))
    assert len(segment(bytes(MAX_PAYLOAD))) == 1 + (MAX_PAYLOAD - 6 + 6) // 7


def test_addressing_11_and_29_bit() -> None:
    assert [is_response_id(i, False) for i in (0x7DF, 0x7E0, 0x7E8, 0x7EF, 0x7F0)] == [False, False, True, True, False]
    assert is_response_id(0x18DAF110, True) and not is_response_id(0x18DA10F1, True)
    assert is_request_id(0x7DF, False) and is_request_id(0x7E0, False) and not is_request_id(0x7E8, False)
    assert is_request_id(0x18DB33F1, True) and is_request_id(0x18DA10F1, True)
    assert physical_request_id(0x7E9, False) == 0x7E1
    assert physical_request_id(0x18DAF110, True) == 0x18DA10F1
    assert response_id_for(0x18DA10F1, True) == 0x18DAF110 and response_id_for(0x7E0, False) == 0x7E8


def test_single_frame_during_reception_ends_it() -> None:
    fs = frames(bytes(20))
    sf = RawFrame(fs[0].timestamp + 0.0005, 0x7E8, bytes([0x02, 0x41, 0x00, 0, 0, 0, 0, 0]), False)
    r = IsoTpReassembler(c := Counters())
    assert feed_all(r, [fs[0], sf, *fs[1:]]) == [bytes([0x41, 0x00])]
    assert c.decode_errors()["obd_isotp"] == 1 + (len(fs) - 1)  # the lost session, then orphan CFs
