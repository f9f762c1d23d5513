"""SAE J1939-21 transport protocol (TP) reassembly for a passive bus monitor.

We only listen: the agent never sends a CTS, so it reassembles both broadcast (BAM) transfers and
connection-mode (RTS/CTS) transfers between two other nodes by watching both sides of them.

J1939-21 5.10 in short (the facts this module relies on):

* TP.CM, PGN 60416 (0xEC00), byte 1 is the control byte: RTS 16, CTS 17, EndOfMsgAck 19, BAM 32,
  Conn_Abort 255; bytes 6-8 always carry the PGN of the packeted message (little endian).
  BAM/RTS/EoMA: bytes 2-3 message size, byte 4 number of packets. CTS: byte 2 packets that may be
  sent (0 = hold the connection open), byte 3 the next packet number to send.
* TP.DT, PGN 60160 (0xEB00): byte 1 sequence number 1..255, bytes 2-8 seven data bytes; the last
  packet is padded with 0xFF, so the payload is cut to the announced size.
* A transfer is 9..1785 bytes (255 packets of 7); packets = ceil(size / 7).
* A BAM goes to the global address 0xFF; an RTS to one destination. CTS and EoMA are sent by the
  receiver, so their source address is the session's destination; an abort may come from either side.
* Timeouts (J1939-21 5.10): T1 750 ms between data packets, T2 1250 ms from a CTS to its data,
  T3 1250 ms from the RTS or the last packet of a block to the next CTS, T4 1050 ms after a CTS
  "hold" (packets = 0) to the next CTS. A BAM receiver also uses T1 between packets.

Sessions are keyed by (originator, destination), destination 0xFF for BAM. Time is the frames' own
timestamps (bus or capture clock), so a replay behaves exactly like the live bus. A message is
delivered when its last packet arrives: a monitor has the whole payload then, and would otherwise
lose it whenever it misses the EoMA. Every problem is counted under ``decode_errors`` (reasons in
``edge_agent.counters.DECODE_ERROR_DOCS``) and skipped; nothing here raises for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.counters import Counters
from edge_agent.model import RawFrame

# SAE J1939-21 5.10: PGNs of transport connection management and data transfer.
PGN_TP_CM = 0xEC00
PGN_TP_DT = 0xEB00
# SAE J1939-21 5.10: TP.CM control bytes.
CM_RTS = 16
CM_CTS = 17
CM_EOMA = 19
CM_BAM = 32
CM_ABORT = 255
#: J1939 global destination address; a BAM is always sent to it.
GLOBAL_ADDRESS = 0xFF
#: J1939-21 5.10: shorter messages fit one frame; 255 packets of 7 bytes is the most TP carries.
MIN_MESSAGE_SIZE = 9
MAX_MESSAGE_SIZE = 1785
BYTES_PER_PACKET = 7
#: Open sessions at once. A truck bus has a few dozen ECUs, each allowed one BAM plus one
#: connection per peer at a time; 64 covers that with room to spare and bounds memory to
#: 64 x 1785 bytes (about 112 KiB). A new session beyond it is refused (``j1939_tp_overflow``).
MAX_SESSIONS = 64
# J1939-21 5.10 timeouts, in seconds.
T1_S = 0.75  # receiver: between two data packets (BAM and RTS/CTS)
T2_S = 1.25  # receiver: after sending a CTS, until its first data packet
T3_S = 1.25  # originator: after the RTS or the last packet of a block, until CTS or EoMA
T4_S = 1.05  # originator: after a CTS "hold" (0 packets), until the next CTS


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    """One complete multi-packet message; ``timestamp`` is its last data packet's."""

    timestamp: float
    pgn: int
    source: int
    destination: int
    data: bytes


@dataclass(slots=True)
class _Session:
    pgn: int
    size: int
    packets: int
    deadline: float
    bam: bool
    next_seq: int = 1
    received: int = 0
    #: Last packet the receiver's latest CTS cleared (a BAM's whole message is one block).
    block_end: int = 0
    waiting_cts: bool = False
    data: bytearray = field(default_factory=bytearray)


