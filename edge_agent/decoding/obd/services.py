"""SAE J1979 service responses: complete ISO-TP payloads into samples, DTC reports and VINs.

Services handled (response id = request id + 0x40, ISO 15031-5 / SAE J1979):

* 0x41 current data, one or several PIDs. Each PID segment is rebuilt into the profile DBC's
  single-frame ``41 PID A B C D`` layout and decoded by cantools, so the DBC is the only source of
  scaling. PIDs the DBC lacks are skipped quietly; supported-PID bitmaps (0x00, 0x20, ... 0xE0)
  are returned as sets.
* 0x43 / 0x47 / 0x4A stored / pending / permanent DTCs (see dtc.py).
* 0x49 PID 0x02 the VIN: ``49 02 01`` (count of data items) then 17 ASCII characters.
* 0x7F negative response ``7F <service> <NRC>`` (ISO 14229-1 Annex A NRCs; 0x78 "response
  pending" means the answer is coming later, within P2*).

Everything here is pure: bad content raises ``DecodeError`` with a counter reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cantools.database.can import Message

from edge_agent.decoding.obd.dtc import DTC_SERVICES, parse_dtcs
from edge_agent.decoding.obd.pids import BITMAP_PIDS, PID_LENGTHS, parse_bitmap
from edge_agent.errors import DecodeError, ProfileError
from edge_agent.model import ObdDtcReport, Sample, VehicleId
from firmware_profiles import Profile

SID_CURRENT_DATA = 0x41
SID_VEHICLE_INFO = 0x49
SID_NEGATIVE = 0x7F
VIN_INFOTYPE = 0x02
#: ISO 14229-1 NRC 0x78 requestCorrectlyReceived-ResponsePending: the real answer follows.
NRC_RESPONSE_PENDING = 0x78
VIN_LENGTH = 17


def split_current_data(payload: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """Split a 0x41 payload into (PID, data bytes) segments.

    Returns (segments, complete). A lone PID takes all remaining bytes, so a PID missing from our
    length table still decodes alone; in a multi-PID response an unknown or truncated PID ends the
    split there (``complete`` False), keeping the segments before it.
    """
    segments: list[tuple[int, bytes]] = []
    i = 1
    while i < len(payload):
        pid = payload[i]
        length = PID_LENGTHS.get(pid)
        if length is None:
            if i == 1:
                return [(pid, payload[2:])], len(payload) > 2
            return segments, False
        if i + 1 + length > len(payload):
            return segments, False
        segments.append((pid, payload[i + 1 : i + 1 + length]))
        i += 1 + length
    return segments, bool(segments)


def negative_response(payload: bytes) -> tuple[int, int]:
    """(rejected service, NRC) of a ``7F`` payload."""
    if len(payload) < 3:
        raise DecodeError("obd_malformed", f"negative response of {len(payload)} bytes")
    return payload[1], payload[2]


def parse_vin(payload: bytes) -> str:
    """The VIN from a ``49 02`` payload: skip the item count, strip padding, expect 17 characters."""
    if len(payload) < 3 or payload[1] != VIN_INFOTYPE:
        raise DecodeError("obd_malformed", "not a 49 02 response")
    body = payload[3:] if len(payload) >= 3 + VIN_LENGTH else payload[2:]
    text = body.strip(b"\x00\xff ").decode("ascii", errors="replace")
    if len(text) != VIN_LENGTH or not text.isalnum():
        raise DecodeError("obd_malformed", f"VIN {text!r} is not 17 alphanumerics")
    return text


@dataclass(frozen=True, slots=True)
class _Target:
    signal: str
    dbc_signal: str
    unit: str


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one response payload decoded to."""

    items: tuple[Sample | ObdDtcReport | VehicleId, ...] = ()
    #: bitmap PID -> PIDs it marks supported (from 0x41 00 / 20 / 40 ... segments)
    supported: Mapping[int, frozenset[int]] = field(default_factory=lambda: MappingProxyType({}))
    #: (service, NRC) when the payload was a negative response
    negative: tuple[int, int] | None = None
    #: a multi-PID response whose tail was unknown or truncated; ``items`` holds what came before
    partial: bool = False


