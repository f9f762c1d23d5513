"""A simulated OBD-II ECU (ISO 15765-4 on CAN) for tests, captures and HIL runs.

``ObdEcu`` is a state machine over our ``RawFrame``: ``on_frame`` takes what the tester sends,
``tick(now)`` returns the answers due by ``now``. It answers functional (0x7DF / 0x18DB33F1) and
its own physical requests for:

* Service 01: supported-PID bitmaps for the PIDs it is given, and the profile's PIDs, encoded through
  the profile's DBC from a settable ``ObdVehicleState`` (so the DBC stays the one source of scaling).
  As J1979 says, an ECU supporting none of the requested PIDs stays silent.
* Services 03 / 07 / 0A: stored, pending and permanent DTCs (count byte first, as on CAN).
* Service 09 PID 02: the VIN, multi-frame: first frame, then it *waits for the tester's flow control*
  (N_Bs 1000 ms, ISO 15765-2) before sending the consecutive frames, honouring BS and STmin.

Behaviours for the unhappy paths: ``slow`` sends ``7F xx 78`` (response pending) and answers
``slow_delay_s`` later, ``negative`` refuses everything with ``7F xx 22`` (conditions not correct),
``silent`` never answers; with the ignition off the ECU is asleep and silent, as real ones are.
Several ECUs share a bus (engine 0x7E8, transmission 0x7E9): ``VirtualBusEcus`` runs any number
of them on a python-can bus (virtual, or SocketCAN vcan0 on a HIL rig) in a thread;
``python -m hil.obd_ecu --channel vcan0`` runs both, replaying the van drive of ``hil.record_obd``.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import can
from cantools.database.can import Message

from edge_agent.decoding.obd.dtc import dtc_bytes
from edge_agent.decoding.obd.isotp import (
    FUNCTIONAL_11,
    FUNCTIONAL_29,
    N_CR_S,
    physical_request_id,
    segment,
)
from edge_agent.decoding.obd.pids import BITMAP_PIDS, PID_LENGTHS, bitmap_bytes
from edge_agent.model import RawFrame
from firmware_profiles import Profile

#: ISO 15765-2 N_Bs: how long a sender waits for flow control after a first frame (same as N_Cr).
N_BS_S = N_CR_S
NRC_CONDITIONS_NOT_CORRECT = 0x22
NRC_SERVICE_NOT_SUPPORTED = 0x11
NRC_RESPONSE_PENDING = 0x78
BEHAVIOURS = ("normal", "slow", "negative", "silent")
#: Requests and flow controls an ECU remembers for inspection (bounded for long HIL runs).
HISTORY = 10_000


@dataclass(slots=True)
class ObdVehicleState:
    """What the vehicle is doing now, in our signal names and units; DTCs as codes (``"P0301"``)."""

    ignition: bool = True
    values: dict[str, float] = field(default_factory=dict)
    stored: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    permanent: tuple[str, ...] = ()


def ecu_response_id(index: int, extended: bool) -> int:
    """Responder id of ECU ``index`` (0 engine, 1 transmission, ...): 0x7E8+i or 0x18DAF1<10+i>."""
    return 0x18DAF110 + index if extended else 0x7E8 + index


class ObdEcu:
    """One simulated OBD-II responder; deterministic for the same inputs."""

    def __init__(
        self,
        profile: Profile,
        index: int = 0,
        *,
        extended: bool = False,
        pids: Iterable[int] | None = None,
        vin: str | None = None,
        state: ObdVehicleState | None = None,
        behaviour: str = "normal",
        response_delay_s: float = 0.005,
        slow_delay_s: float = 0.3,
        channel: str = "can0",
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}")
        self.profile = profile
        self.extended = extended
        self.response_id = ecu_response_id(index, extended)
        self.request_id = physical_request_id(self.response_id, extended)
        self._functional = FUNCTIONAL_29 if extended else FUNCTIONAL_11
        self.vin = vin
        self.state = state or ObdVehicleState()
        self.behaviour = behaviour
        self.response_delay_s = response_delay_s
        self.slow_delay_s = slow_delay_s
        self.channel = channel
        self._message: dict[int, Message] = {}
        self._our_name: dict[tuple[int, str], str] = {}
        for spec in profile.signals.values():
            if spec.pid is not None:
                if spec.pid not in PID_LENGTHS:
                    raise ValueError(f"PID 0x{spec.pid:02X} ({spec.name}) has no J1979 data length in pids.py")
                self._message[spec.pid] = profile.database.get_message_by_name(spec.message)
                self._our_name[(spec.pid, spec.dbc_signal)] = spec.name
        data_pids = set(self._message) if pids is None else set(pids)
        self.pids: frozenset[int] = frozenset(data_pids | self._bitmaps_for(data_pids))
        self._queue: list[tuple[float, int, bytes]] = []  # (due, seq, frame data)
        self._seq = 0
        self._tx_rest: list[bytes] = []  # consecutive frames held back until flow control
        self._fc_deadline: float | None = None
        #: requests seen and flow controls received (tests read these)
        self.requests: deque[tuple[float, int, bytes]] = deque(maxlen=HISTORY)
        self.flow_controls: deque[tuple[float, bytes]] = deque(maxlen=HISTORY)

    @staticmethod
    def _bitmaps_for(pids: set[int]) -> set[int]:
        """Bitmap PIDs needed to announce ``pids``: 0x00 always, then each range up to the highest."""
        highest = max(pids, default=0)
        return {b for b in BITMAP_PIDS if b == 0 or b < highest}

    # -- input -----------------------------------------------------------------------------------

    def on_frame(self, frame: RawFrame) -> None:
        if frame.is_extended != self.extended or not frame.data:
            return
        if frame.arbitration_id == self.request_id and frame.data[0] >> 4 == 3:
            self._on_flow_control(frame)
            return
        if frame.arbitration_id not in (self._functional, self.request_id):
            return
        length = frame.data[0]
        if not 1 <= length <= 7 or length >= len(frame.data):
            return  # requests are single frames; anything else is not for us
        payload = bytes(frame.data[1 : 1 + length])
        self.requests.append((frame.timestamp, frame.arbitration_id, payload))
        if not self.state.ignition or self.behaviour == "silent" or self._tx_rest:
            return
        functional = frame.arbitration_id == self._functional
        answer = self._answer(payload, functional)
        if answer is None:
            return
        due = frame.timestamp + self.response_delay_s
        if self.behaviour == "negative":
            self._send(due, bytes([0x7F, payload[0], NRC_CONDITIONS_NOT_CORRECT]))
        elif self.behaviour == "slow":
            self._send(due, bytes([0x7F, payload[0], NRC_RESPONSE_PENDING]))
            self._send(due + self.slow_delay_s, answer)
        else:
            self._send(due, answer)

    def _on_flow_control(self, frame: RawFrame) -> None:
        self.flow_controls.append((frame.timestamp, bytes(frame.data)))
        if not self._tx_rest or self._fc_deadline is None:
            return
        status, block_size, st_min = frame.data[0] & 0xF, frame.data[1], frame.data[2]
        if status != 0:  # wait (1) or overflow (2): we keep it simple and give up on overflow
            if status == 2:
                self._tx_rest, self._fc_deadline = [], None
            return
        # STmin 0x00-0x7F is milliseconds; 0xF1-0xF9 is 100-900 us (ISO 15765-2 9.6.5.4).
        gap = st_min / 1000.0 if st_min <= 0x7F else 0.0001 * (st_min - 0xF0) if 0xF1 <= st_min <= 0xF9 else 0.127
        gap = max(gap, 0.0005)  # a real controller needs some time per frame
        count = len(self._tx_rest) if block_size == 0 else min(block_size, len(self._tx_rest))
        send, self._tx_rest = self._tx_rest[:count], self._tx_rest[count:]
        for i, data in enumerate(send):
            self._push(frame.timestamp + gap * (i + 1), data)
        self._fc_deadline = frame.timestamp + gap * count + N_BS_S if self._tx_rest else None

    # -- answers ---------------------------------------------------------------------------------

    def _answer(self, payload: bytes, functional: bool) -> bytes | None:
        sid = payload[0]
        if sid == 0x01:
            return self._current_data(payload[1:])
        if sid in (0x03, 0x07, 0x0A):
            codes = {0x03: self.state.stored, 0x07: self.state.pending, 0x0A: self.state.permanent}[sid]
            return bytes([sid + 0x40, len(codes)]) + b"".join(dtc_bytes(c) for c in codes)
        if sid == 0x09 and payload[1:2] == b"\x02":
            if self.vin is None:
                return None
            return bytes([0x49, 0x02, 0x01]) + self.vin.encode("ascii")
        # ISO 15765-4: no negative answer to a functional request for an unsupported service.
        return None if functional else bytes([0x7F, sid, NRC_SERVICE_NOT_SUPPORTED])

    def _current_data(self, pids: bytes) -> bytes | None:
        out = bytearray([0x41])
        for pid in pids:
            if pid not in self.pids:
                continue
            if pid in BITMAP_PIDS:
                out += bytes([pid]) + bitmap_bytes(pid, set(self.pids))
            elif pid in self._message:
                out += bytes([pid]) + self.encode_pid(pid)
        return bytes(out) if len(out) > 1 else None

    def encode_pid(self, pid: int) -> bytes:
        """Data bytes A.. of ``pid`` for the current state, through the DBC (values clamped to range)."""
        message = self._message[pid]
        values: dict[str, float | int] = {"Length": 0, "Service": 0x41, "PID": pid}
        for sig in message.signals:
            if sig.multiplexer_ids is None or pid not in sig.multiplexer_ids:
                continue
            value = self.state.values.get(self._our_name.get((pid, sig.name), ""), float(sig.offset))
            low = sig.minimum if sig.minimum is not None else float(sig.offset)
            high = sig.maximum if sig.maximum is not None else value
            values[sig.name] = min(max(value, low), high)
        data = bytes(message.encode(values, strict=False))
        return data[3 : 3 + PID_LENGTHS[pid]]

    # -- output ----------------------------------------------------------------------------------

    def _send(self, due: float, payload: bytes) -> None:
        frames = segment(payload)
        self._push(due, frames[0])
        if len(frames) > 1:
            self._tx_rest = frames[1:]
            self._fc_deadline = due + N_BS_S

    def _push(self, due: float, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (round(due, 6), self._seq, data))

    def next_due(self) -> float | None:
        """When the next frame is due (for event-driven simulations), or None."""
        return self._queue[0][0] if self._queue else None

    def tick(self, now: float) -> list[RawFrame]:
        """Frames due by ``now``, stamped with their due time."""
        if self._fc_deadline is not None and now > self._fc_deadline and not self._queue:
            self._tx_rest, self._fc_deadline = [], None  # N_Bs expired: the tester never answered
        out: list[RawFrame] = []
        while self._queue and self._queue[0][0] <= now:
            due, _, data = heapq.heappop(self._queue)
            out.append(RawFrame(due, self.response_id, data, self.extended, self.channel))
        return out


class Tester(Protocol):
    """The tester side of a simulation (``ObdPoller`` fits)."""

    def tick(self, now: float) -> list[RawFrame]: ...

    def on_frame(self, frame: RawFrame) -> list[RawFrame]: ...


def simulate(
    tester: Tester,
    ecus: list[ObdEcu],
    start: float,
    seconds: float,
    step_s: float = 0.001,
    on_step: Callable[[int, float], None] | None = None,
) -> Iterator[RawFrame]:
    """Run a tester against ECUs on simulated time; yield every bus frame in order.

    Each step: ``on_step(i, t)`` may change the ECUs' state, the tester's requests go out, then the
    ECUs' due answers are handed to the tester, whose flow control goes straight back to the ECUs.
    Frames the tester sends carry the step's time; ECU frames carry their own due time.
    """
    for i in range(round(seconds / step_s)):
        t = i * step_s
        now = round(start + t, 6)
        if on_step is not None:
            on_step(i, t)
        to_ecus = tester.tick(now)
        answers = sorted((f for ecu in ecus for f in ecu.tick(now)), key=lambda f: (f.timestamp, f.arbitration_id))
        for frame in answers:
            yield frame
            to_ecus.extend(tester.on_frame(frame))
        for sent in to_ecus:
            frame = RawFrame(now, sent.arbitration_id, sent.data, sent.is_extended, "can0")
            yield frame
            for ecu in ecus:
                ecu.on_frame(frame)


class VirtualBusEcus:
    """Runs ECUs on a python-can bus in a background thread (``with VirtualBusEcus(...) as sim:``)."""

    def __init__(self, ecus: list[ObdEcu], channel: str, interface: str = "virtual") -> None:
        self.ecus = ecus
        self._bus = can.Bus(interface=interface, channel=channel, receive_own_messages=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="obd-ecus", daemon=True)

    def __enter__(self) -> VirtualBusEcus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._bus.shutdown()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._bus.recv(timeout=0.001)
            if msg is not None and not msg.is_error_frame:
                frame = RawFrame(msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id)
                for ecu in self.ecus:
                    ecu.on_frame(frame)
            now = time.time()
            for ecu in self.ecus:
                for f in ecu.tick(now):
                    self._bus.send(can.Message(arbitration_id=f.arbitration_id, data=f.data,
                                               is_extended_id=f.is_extended))


def main(argv: list[str] | None = None) -> int:
    """Run an engine (0x7E8) and gearbox (0x7E9) on a bus, replaying the van drive in a loop."""
    import argparse
    from dataclasses import replace

    from firmware_profiles import load_profile
    from hil.record_obd import DEFAULT_SECONDS, VIN, van_speed, van_state

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--interface", default="socketcan", help="python-can interface (socketcan, virtual, ...)")
    parser.add_argument("--channel", default="vcan0")
    parser.add_argument("--extended", action="store_true", help="29-bit addressing")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default="normal")
    args = parser.parse_args(argv)
    profile = load_profile("light_obd2")
    engine = ObdEcu(profile, 0, extended=args.extended, vin=VIN, behaviour=args.behaviour)
    gearbox = ObdEcu(profile, 1, extended=args.extended, pids={0x0D}, behaviour=args.behaviour)
    odometer_m = 48_213_400.0
    with VirtualBusEcus([engine, gearbox], args.channel, args.interface):
        started = time.monotonic()
        try:
            while True:
                t = (time.monotonic() - started) % DEFAULT_SECONDS
                odometer_m += van_speed(t) / 3.6 * 0.1
                engine.state = van_state(t, round(odometer_m, -2))
                gearbox.state = replace(engine.state, stored=(), pending=())
                time.sleep(0.1)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
