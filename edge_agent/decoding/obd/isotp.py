"""ISO 15765-2 (ISO-TP) for OBD-II on CAN: addressing, a passive reassembler and a segmenter.

The reassembler listens to responses only (it never transmits): single frames, first frames and
consecutive frames are put together per responder id; flow-control frames are recorded, not
answered (the poller answers them). Everything is bounded: at most ``MAX_SESSIONS`` open sessions,
at most ``MAX_PAYLOAD`` bytes each, and a session dies when the gap between two of its frames
exceeds N_Cr (1000 ms, ISO 15765-2 Table 16 "N_Cr: 1000 ms timeout"). Time is the frames' own
timestamps, so a replay behaves exactly like the live bus it was recorded from.

PCI nibble (ISO 15765-2 9.6, public summary https://en.wikipedia.org/wiki/ISO_15765-2):
0 single frame (SF, length in the low nibble), 1 first frame (FF, 12-bit length), 2 consecutive
frame (CF, 4-bit sequence number wrapping 15 -> 0), 3 flow control (FC: flow status, block size,
STmin). CAN-FD escapes (SF length 0 + length byte, FF length 0 + 32-bit length) are understood
well enough to be bounded and counted, never to crash.

Addressing (ISO 15765-4 6.3): 11-bit responses 0x7E8-0x7EF answer physical requests on
``response - 8`` and the functional request 0x7DF; 29-bit responses are 0x18DAF1xx (xx = the ECU's
address) answering physical 0x18DAxxF1 and the functional 0x18DB33F1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.counters import Counters
from edge_agent.model import RawFrame

FUNCTIONAL_11 = 0x7DF
FUNCTIONAL_29 = 0x18DB33F1
#: ISO 15765-2: a first frame's 12-bit length caps a classic-CAN message at 4095 bytes.
MAX_PAYLOAD = 4095
#: Open multi-frame sessions at once. ISO 15765-4 allows 8 responders per addressing mode.
MAX_SESSIONS = 16
#: ISO 15765-2 Table 16: N_Cr, the receiver's wait for the next consecutive frame.
N_CR_S = 1.0
#: ISO 15765-4 requires DLC 8 with padding; the value is free. We pad with this.
PAD_BYTE = 0xAA

PCI_SF, PCI_FF, PCI_CF, PCI_FC = 0, 1, 2, 3


def is_response_id(arbitration_id: int, is_extended: bool) -> bool:
    """True for an OBD responder id: 0x7E8-0x7EF (11-bit) or 0x18DAF1xx (29-bit)."""
    if is_extended:
        return arbitration_id & 0x1FFFFF00 == 0x18DAF100
    return 0x7E8 <= arbitration_id <= 0x7EF


def is_request_id(arbitration_id: int, is_extended: bool) -> bool:
    """True for a tester's request or flow control: functional or physical, 11- or 29-bit."""
    if is_extended:
        return arbitration_id == FUNCTIONAL_29 or arbitration_id & 0x1FFF00FF == 0x18DA00F1
    return arbitration_id == FUNCTIONAL_11 or 0x7E0 <= arbitration_id <= 0x7E7


def physical_request_id(response_id: int, is_extended: bool) -> int:
    """The id a tester uses to talk to one responder (where its flow control goes)."""
    if is_extended:
        return 0x18DA00F1 | ((response_id & 0xFF) << 8)
    return response_id - 8


def response_id_for(request_id: int, is_extended: bool) -> int:
    """The responder id that answers a physical request id (inverse of ``physical_request_id``)."""
    if is_extended:
        return 0x18DAF100 | ((request_id >> 8) & 0xFF)
    return request_id + 8


def pad(data: bytes, pad_byte: int = PAD_BYTE) -> bytes:
    """Pad to the 8-byte DLC ISO 15765-4 requires."""
    return data + bytes([pad_byte]) * (8 - len(data)) if len(data) < 8 else data


def single_frame(payload: bytes, pad_byte: int = PAD_BYTE) -> bytes:
    """A padded single frame for a payload of 1-7 bytes (every OBD request fits one)."""
    if not 1 <= len(payload) <= 7:
        raise ValueError(f"a single frame carries 1-7 bytes, not {len(payload)}")
    return pad(bytes([len(payload)]) + payload, pad_byte)


def flow_control(flow_status: int = 0, block_size: int = 0, st_min: int = 0, pad_byte: int = PAD_BYTE) -> bytes:
    """A flow-control frame; the defaults are "clear to send, all at once, no gap"."""
    return pad(bytes([0x30 | (flow_status & 0xF), block_size & 0xFF, st_min & 0xFF]), pad_byte)


def segment(payload: bytes, pad_byte: int = PAD_BYTE) -> list[bytes]:
    """Split a payload into a single frame, or a first frame followed by consecutive frames."""
    if len(payload) <= 7:
        return [single_frame(payload, pad_byte)]
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"ISO-TP carries at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    frames = [bytes([0x10 | (len(payload) >> 8), len(payload) & 0xFF]) + payload[:6]]
    sn = 1
    for i in range(6, len(payload), 7):
        frames.append(pad(bytes([0x20 | sn]) + payload[i : i + 7], pad_byte))
        sn = (sn + 1) & 0xF
    return frames