class ServiceDecoder:
    """Decodes complete response payloads for one OBD-II profile (compiled once from its map)."""

    def __init__(self, profile: Profile) -> None:
        targets: dict[int, list[_Target]] = {}
        messages: dict[int, Message] = {}
        for spec in profile.signals.values():
            if spec.pid is None:
                raise ProfileError(f"{profile.name}: signal {spec.name} has no OBD PID")
            message = profile.database.get_message_by_name(spec.message)
            unit = spec.unit or (message.get_signal_by_name(spec.dbc_signal).unit or "")
            targets.setdefault(spec.pid, []).append(_Target(spec.name, spec.dbc_signal, unit))
            if messages.setdefault(spec.pid, message) is not message:
                raise ProfileError(f"{profile.name}: PID 0x{spec.pid:02X} is mapped from two DBC messages")
        self._targets = {pid: tuple(ts) for pid, ts in targets.items()}
        self._messages = messages
        self.pids: frozenset[int] = frozenset(targets)

    def decode(self, payload: bytes, timestamp: float, source: str) -> Decoded:
        """Decode one complete payload. Raises ``DecodeError`` when its content is malformed."""
        if not payload:
            raise DecodeError("obd_malformed", "empty payload")
        sid = payload[0]
        if sid == SID_CURRENT_DATA:
            return self._current_data(payload, timestamp, source)
        status = DTC_SERVICES.get(sid)
        if status is not None:
            return Decoded((ObdDtcReport(timestamp, status, source, parse_dtcs(payload, status, source)),))
        if sid == SID_VEHICLE_INFO:
            if len(payload) >= 2 and payload[1] == VIN_INFOTYPE:
                return Decoded((VehicleId(timestamp, parse_vin(payload), source),))
            return Decoded()
        if sid == SID_NEGATIVE:
            return Decoded(negative=negative_response(payload))
        return Decoded()  # a service we do not use (e.g. a UDS answer to someone else's tester)

    def _current_data(self, payload: bytes, timestamp: float, source: str) -> Decoded:
        segments, complete = split_current_data(payload)
        if not segments:
            raise DecodeError("obd_malformed", f"cannot split 0x41 payload {payload.hex()}")
        items: list[Sample] = []
        supported: dict[int, frozenset[int]] = {}
        for pid, data in segments:
            if pid in BITMAP_PIDS and len(data) == 4:
                supported[pid] = parse_bitmap(pid, data)
            targets = self._targets.get(pid)
            if targets is None:
                continue
            try:
                values = self._decode_pid(pid, data)
            except DecodeError:
                complete = False  # one bad PID does not cost the others in the same response
                continue
            items.extend(Sample(timestamp, t.signal, float(values[t.dbc_signal]), source, t.unit) for t in targets)  # type: ignore[arg-type]
        # A partial multi-PID response keeps what decoded; the caller counts the rest as malformed.
        return Decoded(tuple(items), MappingProxyType(supported), None, partial=not complete)

    def _decode_pid(self, pid: int, data: bytes) -> Mapping[str, object]:
        expected = PID_LENGTHS.get(pid)
        if expected is not None and len(data) != expected:
            raise DecodeError("obd_malformed", f"PID 0x{pid:02X} has {len(data)} data bytes, J1979 says {expected}")
        message = self._messages[pid]
        frame = bytes([2 + len(data), SID_CURRENT_DATA, pid]) + data
        if len(frame) < message.length:
            frame += b"\x00" * (message.length - len(frame))
        try:
            return message.decode(frame, decode_choices=False)  # type: ignore[return-value]
        except Exception as exc:  # cantools raises several types for a payload that does not fit
            raise DecodeError("obd_malformed", f"PID 0x{pid:02X} data {data.hex()}: {exc}") from exc

