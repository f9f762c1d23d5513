"""The edge agent's own data types: what flows between sources, decoding, detection and the outbox.

Foreign types (python-can messages, pynmea2 sentences, SQLite rows) stop at the module that owns
them; everything in the middle speaks these frozen dataclasses.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import overload


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One CAN frame as read from a bus or a capture.

    ``timestamp`` is the source's clock in seconds (the bus driver's receive time, or the capture's
    own timestamp on replay), never the agent's wall clock.
    """

    timestamp: float
    arbitration_id: int
    data: bytes
    is_extended: bool = True
    channel: str = ""


@dataclass(frozen=True, slots=True)
class TimedLine:
    """One text line from a GNSS receiver, with the agent's receive time (seconds)."""

    received_at: float
    text: str


@dataclass(frozen=True, slots=True)
class Sample:
    """A decoded signal value in engineering units.

    ``signal`` is our name from the profile's signal map (not the DBC's); ``source`` names the ECU
    that sent it (``"j1939:0x00"`` for a J1939 source address, ``"obd:0x7E8"`` for an OBD responder).
    """

    timestamp: float
    signal: str
    value: float
    source: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Fix:
    """A GNSS position assembled from the sentences of one receiver epoch.

    ``quality`` is the GGA fix quality (0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead
    reckoning, ...); ``mode`` the GSA fix mode (1 none, 2 2D, 3 3D); ``None`` where no sentence of the
    epoch carried it. ``valid`` is the RMC status (A/V) when RMC was seen, else ``quality > 0``.
    """

    timestamp: float
    lat: float
    lon: float
    valid: bool
    quality: int | None = None
    mode: int | None = None
    satellites: int | None = None
    hdop: float | None = None
    pdop: float | None = None
    vdop: float | None = None
    altitude_m: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    talker: str = ""


class LampState(IntEnum):
    """Two-bit lamp status from SAE J1939-73 DM1/DM2 byte 1 (00 off, 01 on, 10 error, 11 n/a)."""

    OFF = 0
    ON = 1
    ERROR = 2
    NOT_AVAILABLE = 3


@dataclass(frozen=True, slots=True)
class Lamps:
    """The four J1939 diagnostic lamps (J1939-73 5.7.1, DM1 byte 1)."""

    protect: LampState = LampState.NOT_AVAILABLE
    amber_warning: LampState = LampState.NOT_AVAILABLE
    red_stop: LampState = LampState.NOT_AVAILABLE
    mil: LampState = LampState.NOT_AVAILABLE


@dataclass(frozen=True, slots=True)
class J1939Dtc:
    """One J1939 diagnostic trouble code: SPN (19 bits), FMI (5 bits), occurrence count, CM bit."""

    spn: int
    fmi: int
    oc: int
    cm: int = 0


@dataclass(frozen=True, slots=True)
class DiagnosticMessage:
    """A decoded DM1 (active) or DM2 (previously active) message from one source address."""

    timestamp: float
    kind: str  # "DM1" | "DM2"
    source_address: int
    lamps: Lamps
    dtcs: tuple[J1939Dtc, ...] = ()


@dataclass(frozen=True, slots=True)
class ObdDtc:
    """An OBD-II trouble code such as ``P0301``; ``status`` is stored, pending or permanent."""

    code: str
    status: str  # "stored" (mode 03) | "pending" (mode 07) | "permanent" (mode 0A)
    source: str = ""


@dataclass(frozen=True, slots=True)
class ObdDtcReport:
    """All DTCs one OBD responder reported for one mode at one time (an empty tuple means none)."""

    timestamp: float
    status: str
    source: str
    dtcs: tuple[ObdDtc, ...] = ()


@dataclass(frozen=True, slots=True)
class VehicleId:
    """A VIN read from the bus (OBD mode 09 PID 02, or J1939 PGN 65260)."""

    timestamp: float
    vin: str
    source: str


class Priority(IntEnum):
    """Outbox priority: higher survives longer under the byte quota and leaves first.

    Faults and compliance events outrank idle/geofence events, which outrank periodic samples
    and fixes. Drop reports rank highest so the cloud always learns what was lost.
    """

    PERIODIC = 10
    EVENT = 20
    FAULT = 30
    COMPLIANCE = 30
    DROP_REPORT = 40


