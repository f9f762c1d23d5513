"""A vehicle for ``fleet-provision check`` tests: the HIL simulators behind an slcan adapter emulator on a pty.

``BusAdapter`` is the ``hil.slcan_adapter.SlcanEmulator`` on a bus that runs at one bitrate: frames reach
the host, and the host's frames reach the ECUs, only while the adapter is open at that bitrate (as on a
real bus, where a node at the wrong rate sees only errors). ``Vehicle`` runs on it, in a thread, the HIL
``TruckEcu`` (periodic J1939 traffic, answers to requests for the VIN and engine hours, and an address
claim per ECU) or ``ObdEcu`` responders.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from edge_agent.model import RawFrame
from edge_agent.sources.slcan import BITRATE_CODES
from hil.obd_ecu import ObdEcu
from hil.slcan_adapter import SlcanEmulator
from hil.truck_ecu import TruckEcu, TruckState

PGN_REQUEST_PF = 0xEA
PGN_ADDRESS_CLAIMED = 60928
STEP_S = 0.002
_RATE_OF_CODE = {code: rate for rate, code in BITRATE_CODES.items()}


class BusAdapter(SlcanEmulator):
    def __init__(self, bus_bitrate: int) -> None:
        self.bus_bitrate = bus_bitrate
        self.adapter_bitrate: int | None = None  # the adapter's own default: not the bus's
        super().__init__()

    def _handle(self, cmd: str) -> None:
        if len(cmd) == 2 and cmd[0] == "S" and cmd[1].isdigit():
            self.adapter_bitrate = _RATE_OF_CODE.get(int(cmd[1]))
        super()._handle(cmd)

    def on_bus(self) -> bool:
        return self.is_open and self.adapter_bitrate == self.bus_bitrate

    def inject(self, *frames: RawFrame, raw: bytes = b"") -> None:
        if self.on_bus():
            super().inject(*frames, raw=raw)


def name_bytes(identity: int, manufacturer: int, function: int) -> bytes:
    """A J1939 NAME (J1939-81 4.1.1), arbitrary-address-capable, industry group 1 (on-highway)."""
    name = identity | manufacturer << 21 | function << 40 | 1 << 60 | 1 << 63
    return name.to_bytes(8, "little")


class Vehicle:
    def __init__(self, adapter: BusAdapter, *, truck: TruckEcu | None = None, obd: tuple[ObdEcu, ...] = (),
                 claims: dict[int, bytes] | None = None, state: TruckState | None = None) -> None:
        self.adapter = adapter
        self.truck = truck
        self.obd = obd
        self.claims = claims or {}
        self.state = state or TruckState(ignition=True, values={"engine_speed": 700.0, "engine_hours": 1234.5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vehicle", daemon=True)

    def __enter__(self) -> Vehicle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.adapter.close()

    def _periodic(self) -> Iterator[RawFrame]:
        assert self.truck is not None
        return self.truck.run(lambda _t: self.state, 0.0, 1e9)

    def _run(self) -> None:
        t0 = time.monotonic()
        periodic = self._periodic() if self.truck is not None else None
        due: RawFrame | None = None
        seen = 0
        while not self._stop.is_set():
            now_rel = time.monotonic() - t0
            burst: list[RawFrame] = []
            while periodic is not None:
                due = due or next(periodic)
                if due.timestamp > now_rel:
                    break
                burst.append(due)
                due = None
            sent = self.adapter.sent_frames()
            for frame in sent[seen:]:
                if self.adapter.on_bus():
                    burst += self._answer(RawFrame(time.time(), frame.arbitration_id, frame.data, frame.is_extended))
            seen = len(sent)
            for ecu in self.obd:
                burst += ecu.tick(time.time())
            if burst:
                self.adapter.inject(*burst)
            time.sleep(STEP_S)

    def _answer(self, frame: RawFrame) -> list[RawFrame]:
        out: list[RawFrame] = []
        for ecu in self.obd:
            ecu.on_frame(frame)
        if self.truck is None or not frame.is_extended or frame.arbitration_id >> 16 & 0xFF != PGN_REQUEST_PF:
            return out
        pgn = int.from_bytes(frame.data[:3], "little")
        if pgn == PGN_ADDRESS_CLAIMED:
            for sa, name in self.claims.items():
                out.append(RawFrame(frame.timestamp, 6 << 26 | 0xEE << 16 | 0xFF << 8 | sa, name, True))
            return out
        return out + self.truck.answer_request(frame.timestamp, pgn, self.state, frame.arbitration_id & 0xFF)
