"""J1939 frame decoding: identifiers, mapped signals, transport sessions, DM1/DM2 and VIN.

``J1939Decoder.decode_batch`` takes a batch of frames (as sources deliver them; a ``FrameBlock``'s
columns are used as they are) and decodes every mapped signal of every frame in one ``j1939_decode``
kernel call. The values stay columns (``SampleColumns``: no ``Sample`` object per value); the kernel
hands back the few frames that need Python (TP.CM / TP.DT to the transport reassembler, DM1/DM2 and
the VIN to their parsers), and only those become ``RawFrame`` objects. A frame that cannot be
decoded is counted by reason and skipped; nothing here raises for bad input.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import native
from edge_agent.counters import Counters
from edge_agent.decoding.catalog import MessageLayout, SignalCatalog, extract
from edge_agent.decoding.compiled import compile_catalog
from edge_agent.decoding.j1939.dm import parse_dm, parse_vin
from edge_agent.decoding.j1939.tp import TransportReassembler
from edge_agent.errors import DecodeError
from edge_agent.model import (
    EXTENDED_FLAG,
    DiagnosticMessage,
    FrameBlock,
    RawFrame,
    Sample,
    SampleColumns,
    VehicleId,
)

# SAE J1939-73 5.7.1 / 5.7.2: DM1 active and DM2 previously active DTCs; J1939-71: VI (VIN).
PGN_DM1 = 65226
PGN_DM2 = 65227
PGN_VI = 65260
# SAE J1939-21 5.10: transport protocol connection management and data transfer.
PGN_TP_CM = 60416
PGN_TP_DT = 60160

#: How often (in bus-clock seconds) unfinished transport sessions are checked for timeouts.
TP_EXPIRE_EVERY_S = 0.1

_DM_KIND = {PGN_DM1: "DM1", PGN_DM2: "DM2"}
_SPECIAL = array("I", sorted((PGN_TP_DT, PGN_TP_CM, PGN_DM1, PGN_DM2, PGN_VI)))
_PAD = bytes(8)


@dataclass(slots=True)
class DecodedBatch:
    """What one batch of frames decoded to.

    ``columns`` holds the values the kernel decoded from single frames, in frame order; ``extra`` the
    samples of reassembled (transport protocol) messages, which come after them.
    """

    columns: SampleColumns | None = None
    extra: list[Sample] = field(default_factory=list)
    diagnostics: list[DiagnosticMessage] = field(default_factory=list)
    vehicle_ids: list[VehicleId] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        """Every decoded value as a ``Sample`` (columns first), for callers that want objects."""
        return [*(self.columns.samples() if self.columns is not None else ()), *self.extra]


class J1939Decoder:
    """Stateful decoder for one J1939 bus (the transport reassembler keeps sessions across batches)."""

    def __init__(self, catalog: SignalCatalog, counters: Counters) -> None:
        self._catalog = catalog.by_pgn
        self._counters = counters
        self._tp = TransportReassembler(counters)
        self._arrays = compile_catalog(catalog)
        self._kernel_args = self._arrays.kernel_args()
        self._decode = native.kernel("j1939_decode").decode_frames
        self._last_expire = float("-inf")
        self._sources: dict[int, str] = {sa: f"j1939:0x{sa:02X}" for sa in range(256)}
        # Column tables shared by every batch (the sampling gate caches its slots per table).
        self._names = tuple(f.signal for f in self._arrays.fields)
        self._units = tuple(f.unit for f in self._arrays.fields)
        self._source_names = tuple(self._sources[sa] for sa in range(256))
        self._gather = native.kernel("j1939_gather").gather

    def decode_batch(self, frames: Sequence[RawFrame]) -> DecodedBatch:
        out = DecodedBatch()
        if not frames:
            return out
        if isinstance(frames, FrameBlock):
            ids, data, dlc, stamps = frames.ids, frames.data, frames.dlc, frames.timestamps
        else:
            ids = array("I", [(f.arbitration_id & 0x1FFFFFFF) | (EXTENDED_FLAG if f.is_extended else 0)
                              for f in frames])
            data = b"".join([(f.data + _PAD)[:8] for f in frames])
            dlc = array("B", [min(len(f.data), 8) for f in frames])
            stamps = array("d", [f.timestamp for f in frames])
        vframe, vfield, values, special, stats = self._decode(ids, data, dlc, *self._kernel_args, _SPECIAL)
        ts, source = self._gather(vframe, stamps, ids)
        out.columns = SampleColumns(ts, vfield, source, values, self._names, self._units, self._source_names)
        decoded = stats[0]
        for i in special:
            frame = frames[i]
            can_id = frame.arbitration_id
            pf = (can_id >> 16) & 0xFF
            pgn = ((can_id >> 8) & 0x3FF00) if pf < 240 else ((can_id >> 8) & 0x3FFFF)
            if pgn in (PGN_TP_CM, PGN_TP_DT):
                for message in self._tp.feed(frame):
                    self._whole_message(message.pgn, message.source, message.timestamp, message.data, out)
                decoded += 1
            elif self._whole_message(pgn, can_id & 0xFF, frame.timestamp, frame.data, out):
                decoded += 1
        last = frames[-1].timestamp
        if last - self._last_expire >= TP_EXPIRE_EVERY_S:
            self._tp.expire(last)
            self._last_expire = last
        counters = self._counters
        counters.inc("frames_decoded", decoded)
        counters.inc("frames_ignored", stats[1] + stats[5])
        if stats[2]:
            counters.inc("signals_not_available", stats[2])
        if stats[3]:
            counters.inc("signals_error_indicator", stats[3])
        if stats[4]:
            counters.decode_error("can_short_frame", stats[4])
        counters.inc("samples", len(values) + len(out.extra))
        return out

    def finish(self, now: float) -> None:
        """End of stream: let every unfinished transport session time out (and be counted)."""
        self._tp.expire(now + 3600.0)

    def _signals(self, layout: MessageLayout, frame: RawFrame, sa: int, out: DecodedBatch) -> bool:
        values, not_available, errors, short = extract(layout, frame.data)
        if short:
            self._counters.decode_error("can_short_frame")
        if not_available:
            self._counters.inc("signals_not_available", not_available)
        if errors:
            self._counters.inc("signals_error_indicator", errors)
        source = self._sources[sa]
        ts = frame.timestamp
        out.extra.extend(Sample(ts, f.signal, value, source, f.unit) for f, value in values)
        return bool(values)

    def _whole_message(self, pgn: int, sa: int, ts: float, data: bytes, out: DecodedBatch) -> bool:
        """A complete DM1/DM2/VI payload (single frame or reassembled); mapped PGNs go to the catalog."""
        try:
            kind = _DM_KIND.get(pgn)
            if kind is not None:
                out.diagnostics.append(parse_dm(kind, ts, sa, data))
                return True
            if pgn == PGN_VI:
                out.vehicle_ids.append(VehicleId(ts, parse_vin(data), self._sources[sa]))
                return True
        except DecodeError as exc:
            self._counters.decode_error(exc.reason)
            return False
        layout = self._catalog.get(pgn)
        if layout is not None:
            frame = RawFrame(ts, 0, data)
            return self._signals(layout, frame, sa, out)
        return False
