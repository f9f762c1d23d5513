"""``ObdPoller``: the active OBD-II side, a pure state machine that decides which requests to send.

Driven by ``on_frame(frame)`` (every frame read from the bus; returns flow-control frames to send
at once) and ``tick(now)`` (returns the requests due at ``now``), it never touches a bus or a clock
itself, so tests and the capture recorder run it on simulated time and a thin runner wires it to a
``FrameSource`` + ``FrameSink``. It only asks; decoding what comes back stays with ``ObdDecoder``,
which sees the same frames.

What it does, in order (SAE J1979 / ISO 15765-4):

1. Discovery: ``01 00``, then ``01 20``, ``01 40`` ... while some responder's previous bitmap marks
   the next bitmap PID supported (J1979 Annex A). Each responder's answer is kept apart.
2. Polling, once per ``poll_interval_s``: the profile's PIDs that some responder supports, at most
   ``max_pids_per_request`` per request (J1979 / ISO 15031-5 allow up to six PIDs in one Service 01
   request, on CAN only; public summary in the ELM329 data sheet, "Multiple PID Requests"); DTCs
   (03 stored, 07 pending, 0A permanent) every ``dtc_interval_s``; the VIN (09 02) once per
   ignition cycle, retried until some responder gives it.
3. Ignition: polling runs only while the ignition is on: the caller's flag when it has one, else
   engine speed (PID 0x0C) above zero, else "responders still answer". When off, polling stops and a
   slow probe (``01 00``, plus ``0C`` when supported) goes out every ``off_probe_interval_s``.

One request is outstanding at a time. A functional request may be answered by several ECUs, so a
request ends P2 (50 ms, ISO 15765-4 Table 5 P2CAN max) after it was sent, or sooner once every
responder expected to answer has; a ``7F xx 78`` "response pending" extends that responder's wait to
P2* (5000 ms, ISO 15765-4 / ISO 14229-2 P2*CAN max), and open multi-frame answers are waited for
(bounded by the reassembler's N_Cr).

Flow control: a responder whose answer needs several frames (the VIN, long DTC lists) sends a first
frame and waits for our flow control on its *physical* request id (0x7E0-0x7E7 or 0x18DAxxF1) even
though we asked functionally; we answer every first frame with CTS, BS=0, STmin=0 ("send the rest
now"). We did not use ``can-isotp`` for this: its stacks are bound to one tx/rx id pair each (we
would need one per possible responder, 8 per addressing mode, plus one for the functional id), they
run their own threads on the wall clock, and they own the socket; here the only ISO-TP we transmit is
single-frame requests (a Mode 01 request is at most 7 bytes) and three-byte flow controls, which a
few lines do deterministically on frame time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge_agent.counters import Counters
from edge_agent.decoding.obd.isotp import (
    IsoTpReassembler,
    flow_control,
    is_response_id,
    physical_request_id,
    single_frame,
)
from edge_agent.decoding.obd.pids import BITMAP_PIDS, parse_bitmap
from edge_agent.decoding.obd.services import NRC_RESPONSE_PENDING, split_current_data
from edge_agent.model import RawFrame
from edge_agent.sources import FrameSink
from firmware_profiles import Profile

#: ISO 15765-4 Table 5: P2CAN, the most a responder may take to answer (legislated OBD).
P2_S = 0.050
#: ISO 15765-4 / ISO 14229-2: P2*CAN, the wait after a "response pending" (NRC 0x78).
P2_STAR_S = 5.0
PID_ENGINE_SPEED = 0x0C
DTC_SERVICES = (0x03, 0x07, 0x0A)
VIN_REQUEST = bytes([0x09, 0x02])
#: How many sent requests ``ObdPoller.sent`` remembers (for status reports and tests).
SENT_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class PollerSettings:
    """Timings of the poller; the defaults suit a telematics unit on a light vehicle."""

    p2_s: float = P2_S
    p2_star_s: float = P2_STAR_S
    dtc_interval_s: float = 60.0
    vin_retry_s: float = 30.0
    off_probe_interval_s: float = 5.0
    #: requests in a row nobody answered before we decide the vehicle has gone to sleep
    timeouts_before_off: int = 3


@dataclass(slots=True)
class _Request:
    payload: bytes
    sent_at: float
    expected: frozenset[int]
    answered: set[int] = field(default_factory=set)
    pending_until: dict[int, float] = field(default_factory=dict)


class ObdPoller:
    """Decides what to ask the vehicle and when. Not thread-safe: one caller drives it."""

    DISCOVERY, POLLING, OFF = "discovery", "polling", "off"

    def __init__(
        self,
        profile: Profile,
        counters: Counters | None = None,
        settings: PollerSettings | None = None,
        ignition: bool | None = None,
    ) -> None:
        if profile.obd is None:
            raise ValueError(f"profile {profile.name} has no [obd] settings")
        self._obd = profile.obd
        self._settings = settings or PollerSettings()
        self._counters = counters or Counters()
        self._extended = self._obd.request_id > 0x7FF
        # Our own reassembler with throwaway counters: ObdDecoder counts the bus's errors once.
        self._isotp = IsoTpReassembler(Counters())
        self._wanted = sorted({s.pid for s in profile.signals.values() if s.pid is not None} - set(BITMAP_PIDS))
        self._ignition_flag = ignition
        self.state = self.DISCOVERY
        #: responder id -> PIDs its bitmaps claim
        self.supported_by: dict[int, set[int]] = {}
        self.engine_running: bool | None = None
        self.vin_seen = False
        self.discovered = False
        self._pending: _Request | None = None
        self._queue: list[bytes] = [bytes([0x01, 0x00])]
        self._next_cycle = 0.0
        self._next_dtc = 0.0
        self._next_vin = 0.0
        self._next_probe = 0.0
        self._timeouts = 0
        #: the latest requests sent (time, payload), oldest first; bounded for a months-long run
        self.sent: deque[tuple[float, bytes]] = deque(maxlen=SENT_HISTORY)

    # -- inputs ----------------------------------------------------------------------------------

    @property
    def supported(self) -> frozenset[int]:
        """PIDs at least one responder supports."""
        return frozenset().union(*self.supported_by.values()) if self.supported_by else frozenset()

    @property
    def polled_pids(self) -> list[int]:
        """The profile's PIDs the vehicle supports: what each cycle asks for."""
        return [p for p in self._wanted if p in self.supported]

    def set_ignition(self, on: bool | None) -> None:
        """The caller knows the ignition state (a wired ignition input); ``None`` to infer it again."""
        self._ignition_flag = on

    def on_frame(self, frame: RawFrame) -> list[RawFrame]:
        """Take one received frame; return flow-control frames to send immediately."""
        if frame.is_extended != self._extended or not is_response_id(frame.arbitration_id, frame.is_extended):
            return []
        out: list[RawFrame] = []
        # Only while we have asked: a first frame answering a workshop tester's request is that
        # tester's to flow-control, and a second FC would confuse the ECU.
        if self._pending is not None and frame.data and frame.data[0] >> 4 == 1:
            fc_id = physical_request_id(frame.arbitration_id, frame.is_extended)
            out.append(RawFrame(frame.timestamp, fc_id, flow_control(), frame.is_extended, frame.channel))
            self._counters.inc("obd_flow_controls")
        message = self._isotp.feed(frame)
        if message is not None:
            self._on_response(frame.arbitration_id, message.payload, message.timestamp)
        return out

    def _on_response(self, responder: int, payload: bytes, ts: float) -> None:
        request = self._pending
        if request is None or not payload:
            return
        if payload[0] == 0x7F and len(payload) >= 3 and payload[1] == request.payload[0]:
            if payload[2] == NRC_RESPONSE_PENDING:
                request.pending_until[responder] = ts + self._settings.p2_star_s
                return
            request.answered.add(responder)
            request.pending_until.pop(responder, None)
            return
        if payload[0] != request.payload[0] + 0x40:
            return  # an answer to someone else's request
        request.answered.add(responder)
        request.pending_until.pop(responder, None)
        if payload[0] == 0x41:
            segments, _ = split_current_data(payload)
            for pid, data in segments:
                if pid in BITMAP_PIDS and len(data) == 4:
                    known = self.supported_by.setdefault(responder, set())
                    known.difference_update(range(pid + 1, pid + 33))
                    known.update(parse_bitmap(pid, data))
                elif pid == PID_ENGINE_SPEED and len(data) == 2:
                    # rpm = raw/4 (J1979), so "above zero" needs no scaling
                    self.engine_running = data != b"\x00\x00"
        elif payload[:2] == bytes([0x49, 0x02]):
            self.vin_seen = True

    # -- outputs ---------------------------------------------------------------------------------

    def tick(self, now: float) -> list[RawFrame]:
        """Requests to send at ``now`` (zero or one frame)."""
        self._isotp.expire(now)
        if self._pending is not None:
            if not self._finished(self._pending, now):
                return []
            self._complete(self._pending, now)
            self._pending = None
        payload = self._next_request(now)
        if payload is None:
            return []
        self._pending = _Request(payload, now, self._expected(payload))
        self.sent.append((now, payload))
        self._counters.inc("obd_requests")
        frame = RawFrame(now, self._obd.request_id, single_frame(payload), self._extended)
        return [frame]

    def _expected(self, payload: bytes) -> frozenset[int]:
        """Responders that must answer before P2 runs out: for Mode 01, those supporting one of the
        PIDs (J1979: the others stay silent); every known one when a bitmap PID is asked. Empty
        (wait the whole P2) for other services, whose responders we cannot predict."""
        if payload[0] != 0x01:
            return frozenset()
        asked = set(payload[1:])
        if asked & set(BITMAP_PIDS):
            return frozenset(self.supported_by)
        return frozenset(r for r, pids in self.supported_by.items() if pids & asked)

    def _finished(self, request: _Request, now: float) -> bool:
        if self._isotp.open_sessions:
            return False
        if any(until > now for until in request.pending_until.values()):
            return False
        if request.pending_until:
            return True  # every "pending" responder ran out of P2*
        if request.expected and request.expected <= request.answered:
            return True
        return now - request.sent_at >= self._settings.p2_s

    def _complete(self, request: _Request, now: float) -> None:
        if request.answered:
            self._timeouts = 0
        else:
            self._timeouts += 1
            if self.state != self.OFF:
                self._counters.inc("obd_request_timeouts")
        first = request.payload[0]
        bitmap = request.payload[1] if first == 0x01 and len(request.payload) >= 2 else None
        if self.state == self.DISCOVERY and bitmap is not None and bitmap in BITMAP_PIDS:
            if not request.answered and bitmap == 0x00:
                self._go_off(now)
            else:
                self._discovery_step(bitmap, now)
            return
        if self.state == self.OFF:
            if request.answered and not self.discovered:
                # The probe's 01 00 answer is discovery's first step: carry on from there.
                self.state = self.DISCOVERY
                self._discovery_step(0x00, now)
            elif request.answered:
                self._ignition_check(now, just_discovered=False)
            return
        if self.state == self.POLLING and (
            self._timeouts >= self._settings.timeouts_before_off or not self._ignition_on()
        ):
            self._go_off(now)

    def _discovery_step(self, bitmap: int, now: float) -> None:
        """After bitmap ``bitmap`` was answered: ask the next one if announced, else start polling."""
        following = bitmap + 0x20
        if following in BITMAP_PIDS and any(following in pids for pids in self.supported_by.values()):
            self._queue = [bytes([0x01, following])]
        else:
            self._queue = []
            self.discovered = True
            self._ignition_check(now, just_discovered=True)

    def _ignition_on(self) -> bool:
        if self._ignition_flag is not None:
            return self._ignition_flag
        return self.engine_running is not False

    def _ignition_check(self, now: float, just_discovered: bool) -> None:
        """After discovery or an answered probe: poll if the ignition is on, else stay off."""
        if self._ignition_on():
            was_off = self.state == self.OFF or just_discovered
            self.state = self.POLLING
            self._queue = []
            self._timeouts = 0
            if was_off:  # a new ignition cycle: DTCs and VIN again, polling at once
                self._next_cycle = self._next_dtc = now
                self.vin_seen = False
                self._next_vin = now
        else:
            self._go_off(now, probe_now=False)

    def _go_off(self, now: float, probe_now: bool = False) -> None:
        self.state = self.OFF
        self._queue = []
        self._next_probe = now if probe_now else now + self._settings.off_probe_interval_s

    def _next_request(self, now: float) -> bytes | None:
        if self.state == self.DISCOVERY:
            return self._queue.pop(0) if self._queue else None
        if self.state == self.OFF:
            if now < self._next_probe:
                return None
            self._next_probe = now + self._settings.off_probe_interval_s
            # The probe asks for engine speed too, so one answer says both "awake" and "running".
            extra = [PID_ENGINE_SPEED] if PID_ENGINE_SPEED in self.supported else []
            return bytes([0x01, 0x00, *extra])
        if not self._ignition_on():
            self._go_off(now)
            return None
        if not self._queue and now >= self._next_cycle:
            self._queue = self._cycle(now)
        return self._queue.pop(0) if self._queue else None

    def _cycle(self, now: float) -> list[bytes]:
        """The requests of one polling cycle."""
        interval = self._obd.poll_interval_s
        # Keep a fixed cadence, but never try to catch up on cycles a slow bus made us miss.
        self._next_cycle = max(self._next_cycle + interval, now + interval / 2)
        pids = self.polled_pids
        size = self._obd.max_pids_per_request
        requests = [bytes([0x01, *pids[i : i + size]]) for i in range(0, len(pids), size)]
        if now >= self._next_dtc:
            self._next_dtc = now + self._settings.dtc_interval_s
            requests.extend(bytes([sid]) for sid in DTC_SERVICES)
        if not self.vin_seen and now >= self._next_vin:
            self._next_vin = now + self._settings.vin_retry_s
            requests.append(VIN_REQUEST)
        return requests


def drive(poller: ObdPoller, frames: list[RawFrame], sink: FrameSink, now: float) -> int:
    """One turn of the runner loop: show the poller what arrived, send its flow control and requests.

    Call it after every read (at least every ~10 ms while polling, so P2 is measured closely), with
    ``now`` on the same clock as the frames' timestamps (the bus driver's receive time).
    Returns how many frames were sent.
    """
    sent = 0
    for frame in frames:
        for out in poller.on_frame(frame):
            sink.send(out)
            sent += 1
    for out in poller.tick(now):
        sink.send(out)
        sent += 1
    return sent
