"""J1939-21 transport reassembly: BAM and RTS/CTS as a passive monitor, every error path and timeout."""

from __future__ import annotations

import pytest

from edge_agent.counters import Counters
from edge_agent.decoding.j1939.tp import (
    CM_ABORT,
    CM_BAM,
    CM_CTS,
    CM_EOMA,
    CM_RTS,
    MAX_MESSAGE_SIZE,
    MAX_SESSIONS,
    PGN_TP_CM,
    PGN_TP_DT,
    T1_S,
    T2_S,
    T3_S,
    T4_S,
    ReassembledMessage,
    TransportReassembler,
)
from edge_agent.model import RawFrame
from hil.j1939_frames import bam_frames, can_id, data_packet, rts_cts_frames

PGN_SOFT = 65242
PAYLOAD = bytes(range(1, 21))  # 20 bytes: 3 packets, the last one carrying 6 bytes and one 0xFF pad
ENGINE, TELEMATICS = 0x00, 0xF9


def feed_all(r: TransportReassembler, frames: list[RawFrame]) -> list[ReassembledMessage]:
    return [m for f in frames for m in r.feed(f)]


def cm(ts: float, sa: int, da: int, data: bytes) -> RawFrame:
    return RawFrame(ts, can_id(7, PGN_TP_CM, sa, da), data)


def dt(ts: float, sa: int, da: int, seq: int, payload: bytes = PAYLOAD) -> RawFrame:
    return RawFrame(ts, can_id(7, PGN_TP_DT, sa, da), data_packet(seq, payload))


def announce(control: int, size: int, packets: int, pgn: int = PGN_SOFT, byte5: int = 0xFF) -> bytes:
    return bytes((control, size & 0xFF, size >> 8, packets, byte5)) + pgn.to_bytes(3, "little")


def cts(count: int, next_packet: int, pgn: int = PGN_SOFT) -> bytes:
    return bytes((CM_CTS, count, next_packet, 0xFF, 0xFF)) + pgn.to_bytes(3, "little")


# -- the good paths ----------------------------------------------------------------------------


def test_bam_reassembles_and_drops_pad_bytes() -> None:
    frames = bam_frames(10.0, 0x17, PGN_SOFT, PAYLOAD)
    assert [f.data[0] for f in frames[1:]] == [1, 2, 3]
    assert frames[-1].data == bytes((3, 15, 16, 17, 18, 19, 20, 0xFF))
    r = TransportReassembler(c := Counters())
    assert feed_all(r, frames) == [ReassembledMessage(10.15, PGN_SOFT, 0x17, 0xFF, PAYLOAD)]
    assert r.open_sessions == 0 and c.decode_errors() == {}


@pytest.mark.parametrize("size", [9, 14, 15, 700, MAX_MESSAGE_SIZE])
def test_bam_sizes_at_the_limits(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    r = TransportReassembler(c := Counters())
    out = feed_all(r, bam_frames(1.0, 0x00, PGN_SOFT, payload))
    assert [m.data for m in out] == [payload] and c.decode_errors() == {}


@pytest.mark.parametrize("per_cts", [1, 2, 3, 255])
def test_rts_cts_reassembles_with_any_block_size(per_cts: int) -> None:
    payload = bytes(range(40))  # 6 packets
    frames = rts_cts_frames(5.0, ENGINE, TELEMATICS, PGN_SOFT, payload, packets_per_cts=per_cts)
    r = TransportReassembler(c := Counters())
    out = feed_all(r, frames)
    assert [(m.source, m.destination, m.pgn, m.data) for m in out] == [(ENGINE, TELEMATICS, PGN_SOFT, payload)]
    assert frames[-1].data[0] == CM_EOMA  # delivered before the EoMA; the EoMA then finds nothing open
    assert r.open_sessions == 0 and c.decode_errors() == {}


def test_cts_asking_for_a_packet_again_restarts_there() -> None:
    payload = bytes(range(100, 140))
    frames = rts_cts_frames(5.0, ENGINE, TELEMATICS, PGN_SOFT, payload, packets_per_cts=2, retransmit=3)
    seqs = [f.data[0] for f in frames if (f.arbitration_id >> 16) & 0xFF == 0xEB]
    assert seqs == [1, 2, 3, 4, 3, 4, 5, 6]  # packets 3 and 4 went twice
    r = TransportReassembler(c := Counters())
    assert [m.data for m in feed_all(r, frames)] == [payload]
    assert c.decode_errors() == {}


def test_cts_mid_block_asking_from_an_earlier_packet_is_legal() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)),
                 cm(1.01, TELEMATICS, ENGINE, cts(3, 1)),
                 dt(1.02, ENGINE, TELEMATICS, 1), dt(1.03, ENGINE, TELEMATICS, 2)])
    out = feed_all(r, [cm(1.04, TELEMATICS, ENGINE, cts(2, 2)),
                       dt(1.05, ENGINE, TELEMATICS, 2), dt(1.06, ENGINE, TELEMATICS, 3)])
    assert [m.data for m in out] == [PAYLOAD] and c.decode_errors() == {}


