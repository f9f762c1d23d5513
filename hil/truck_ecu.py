"""A simulated heavy-truck J1939 engine/vehicle ECU, driven by a vehicle-state timeline.

It broadcasts the heavy-truck profile's PGNs at their DBC cycle times and priorities (EEC1 every
20 ms, CCVS1 every 100 ms, ET1 every second, ...), DM1 once a second (multi-packet through BAM when
more than one DTC is active, J1939-73 5.7.1), and answers requests (PGN 59904, J1939-21 5.4.2) for
on-request PGNs such as engine hours and the VIN. Values are encoded through the profile's DBC, with
every signal the state does not set sent as "not available" (all ones), as a real ECU would.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from edge_agent.decoding.catalog import pgn_of
from edge_agent.model import J1939Dtc, Lamps, LampState, RawFrame
from firmware_profiles import Profile
from hil.j1939_frames import bam_frames, dm1_frames

PGN_REQUEST = 59904
PGN_VI = 65260
DM1_PERIOD_S = 1.0  # J1939-73 5.7.1: DM1 is broadcast once a second


@dataclass(frozen=True, slots=True)
class TruckState:
    """What the truck is doing at one instant, in engineering units (our signal names)."""

    ignition: bool = False
    values: dict[str, float] = field(default_factory=dict)
    lamps: Lamps = field(default_factory=lambda: Lamps(LampState.OFF, LampState.OFF, LampState.OFF, LampState.OFF))
    dtcs: tuple[J1939Dtc, ...] = ()


@dataclass(frozen=True, slots=True)
class _Periodic:
    pgn: int
    name: str
    priority: int
    period_s: float


class TruckEcu:
    """Frame generator for one ECU at ``source_address``; deterministic for a given timeline."""

    def __init__(self, profile: Profile, source_address: int = 0x00, vin: str = "1XKYDP9X0MJ000001") -> None:
        self.profile = profile
        self.source_address = source_address
        self.vin = vin
        self._by_message: dict[str, list[tuple[str, str]]] = {}
        for spec in profile.signals.values():
            self._by_message.setdefault(spec.message, []).append((spec.name, spec.dbc_signal))
        self._periodic: list[_Periodic] = []
        self._on_request: dict[int, str] = {}
        for message in profile.database.messages:
            cycle_ms = int(message.cycle_time or 0)
            pgn = pgn_of(message.frame_id)
            priority = (message.frame_id >> 26) & 0x7
            if cycle_ms > 0:
                self._periodic.append(_Periodic(pgn, message.name, priority, cycle_ms / 1000.0))
            else:
                self._on_request[pgn] = message.name

    def encode(self, message_name: str, values: dict[str, float]) -> bytes:
        """Encode one DBC message: mapped signals from ``values``, everything else "not available"."""
        message = self.profile.database.get_message_by_name(message_name)
        raw: dict[str, int] = {s.name: (1 << s.length) - 1 for s in message.signals}
        for our_name, dbc_name in self._by_message.get(message_name, []):
            if our_name in values:
                signal = message.get_signal_by_name(dbc_name)
                value = round((values[our_name] - float(signal.offset)) / float(signal.scale))
                # Clamp into the valid range (J1939-71: top byte 0xFA.. at most for measured values).
                limit = (0xFB << (signal.length - 8)) - 1 if signal.length >= 8 else (1 << signal.length) - 3
                raw[dbc_name] = max(0, min(int(value), limit))
        return bytes(message.encode(raw, scaling=False, strict=False, padding=True))

    def _frame(self, ts: float, pgn: int, priority: int, data: bytes, da: int = 0xFF) -> RawFrame:
        pf = (pgn >> 8) & 0xFF
        ps = da if pf < 240 else pgn & 0xFF
        can_id = (priority << 26) | ((pgn >> 16) & 0x3) << 24 | pf << 16 | ps << 8 | self.source_address
        return RawFrame(ts, can_id, data, True, "can0")

    def answer_request(self, ts: float, requested_pgn: int, state: TruckState, requester: int) -> list[RawFrame]:
        """Frames answering a PGN 59904 request (single frame, or BAM for the VIN)."""
        if requested_pgn == PGN_VI:
            payload = (self.vin + "*").encode("ascii")
            return bam_frames(ts, self.source_address, PGN_VI, payload, priority=6)
        name = self._on_request.get(requested_pgn)
        if name is None:
            return []
        return [self._frame(ts, requested_pgn, 6, self.encode(name, state.values))]

    def run(
        self, timeline: Callable[[float], TruckState], start: float, duration_s: float,
        requests: dict[float, int] | None = None,
    ) -> Iterator[RawFrame]:
        """Yield every frame of ``duration_s`` seconds in time order, starting at epoch ``start``.

        ``requests`` maps a time offset to a requested PGN (as a telematics unit at 0xF9 would ask).
        """
        queue: list[tuple[float, int, str]] = []
        for i in range(len(self._periodic)):
            # Stagger first transmissions as ECUs do, so messages do not all collide at t=0.
            heapq.heappush(queue, (0.001 * (i + 1), i, "periodic"))
        heapq.heappush(queue, (0.5, len(self._periodic), "dm1"))
        for t_req, pgn in sorted((requests or {}).items()):
            heapq.heappush(queue, (t_req, -pgn, "request"))
        pending: list[RawFrame] = []
        while queue:
            t, key, kind = heapq.heappop(queue)
            if t >= duration_s:
                break
            state = timeline(t)
            ts = start + t
            if kind == "periodic":
                p = self._periodic[key]
                heapq.heappush(queue, (round(t + p.period_s, 6), key, kind))
                if state.ignition:
                    pending.append(self._frame(ts, p.pgn, p.priority, self.encode(p.name, state.values)))
            elif kind == "dm1":
                heapq.heappush(queue, (round(t + DM1_PERIOD_S, 6), key, kind))
                if state.ignition:
                    pending.extend(dm1_frames(ts, self.source_address, state.lamps, state.dtcs))
            elif state.ignition:
                pending.extend(self.answer_request(ts, -key, state, 0xF9))
            # Multi-packet frames carry later timestamps; release everything due by now in order.
            pending.sort(key=lambda f: f.timestamp)
            while pending and pending[0].timestamp <= ts:
                yield pending.pop(0)
        yield from sorted(pending, key=lambda f: f.timestamp)


def with_values(state: TruckState, **values: float) -> TruckState:
    """A copy of ``state`` with some values changed."""
    merged = dict(state.values)
    merged.update(values)
    return replace(state, values=merged)
