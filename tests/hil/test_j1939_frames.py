"""The J1939 frame builders: identifiers, TP.CM bytes, packet timing and padding, DM1 framing."""

from __future__ import annotations

import pytest

from edge_agent.counters import Counters
from edge_agent.decoding.j1939.dm import parse_dm
from edge_agent.decoding.j1939.tp import TransportReassembler
from edge_agent.model import J1939Dtc, Lamps, LampState
from hil.j1939_frames import PGN_DM1, PGN_DM2, bam_frames, can_id, dm1_frames, encode_dm, rts_cts_frames

AMBER = Lamps(LampState.OFF, LampState.ON, LampState.OFF, LampState.OFF)
DTCS = (J1939Dtc(110, 0, 3), J1939Dtc(3226, 2, 1), J1939Dtc(520201, 14, 7))


def test_can_id_pdu1_and_pdu2() -> None:
    assert can_id(6, PGN_DM1, 0x00) == 0x18FECA00  # PDU2: PS is the group extension
    assert can_id(7, 0xEC00, 0x00, 0xF9) == 0x1CECF900  # PDU1: PS is the destination
    assert can_id(6, 0xEB00, 0x3D) == 0x18EBFF3D
    assert can_id(3, 0x1F004, 0x00) == 0x0DF00400  # data page bit


def test_bam_frames_layout_timing_and_padding() -> None:
    payload = bytes(range(1, 21))
    frames = bam_frames(100.0, 0x0B, PGN_DM1, payload)
    assert frames[0].arbitration_id == 0x18ECFF0B
    assert frames[0].data == bytes((32, 20, 0, 3, 0xFF, 0xCA, 0xFE, 0x00))
    assert [f.arbitration_id for f in frames[1:]] == [0x18EBFF0B] * 3
    assert [f.timestamp for f in frames] == [100.0, 100.05, 100.1, 100.15]
    assert frames[3].data == bytes((3, 15, 16, 17, 18, 19, 20, 0xFF))
    assert all(len(f.data) == 8 and f.is_extended for f in frames)


@pytest.mark.parametrize("size", [0, 8, 1786])
def test_tp_refuses_sizes_outside_9_to_1785(size: int) -> None:
    with pytest.raises(ValueError, match="9-1785"):
        bam_frames(0.0, 0, PGN_DM1, bytes(size))
    with pytest.raises(ValueError, match="9-1785"):
        rts_cts_frames(0.0, 0, 0xF9, PGN_DM1, bytes(size))


def test_rts_cts_exchange_as_both_nodes_send_it() -> None:
    payload = bytes(range(30))  # 5 packets
    frames = rts_cts_frames(1.0, 0x00, 0xF9, PGN_DM2, payload, packets_per_cts=2)
    kinds = [(hex(f.arbitration_id), f.data[0]) for f in frames]
    rts, cts, dt, eoma = ("0x1cecf900", 16), ("0x1cec00f9", 17), "0x1cebf900", ("0x1cec00f9", 19)
    assert kinds == [
        rts, cts, (dt, 1), (dt, 2), (cts[0], 17), (dt, 3), (dt, 4), (cts[0], 17), (dt, 5), eoma,
    ]
    assert frames[0].data == bytes((16, 30, 0, 5, 2, 0xCB, 0xFE, 0x00))
    assert [f.data[1:3] for f in frames if f.data[0] == 17 and f.arbitration_id == 0x1CEC00F9] == [
        b"\x02\x01", b"\x02\x03", b"\x01\x05"
    ]
    assert frames[-1].data == bytes((19, 30, 0, 5, 0xFF, 0xCB, 0xFE, 0x00))
    assert [round(f.timestamp - frames[0].timestamp, 6) for f in frames[:3]] == [0.0, 0.01, 0.02]


def test_rts_cts_argument_checks() -> None:
    with pytest.raises(ValueError, match="packets_per_cts"):
        rts_cts_frames(0.0, 0, 0xF9, PGN_DM2, bytes(20), packets_per_cts=0)
    with pytest.raises(ValueError, match="retransmit"):
        rts_cts_frames(0.0, 0, 0xF9, PGN_DM2, bytes(20), retransmit=4)


@pytest.mark.parametrize("dtcs", [(), DTCS[:1]])
def test_dm1_single_frame_for_zero_or_one_dtc(dtcs: tuple[J1939Dtc, ...]) -> None:
    frames = dm1_frames(5.0, 0x00, AMBER, dtcs)
    assert len(frames) == 1 and frames[0].arbitration_id == 0x18FECA00 and len(frames[0].data) == 8
    assert frames[0].data[6:] == b"\xff\xff"
    assert parse_dm("DM1", 5.0, 0, frames[0].data).dtcs == dtcs


def test_dm1_with_several_dtcs_goes_over_bam_and_reassembles() -> None:
    frames = dm1_frames(5.0, 0x00, AMBER, DTCS)
    assert frames[0].data[0] == 32 and len(frames) == 1 + 2  # 14 bytes: 2 packets
    r = TransportReassembler(c := Counters())
    out = [m for f in frames for m in r.feed(f)]
    assert [m.data for m in out] == [encode_dm(AMBER, DTCS)] and c.decode_errors() == {}
    assert parse_dm("DM1", out[0].timestamp, 0, out[0].data).dtcs == DTCS


def test_dm2_pgn_is_selectable() -> None:
    assert dm1_frames(1.0, 0x00, AMBER, DTCS[:1], pgn=PGN_DM2)[0].arbitration_id == 0x18FECB00