def test_interleaved_sessions_from_different_sources_and_pairs() -> None:
    a = bam_frames(1.0, 0x00, PGN_SOFT, b"A" * 20)
    b = bam_frames(1.01, 0x0B, PGN_SOFT, b"B" * 30)
    d = rts_cts_frames(1.0, 0x00, TELEMATICS, PGN_SOFT, b"D" * 25, gap_s=0.003)
    mixed = sorted(a + b + d, key=lambda f: f.timestamp)
    r = TransportReassembler(c := Counters())
    got = {(m.source, m.destination): m.data for m in feed_all(r, mixed)}
    assert got == {(0x00, 0xFF): b"A" * 20, (0x0B, 0xFF): b"B" * 30, (0x00, TELEMATICS): b"D" * 25}
    assert c.decode_errors() == {}


def test_unpadded_short_last_packet_is_accepted() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    frames[-1] = RawFrame(frames[-1].timestamp, frames[-1].arbitration_id, frames[-1].data[:7])  # 6 data bytes
    r = TransportReassembler(c := Counters())
    assert [m.data for m in feed_all(r, frames)] == [PAYLOAD] and c.decode_errors() == {}


def test_frames_that_are_not_tp_are_ignored() -> None:
    r = TransportReassembler(c := Counters())
    other = [
        RawFrame(1.0, 0x0CF00400, bytes(8)),  # EEC1
        RawFrame(1.0, 0x7EC, bytes(8), is_extended=False),  # 11-bit id whose bits look like TP
        RawFrame(1.0, can_id(7, PGN_TP_CM | 0x10000, 0, 0xFF), announce(CM_BAM, 20, 3)),  # data page 1: not TP
    ]
    assert feed_all(r, other) == [] and r.open_sessions == 0 and c.decode_errors() == {}


# -- sequence errors -------------------------------------------------------------------------


def test_out_of_order_packet_aborts_and_the_rest_are_orphans() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    r = TransportReassembler(c := Counters())
    assert feed_all(r, [frames[0], frames[1], frames[3], frames[2]]) == []
    assert c.decode_errors() == {"j1939_tp_sequence": 1, "j1939_tp_orphan_data": 1}
    assert r.open_sessions == 0


def test_duplicate_packet_aborts() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    r = TransportReassembler(c := Counters())
    assert feed_all(r, [frames[0], frames[1], frames[1]]) == []
    assert c.decode_errors() == {"j1939_tp_sequence": 1}


def test_data_before_any_cts_is_a_sequence_error() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)), dt(1.01, ENGINE, TELEMATICS, 1)])
    assert c.decode_errors() == {"j1939_tp_sequence": 1} and r.open_sessions == 0


def test_data_beyond_the_cleared_block_is_a_sequence_error() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)), cm(1.01, TELEMATICS, ENGINE, cts(1, 1)),
                 dt(1.02, ENGINE, TELEMATICS, 1), dt(1.03, ENGINE, TELEMATICS, 2)])
    assert c.decode_errors() == {"j1939_tp_sequence": 1}


@pytest.mark.parametrize("next_packet", [0, 3, 200])
def test_cts_for_packets_never_sent_is_a_sequence_error(next_packet: int) -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)), cm(1.01, TELEMATICS, ENGINE, cts(1, 1)),
                 dt(1.02, ENGINE, TELEMATICS, 1), cm(1.03, TELEMATICS, ENGINE, cts(1, next_packet))])
    assert c.decode_errors() == {"j1939_tp_sequence": 1} and r.open_sessions == 0


def test_eoma_while_packets_are_missing_drops_the_session() -> None:
    r = TransportReassembler(c := Counters())
    eoma = bytes((CM_EOMA, 20, 0, 3, 0xFF)) + PGN_SOFT.to_bytes(3, "little")
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)), cm(1.01, TELEMATICS, ENGINE, cts(3, 1)),
                 dt(1.02, ENGINE, TELEMATICS, 1), cm(1.05, TELEMATICS, ENGINE, eoma)])
    assert c.decode_errors() == {"j1939_tp_sequence": 1} and r.open_sessions == 0


# -- announce, abort, orphan, overflow, short frames -----------------------------------------