class TransportReassembler:
    """Reassembles J1939 TP transfers from the frames of one bus, in timestamp order."""

    def __init__(self, counters: Counters, *, max_sessions: int = MAX_SESSIONS) -> None:
        self._counters = counters
        self._max_sessions = max_sessions
        self._sessions: dict[tuple[int, int], _Session] = {}

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def feed(self, frame: RawFrame) -> list[ReassembledMessage]:
        """Take one frame; return the message(s) it completes. Frames that are not TP are ignored."""
        can_id = frame.arbitration_id
        if not frame.is_extended:
            return []
        pgn = (can_id >> 8) & 0x3FF00  # TP.CM and TP.DT are PDU1: PS is the destination address
        sa = can_id & 0xFF
        da = (can_id >> 8) & 0xFF
        if pgn == PGN_TP_CM:
            self._control(frame, sa, da)
            return []
        if pgn == PGN_TP_DT:
            return self._data(frame, sa, da)
        return []

    def expire(self, now: float) -> None:
        """End every session whose J1939-21 timeout has passed at bus time ``now``; each counts once."""
        stale = [key for key, s in self._sessions.items() if now > s.deadline]
        for key in stale:
            del self._sessions[key]
        if stale:
            self._counters.decode_error("j1939_tp_timeout", len(stale))

    # -- connection management ----------------------------------------------------------------

    def _control(self, frame: RawFrame, sa: int, da: int) -> None:
        data = frame.data
        if len(data) < 8:  # J1939-21 requires DLC 8 for TP.CM; some ECUs send less
            self._counters.decode_error("can_short_frame")
            return
        control = data[0]
        pgn = data[5] | data[6] << 8 | data[7] << 16
        ts = frame.timestamp
        if control in (CM_BAM, CM_RTS):
            self._announce(ts, control, sa, da, pgn, data)
        elif control == CM_CTS:
            self._clear_to_send(ts, sa, da, pgn, data)
        elif control == CM_EOMA:
            session = self._live((da, sa), ts)
            # Delivered sessions are already closed; one still open here lost packets on our side.
            if session is not None and not session.bam and session.pgn == pgn:
                del self._sessions[(da, sa)]
                self._counters.decode_error("j1939_tp_sequence")
        elif control == CM_ABORT:
            for key in ((sa, da), (da, sa)):  # from the originator, or from the receiver
                session = self._live(key, ts)
                if session is not None and session.pgn == pgn:
                    del self._sessions[key]
                    self._counters.decode_error("j1939_tp_abort")
                    return
        # Other control bytes (reserved, or J1939-22 extensions) belong to nothing we reassemble.

    def _announce(self, ts: float, control: int, sa: int, da: int, pgn: int, data: bytes) -> None:
        size = data[1] | data[2] << 8
        packets = data[3]
        bam = control == CM_BAM
        if (
            bam != (da == GLOBAL_ADDRESS)  # BAM only to global, RTS only to one node
            or not MIN_MESSAGE_SIZE <= size <= MAX_MESSAGE_SIZE
            or packets != -(-size // BYTES_PER_PACKET)
        ):
            self._counters.decode_error("j1939_tp_bad_announce")
            return
        key = (sa, da)
        old = self._sessions.pop(key, None)
        if old is not None:
            # J1939-21: one transfer per originator/destination pair; a new announce ends the old
            # one. Already past its deadline it timed out; otherwise its sender abandoned it.
            self._counters.decode_error("j1939_tp_timeout" if ts > old.deadline else "j1939_tp_abort")
        elif len(self._sessions) >= self._max_sessions:
            self.expire(ts)
            if len(self._sessions) >= self._max_sessions:
                self._counters.decode_error("j1939_tp_overflow")
                return
        if bam:
            self._sessions[key] = _Session(pgn, size, packets, ts + T1_S, True, block_end=packets)
        else:
            self._sessions[key] = _Session(pgn, size, packets, ts + T3_S, False, waiting_cts=True)

    def _clear_to_send(self, ts: float, sa: int, da: int, pgn: int, data: bytes) -> None:
        key = (da, sa)  # the CTS comes from the session's destination
        session = self._live(key, ts)
        if session is None or session.bam or session.pgn != pgn:
            return  # a transfer we did not see start (we joined late or refused its RTS): not ours
        count, next_packet = data[1], data[2]
        if count == 0:  # hold: the receiver keeps the connection open without taking data
            session.waiting_cts = True
            session.deadline = ts + T4_S
            return
        # The receiver may ask again for packets it already has (J1939-21: retransmission after a
        # CTS); it may not skip packets nobody sent.
        if not 1 <= next_packet <= min(session.received + 1, session.packets):
            del self._sessions[key]
            self._counters.decode_error("j1939_tp_sequence")
            return
        session.received = next_packet - 1
        del session.data[session.received * BYTES_PER_PACKET:]
        session.next_seq = next_packet
        session.block_end = min(session.packets, next_packet + count - 1)
        session.waiting_cts = False
        session.deadline = ts + T2_S

    # -- data transfer ------------------------------------------------------------------------

    def _data(self, frame: RawFrame, sa: int, da: int) -> list[ReassembledMessage]:
        key = (sa, da)
        ts = frame.timestamp
        session = self._live(key, ts)
        if session is None:
            self._counters.decode_error("j1939_tp_orphan_data")
            return []
        data = frame.data
        if not data:
            self._counters.decode_error("can_short_frame")
            return []
        if session.waiting_cts or data[0] != session.next_seq:
            # Lost, repeated or reordered packet (or data the receiver did not clear): the payload
            # can no longer be trusted, so the whole session goes.
            del self._sessions[key]
            self._counters.decode_error("j1939_tp_sequence")
            return []
        chunk = data[1:1 + BYTES_PER_PACKET]
        if len(chunk) < BYTES_PER_PACKET and len(chunk) < session.size - len(session.data):
            # Only an unpadded last packet may be short; any other short packet cannot be placed.
            self._counters.decode_error("can_short_frame")
            return []
        session.data += chunk
        session.received += 1
        session.next_seq += 1
        if session.received == session.packets:
            del self._sessions[key]
            return [ReassembledMessage(ts, session.pgn, sa, da, bytes(session.data[:session.size]))]
        if session.received == session.block_end and not session.bam:
            session.waiting_cts = True
            session.deadline = ts + T3_S
        else:
            session.deadline = ts + T1_S
        return []

    def _live(self, key: tuple[int, int], ts: float) -> _Session | None:
        """The session under ``key`` unless its timeout passed before ``ts`` (then it is counted and dropped)."""
        session = self._sessions.get(key)
        if session is not None and ts > session.deadline:
            del self._sessions[key]
            self._counters.decode_error("j1939_tp_timeout")
            return None
        return session