@dataclass(frozen=True, slots=True)
class Record:
    """Anything stored in the outbox. ``payload`` must be JSON-serialisable."""

    kind: str
    priority: Priority
    timestamp: float
    payload: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A detection made on the vehicle (idle started, DTC appeared, geofence entered, trip ended, ...).

    ``timestamp`` is the bus/receiver time of the sample or fix that completed the detection;
    ``payload`` is JSON-serialisable and self-describing (durations in seconds, volumes in litres).
    """

    timestamp: float
    kind: str
    priority: Priority
    payload: dict[str, object] = field(default_factory=dict)

    def to_record(self) -> Record:
        return Record(self.kind, self.priority, self.timestamp, dict(self.payload))


#: Bit 31 of a ``FrameBlock`` id: the frame used a 29-bit identifier (``native/j1939_decode``'s flag).
EXTENDED_FLAG = 0x80000000
_ID_MASK = 0x1FFFFFFF


class FrameBlock(Sequence[RawFrame]):
    """A batch of CAN frames as columns, which sources may hand over instead of a ``list[RawFrame]``.

    Kernels read the arrays directly; everyone else sees a ``Sequence[RawFrame]`` whose items are
    built on demand. Columns: ``timestamps`` ('d'), ``ids`` ('I', 29-bit id with ``EXTENDED_FLAG``),
    ``dlc`` ('B', real payload length, up to 64 for CAN-FD), ``data`` (8 bytes per frame, zero padded),
    ``channel`` ('I', index into ``channels``), and ``long_data`` (frame index -> the whole payload of
    the few CAN-FD frames longer than 8 bytes).
    """

    __slots__ = ("channel", "channels", "data", "dlc", "ids", "long_data", "timestamps")

    def __init__(
        self, timestamps: array, ids: array, dlc: array, data: bytes, channel: array, channels: Sequence[str],
        long_data: dict[int, bytes] | None = None,
    ) -> None:
        n = len(ids)
        if not (len(timestamps) == len(dlc) == len(channel) == n and len(data) == 8 * n):
            raise ValueError("FrameBlock columns must have one entry (8 data bytes) per frame")
        self.timestamps, self.ids, self.dlc, self.data, self.channel = timestamps, ids, dlc, data, channel
        self.channels = channels
        self.long_data = long_data or {}

    @classmethod
    def from_frames(cls, frames: Iterable[RawFrame]) -> FrameBlock:
        ts, ids, dlc, chan = array("d"), array("I"), array("B"), array("I")
        data = bytearray()
        names: dict[str, int] = {}
        long_data: dict[int, bytes] = {}
        for i, f in enumerate(frames):
            ts.append(f.timestamp)
            ids.append((f.arbitration_id & _ID_MASK) | (EXTENDED_FLAG if f.is_extended else 0))
            dlc.append(len(f.data))
            data += (f.data + bytes(8))[:8]
            if len(f.data) > 8:
                long_data[i] = f.data
            chan.append(names.setdefault(f.channel, len(names)))
        return cls(ts, ids, dlc, bytes(data), chan, list(names), long_data)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> RawFrame: ...

    @overload
    def __getitem__(self, i: slice) -> FrameBlock: ...

    def __getitem__(self, i: int | slice) -> RawFrame | FrameBlock:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self.ids))
            if step != 1:
                return FrameBlock.from_frames([self[k] for k in range(start, stop, step)])
            stop = max(stop, start)
            return FrameBlock(
                self.timestamps[start:stop], self.ids[start:stop], self.dlc[start:stop],
                self.data[8 * start:8 * stop], self.channel[start:stop], self.channels,
                {k - start: v for k, v in self.long_data.items() if start <= k < stop},
            )
        n = len(self.ids)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("FrameBlock index out of range")
        can_id = self.ids[i]
        data = self.long_data.get(i) if self.long_data else None
        if data is None:
            data = self.data[8 * i: 8 * i + self.dlc[i]]
        return RawFrame(self.timestamps[i], can_id & _ID_MASK, data, bool(can_id & EXTENDED_FLAG),
                        self.channels[self.channel[i]])

    def __iter__(self) -> Iterator[RawFrame]:
        # One pass over the columns (no __getitem__ call per frame): list(block) is the RawFrame path.
        data, long_data, channels = self.data, self.long_data, self.channels
        columns = zip(self.timestamps, self.ids, self.dlc, self.channel, strict=True)
        for i, (ts, can_id, n, ch) in enumerate(columns):
            payload = long_data.get(i) if long_data else None
            if payload is None:
                payload = data[8 * i: 8 * i + n]
            yield RawFrame(ts, can_id & _ID_MASK, payload, can_id >= EXTENDED_FLAG, channels[ch])


class SampleColumns:
    """Decoded values as columns, so the hot path makes a ``Sample`` only for what it keeps.

    Per value: ``timestamps`` ('d'), ``field`` ('H', index into ``names`` and ``units``: our signal
    name and its unit), ``source`` ('H', index into ``sources``) and ``values`` ('d'). Several fields
    may carry the same signal name (one signal sent in two messages).
    """

    __slots__ = ("field", "names", "source", "sources", "timestamps", "units", "values")

    def __init__(
        self, timestamps: array, field: array, source: array, values: array,
        names: Sequence[str], units: Sequence[str], sources: Sequence[str],
    ) -> None:
        if not len(timestamps) == len(field) == len(source) == len(values):
            raise ValueError("SampleColumns columns must have one entry per value")
        self.timestamps, self.field, self.source, self.values = timestamps, field, source, values
        self.names, self.units, self.sources = names, units, sources

    def __len__(self) -> int:
        return len(self.values)

    def sample(self, j: int) -> Sample:
        f = self.field[j]
        return Sample(self.timestamps[j], self.names[f], self.values[j], self.sources[self.source[j]], self.units[f])

    def samples(self, indices: Iterable[int] | None = None) -> list[Sample]:
        """``Sample`` objects for ``indices`` (default: all), in that order."""
        return [self.sample(j) for j in (range(len(self.values)) if indices is None else indices)]