@pytest.mark.parametrize(
    ("control", "da", "size", "packets"),
    [
        (CM_BAM, 0xFF, 8, 2),  # 8 bytes fit one frame
        (CM_BAM, 0xFF, MAX_MESSAGE_SIZE + 1, 255),
        (CM_BAM, 0xFF, 20, 4),  # ceil(20 / 7) = 3
        (CM_BAM, 0xFF, 20, 2),
        (CM_BAM, TELEMATICS, 20, 3),  # a BAM goes to the global address only
        (CM_RTS, 0xFF, 20, 3),  # an RTS to one node only
        (CM_RTS, TELEMATICS, 0, 0),
    ],
)
def test_bad_announce_is_refused(control: int, da: int, size: int, packets: int) -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, da, announce(control, size, packets))])
    assert c.decode_errors() == {"j1939_tp_bad_announce": 1} and r.open_sessions == 0


def test_orphan_data_is_counted() -> None:
    r = TransportReassembler(c := Counters())
    assert feed_all(r, [dt(1.0, 0x21, 0xFF, 2), dt(1.1, 0x21, TELEMATICS, 1)]) == []
    assert c.decode_errors() == {"j1939_tp_orphan_data": 2}


@pytest.mark.parametrize(("sender", "receiver"), [(ENGINE, TELEMATICS), (TELEMATICS, ENGINE)])
def test_abort_from_either_side_ends_the_session(sender: int, receiver: int) -> None:
    abort = bytes((CM_ABORT, 2, 0xFF, 0xFF, 0xFF)) + PGN_SOFT.to_bytes(3, "little")
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)), cm(1.01, TELEMATICS, ENGINE, cts(2, 1)),
                 dt(1.02, ENGINE, TELEMATICS, 1), cm(1.03, sender, receiver, abort)])
    assert c.decode_errors() == {"j1939_tp_abort": 1} and r.open_sessions == 0
    feed_all(r, [dt(1.04, ENGINE, TELEMATICS, 2)])
    assert c.decode_errors() == {"j1939_tp_abort": 1, "j1939_tp_orphan_data": 1}


def test_abort_for_another_pgn_leaves_the_session_alone() -> None:
    abort = bytes((CM_ABORT, 1, 0xFF, 0xFF, 0xFF)) + (65227).to_bytes(3, "little")
    frames = rts_cts_frames(1.0, ENGINE, TELEMATICS, PGN_SOFT, PAYLOAD)
    r = TransportReassembler(c := Counters())
    out = feed_all(r, [*frames[:3], cm(frames[2].timestamp, TELEMATICS, ENGINE, abort), *frames[3:]])
    assert [m.data for m in out] == [PAYLOAD] and c.decode_errors() == {}


def test_new_bam_replaces_an_unfinished_one() -> None:
    old = bam_frames(1.0, 0x00, PGN_SOFT, b"O" * 20)
    new = bam_frames(1.2, 0x00, PGN_SOFT, b"N" * 20)
    r = TransportReassembler(c := Counters())
    out = feed_all(r, [old[0], old[1], *new])
    assert [m.data for m in out] == [b"N" * 20]
    assert c.decode_errors() == {"j1939_tp_abort": 1}


def test_new_rts_after_the_old_one_expired_counts_a_timeout() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3)),
                 cm(1.0 + T3_S + 0.1, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3))])
    assert c.decode_errors() == {"j1939_tp_timeout": 1} and r.open_sessions == 1


def test_full_table_refuses_new_sessions() -> None:
    r = TransportReassembler(c := Counters(), max_sessions=2)
    feed_all(r, [cm(1.0, sa, 0xFF, announce(CM_BAM, 20, 3)) for sa in (1, 2, 3)])
    assert c.decode_errors() == {"j1939_tp_overflow": 1} and r.open_sessions == 2
    # Once the first two time out, a new session finds room again.
    feed_all(r, [cm(1.0 + T1_S + 0.1, 4, 0xFF, announce(CM_BAM, 20, 3))])
    assert c.decode_errors() == {"j1939_tp_overflow": 1, "j1939_tp_timeout": 2} and r.open_sessions == 1


def test_default_table_holds_max_sessions() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, sa, 0xFF, announce(CM_BAM, 20, 3)) for sa in range(MAX_SESSIONS + 1)])
    assert r.open_sessions == MAX_SESSIONS and c.decode_errors() == {"j1939_tp_overflow": 1}


def test_short_tp_cm_is_counted_and_skipped() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, 0x00, 0xFF, announce(CM_BAM, 20, 3)[:5]), cm(1.1, 0x00, 0xFF, b"")])
    assert c.decode_errors() == {"can_short_frame": 2} and r.open_sessions == 0


def test_short_data_packet_that_is_not_the_last_is_counted() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    short = RawFrame(frames[1].timestamp, frames[1].arbitration_id, frames[1].data[:5])
    r = TransportReassembler(c := Counters())
    assert feed_all(r, [frames[0], short]) == []
    assert c.decode_errors() == {"can_short_frame": 1} and r.open_sessions == 1
    empty = RawFrame(frames[1].timestamp, frames[1].arbitration_id, b"")
    feed_all(r, [empty])
    assert c.decode_errors() == {"can_short_frame": 2}