@dataclass(frozen=True, slots=True)
class IsoTpMessage:
    """One complete ISO-TP payload from one responder; ``timestamp`` is its last frame's."""

    timestamp: float
    arbitration_id: int
    is_extended: bool
    payload: bytes
    first_frame: bool = False  # True when it came in several frames


@dataclass(frozen=True, slots=True)
class FlowControl:
    """A flow-control frame seen on the bus (flow status 0 CTS, 1 wait, 2 overflow)."""

    timestamp: float
    arbitration_id: int
    flow_status: int
    block_size: int
    st_min: int


@dataclass(slots=True)
class _Session:
    started: float
    last: float
    total: int
    next_sn: int
    data: bytearray = field(default_factory=bytearray)


class IsoTpReassembler:
    """Reassembles ISO-TP payloads per CAN id. Bad frames are counted under ``decode_errors``."""

    def __init__(self, counters: Counters, max_sessions: int = MAX_SESSIONS, n_cr_s: float = N_CR_S) -> None:
        self._counters = counters
        self._max_sessions = max_sessions
        self._n_cr_s = n_cr_s
        self._sessions: dict[tuple[int, bool], _Session] = {}
        self.flow_controls: dict[tuple[int, bool], FlowControl] = {}

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def is_receiving(self, arbitration_id: int, is_extended: bool) -> bool:
        return (arbitration_id, is_extended) in self._sessions

    def expire(self, now: float) -> int:
        """Drop sessions whose last frame is older than N_Cr at ``now``; count each as a timeout."""
        stale = [k for k, s in self._sessions.items() if now - s.last > self._n_cr_s]
        for key in stale:
            del self._sessions[key]
        if stale:
            self._counters.decode_error("obd_isotp_timeout", len(stale))
        return len(stale)

    def feed(self, frame: RawFrame) -> IsoTpMessage | None:
        """Take one frame; return the payload it completes, if any. Never raises for bad data."""
        self.expire(frame.timestamp)
        data = frame.data
        if not data:
            self._counters.decode_error("obd_isotp")
            return None
        key = (frame.arbitration_id, frame.is_extended)
        kind = data[0] >> 4
        if kind == PCI_SF:
            return self._single(frame, key)
        if kind == PCI_FF:
            self._first(frame, key)
            return None
        if kind == PCI_CF:
            return self._consecutive(frame, key)
        if kind == PCI_FC and len(data) >= 3:
            fc = FlowControl(frame.timestamp, frame.arbitration_id, data[0] & 0xF, data[1], data[2])
            self.flow_controls[key] = fc
            return None
        self._counters.decode_error("obd_isotp")
        return None

    def _single(self, frame: RawFrame, key: tuple[int, bool]) -> IsoTpMessage | None:
        data = frame.data
        length, start = data[0] & 0xF, 1
        if length == 0 and len(data) > 8:  # CAN-FD escape: the length is in the next byte
            length, start = data[1], 2
        if length == 0 or start + length > len(data):
            self._counters.decode_error("obd_isotp")
            return None
        # ISO 15765-2 9.8.3: a new SF during a reception ends that reception (counted as lost).
        if self._sessions.pop(key, None) is not None:
            self._counters.decode_error("obd_isotp")
        payload = bytes(data[start : start + length])
        return IsoTpMessage(frame.timestamp, frame.arbitration_id, frame.is_extended, payload)

    def _first(self, frame: RawFrame, key: tuple[int, bool]) -> None:
        data = frame.data
        if len(data) < 8:  # ISO 15765-2: an FF always fills the frame
            self._counters.decode_error("obd_isotp")
            return None
        total, start = ((data[0] & 0xF) << 8) | data[1], 2
        if total == 0:  # escape: 32-bit length follows (over 4095, so beyond our bound)
            total, start = int.from_bytes(data[2:6], "big"), 6
        if total <= 7 or total > MAX_PAYLOAD:
            self._counters.decode_error("obd_isotp")
            return None
        if self._sessions.pop(key, None) is not None:
            self._counters.decode_error("obd_isotp")  # the unfinished one is lost
        if len(self._sessions) >= self._max_sessions:
            self._counters.decode_error("obd_isotp_overflow")
            return None
        session = _Session(frame.timestamp, frame.timestamp, total, 1)
        session.data += data[start:]
        self._sessions[key] = session
        return None

    def _consecutive(self, frame: RawFrame, key: tuple[int, bool]) -> IsoTpMessage | None:
        session = self._sessions.get(key)
        if session is None:
            self._counters.decode_error("obd_isotp")  # orphan CF: its FF was lost or timed out
            return None
        sn = frame.data[0] & 0xF
        if sn != session.next_sn:
            del self._sessions[key]
            self._counters.decode_error("obd_isotp")
            return None
        session.next_sn = (sn + 1) & 0xF
        session.last = frame.timestamp
        session.data += frame.data[1:]
        if len(session.data) < session.total:
            return None
        del self._sessions[key]
        payload = bytes(session.data[: session.total])
        return IsoTpMessage(frame.timestamp, frame.arbitration_id, frame.is_extended, payload, first_frame=True)