def test_cts_for_a_session_we_never_saw_is_ignored() -> None:
    r = TransportReassembler(c := Counters())
    feed_all(r, [cm(1.0, TELEMATICS, ENGINE, cts(2, 1)),
                 cm(1.1, TELEMATICS, ENGINE, bytes((CM_EOMA, 20, 0, 3, 0xFF, 0xDA, 0xFE, 0))),
                 cm(1.2, 0x00, 0xFF, bytes((0x42, 0, 0, 0, 0, 0, 0, 0)))])  # reserved control byte
    assert c.decode_errors() == {} and r.open_sessions == 0


# -- timeouts (J1939-21 T1..T4, checked against bus time) ------------------------------------


def _rts_session(r: TransportReassembler, t: float = 1.0) -> None:
    feed_all(r, [cm(t, ENGINE, TELEMATICS, announce(CM_RTS, 20, 3))])


def test_bam_times_out_after_t1_between_packets() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    r = TransportReassembler(c := Counters())
    feed_all(r, frames[:2])  # last packet at 1.05
    r.expire(1.05 + T1_S - 0.01)
    assert r.open_sessions == 1 and c.decode_errors() == {}
    r.expire(1.05 + T1_S + 0.01)
    assert r.open_sessions == 0 and c.decode_errors() == {"j1939_tp_timeout": 1}


def test_late_packet_is_timed_out_without_an_expire_call() -> None:
    frames = bam_frames(1.0, 0x00, PGN_SOFT, PAYLOAD)
    late = RawFrame(1.05 + T1_S + 0.1, frames[2].arbitration_id, frames[2].data)
    r = TransportReassembler(c := Counters())
    assert feed_all(r, [*frames[:2], late]) == []
    assert c.decode_errors() == {"j1939_tp_timeout": 1, "j1939_tp_orphan_data": 1}


def test_rts_times_out_after_t3_without_cts() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    r.expire(1.0 + T1_S + 0.1)  # beyond T1: still waiting, T3 applies
    assert r.open_sessions == 1
    r.expire(1.0 + T3_S + 0.01)
    assert c.decode_errors() == {"j1939_tp_timeout": 1}


def test_cts_then_no_data_times_out_after_t2() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    feed_all(r, [cm(1.1, TELEMATICS, ENGINE, cts(1, 1))])
    r.expire(1.1 + T1_S + 0.1)
    assert r.open_sessions == 1
    r.expire(1.1 + T2_S + 0.01)
    assert c.decode_errors() == {"j1939_tp_timeout": 1}


def test_end_of_block_waits_t3_for_the_next_cts() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    feed_all(r, [cm(1.1, TELEMATICS, ENGINE, cts(1, 1)), dt(1.2, ENGINE, TELEMATICS, 1)])
    r.expire(1.2 + T1_S + 0.1)
    assert r.open_sessions == 1
    r.expire(1.2 + T3_S + 0.01)
    assert c.decode_errors() == {"j1939_tp_timeout": 1}


def test_data_within_a_block_waits_only_t1() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    feed_all(r, [cm(1.1, TELEMATICS, ENGINE, cts(3, 1)), dt(1.2, ENGINE, TELEMATICS, 1)])
    r.expire(1.2 + T1_S + 0.01)
    assert c.decode_errors() == {"j1939_tp_timeout": 1}


def test_hold_cts_times_out_after_t4_and_a_new_hold_extends_it() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    feed_all(r, [cm(1.1, TELEMATICS, ENGINE, cts(0, 0xFF))])
    feed_all(r, [cm(1.1 + T4_S - 0.05, TELEMATICS, ENGINE, cts(0, 0xFF))])  # held again
    r.expire(1.1 + T4_S + 0.5)
    assert r.open_sessions == 1
    hold2 = 1.1 + T4_S - 0.05
    r.expire(hold2 + T4_S + 0.01)  # before T3 or T2 would run out: only T4 ends it here
    assert c.decode_errors() == {"j1939_tp_timeout": 1}


def test_transfer_resumes_after_a_hold() -> None:
    r = TransportReassembler(c := Counters())
    _rts_session(r)
    out = feed_all(r, [cm(1.1, TELEMATICS, ENGINE, cts(0, 0xFF)), cm(1.6, TELEMATICS, ENGINE, cts(3, 1)),
                       *(dt(1.6 + 0.01 * s, ENGINE, TELEMATICS, s) for s in (1, 2, 3))])
    assert [m.data for m in out] == [PAYLOAD] and c.decode_errors() == {}
