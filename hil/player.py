"""Plays a scenario's plan on the rig's clock: ECU frames, OBD answers, NMEA epochs, agent kills, network drops.

Two paths put frames on the bus. The J1939 truck ECU runs on its own thread and the rig's loop sends
its frames in bursts every ``TICK_S``. The OBD-II ECU answers on the CAN link's receiving thread
(``CanLink.serve``), the moment the agent's request arrives: the agent gives an answer P2 = 50 ms
(ISO 15765-4) and, after three unanswered requests, decides the vehicle is asleep and only probes
every 5 s. When the answers went out on the loop's next turn instead, a loaded machine that delayed
that turn past P2 cost the agent 5 s of data (the van scenario's 10 s idle then came out too short).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge_agent.model import RawFrame
from firmware_profiles import load_profile
from hil.can_link import CanLink, RigError
from hil.gnss_sim import Faults, GnssSimulator, Kinematics, Route, Window
from hil.obd_ecu import ObdEcu
from hil.truck_ecu import TruckEcu, TruckState

if TYPE_CHECKING:
    from hil.rig import HilRig

#: The rig's loop period (wall seconds): truck frame bursts, delayed OBD frames, NMEA epochs.
TICK_S = 0.005
#: ``ObdEcu`` keeps due times rounded to the microsecond: an answer due "now" may sit up to 0.5 us later.
DUE_ROUNDING_S = 1e-6
#: A generated frame this late (wall seconds) is dropped rather than sent: the clock was paused.
LATE_S = 0.25
#: A loop turn that comes this much later than ``TICK_S`` (wall seconds) means the rig stalled (a loaded
#: machine): the scenario clock is held for the stall instead of jumping ahead, see ``StallHold``.
STALL_S = 0.05


class PlannedRoute(Route):
    """A ``Route`` for ``GnssSimulator`` whose ``t`` is wall seconds, mapped to the scenario's position."""

    def __init__(self, position: Callable[[float], Kinematics], duration_s: float) -> None:
        super().__init__([(0.0, 0.0)], 1.0)
        self._position = position
        self.duration_s = duration_s

    def at(self, t: float) -> Kinematics:
        return self._position(t)


class StallHold:
    """Holds the scenario clock while the rig's loop is stalled, so no state is cut short on the bus.

    While the loop does not run, nothing reaches the bus. Without a hold the scenario clock ran on
    meanwhile: the vehicle's states were shorter on the bus than planned, and a stall in the last
    fraction of a second before ignition off cut the engine-off spell below the agent's trip end
    debounce, so the trip never ended (seen in CI on depot_day under two xdist workers). Held, every
    state still has its planned wall length of frames; the stall is a pause of the bus, as the
    agent's start-up after a kill is. Frames due during the stall are dropped: they are stale.
    """

    def __init__(self, rig: HilRig, start: float) -> None:
        self.rig = rig
        self.last = start
        #: frames stamped before this wall time were due during the last stall
        self.resume = start
        self.stalls = 0
        self.held_s = 0.0

    def turn(self, now: float) -> None:
        """A loop turn at wall time ``now``: hold the clock for the part of the gap beyond one tick."""
        stalled = now - self.last - TICK_S
        if stalled > STALL_S:
            self.rig._paused += stalled
            self.held_s += stalled
            self.stalls += 1
            self.resume = now
        self.last = now

    def skip(self, now: float) -> None:
        """The gap up to ``now`` is accounted for elsewhere (the agent's restart pauses the clock itself)."""
        self.last = now


class _Stopped(Exception):
    """Ends the ECU thread from inside ``TruckEcu.run``'s timeline callback."""


class Player:
    """Plays the plan on one rig: see the module docstring."""

    def __init__(self, rig: HilRig, link: CanLink, gnss_fd: int) -> None:
        self.rig, self.link, self.gnss_fd = rig, link, gnss_fd
        self.plan = rig.plan
        self.frames_sent = self.frames_dropped = self.epochs = 0
        s = rig.scenario
        profile = load_profile(s.profile)
        # No artificial answer delay: the answer leaves on the thread that received the request.
        self.obd = (ObdEcu(profile, 0, vin=s.vin, state=self.plan.obd_state(0.0), response_delay_s=0.0)
                    if s.is_obd else None)
        self.truck = None if s.is_obd else TruckEcu(profile, vin=s.vin)
        self.faults = Faults()
        wall_duration = self.plan.duration_s / s.speedup
        route = PlannedRoute(lambda t: self.plan.position(rig.scenario_time(t)), 10 * wall_duration + 3600)
        self.gnss = GnssSimulator(route, 0.0, faults=self.faults)
        self._frames: queue.SimpleQueue[RawFrame] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ecu_thread = threading.Thread(target=self._ecu_loop, name="hil-truck-ecu", daemon=True)
        #: the OBD ECU and the frame counters are shared with the link's receiving thread
        self._lock = threading.Lock()
        self._agent_up = True
        self._network_down = False
        self.hold: StallHold | None = None

    def play(self) -> None:
        rig, plan = self.rig, self.plan
        rig._t0 = t0 = time.time()
        self.gnss.start_utc = t0  # NMEA time of day = wall clock (bus time = wall time)
        if self.truck is not None:
            self._ecu_thread.start()
        if self.obd is not None:
            self.link.serve(self._answer)
        kills = list(plan.kills)
        period = 1.0 / rig.scenario.gnss_rate_hz
        next_epoch = 0.0
        down_until: float | None = None
        self.hold = hold = StallHold(rig, t0)
        while True:
            now = time.time()
            hold.turn(now)
            offset = now - t0
            t = rig.scenario_time(offset)
            if t >= plan.duration_s:
                return
            self._network(t)
            if down_until is None and kills and t >= kills[0].at:
                rig._echo(f"t={t:.0f} s: kill_agent (step {kills[0].step})")
                self._agent_up = False
                rig._kill_agent()
                down_until = now + kills.pop(0).down_s / rig.scenario.speedup
            elif down_until is not None and now >= down_until:
                pause = time.time()
                self._agent_up = True  # the ECU answers a starting agent as it would any tester
                rig._start_agent(self.link)
                rig._paused += time.time() - pause
                hold.skip(time.time())
                down_until = None
                continue
            up = down_until is None
            if rig.proc is not None and up and rig.proc.poll() is not None:
                raise RigError(f"fleet-agent exited with {rig.proc.returncode} mid-scenario:\n{rig.log_tail()}")
            if self.truck is not None:
                burst: list[RawFrame] = []
                while not self._frames.empty():
                    f = self._frames.get_nowait()
                    if up and now - f.timestamp <= LATE_S and f.timestamp >= hold.resume:
                        burst.append(f)
                    else:
                        self.frames_dropped += 1
                self._send(burst)
            if self.obd is not None:
                self._obd_pending(now)
            if offset >= next_epoch:
                self.faults.lost_fix[:] = [Window(-1e18, 1e18)] if plan.gnss_lost_at(t) else []
                if up:
                    self._write_nmea(offset)
                next_epoch += period
            time.sleep(TICK_S)

    def _network(self, t: float) -> None:
        """Cut or restore the agent's path to the broker where the plan's ``network_drop`` windows say."""
        down = self.plan.network_down_at(t)
        if down == self._network_down:
            return
        net = self.rig.network
        if net is None:  # the scenario parser refuses network_drop without [cloud]
            raise RigError("network_drop: this rig has no network to cut (the scenario needs [cloud])")
        self._network_down = down
        net.set_down(down)
        self.rig._echo(f"t={t:.0f} s: network {'dropped' if down else 'restored'}")

    def _ecu_loop(self) -> None:
        """The truck ECU on its own thread, paced by the wall clock: each frame is made when it is due.

        ``TruckEcu.run`` asks the timeline for the state at every scheduled transmission; we block
        there until that instant, so the state is the scenario's *at* that moment (pauses included)
        and an ECU that is silent (ignition off) simply sleeps instead of running ahead.
        """
        assert self.truck is not None
        rig = self.rig

        def timeline(off: float) -> TruckState:
            delay = rig._t0 + off - time.time()
            if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                raise _Stopped
            return self.plan.truck_state(rig.scenario_time(off))

        try:
            for frame in self.truck.run(timeline, rig._t0, math.inf):
                self._frames.put(frame)
        except _Stopped:
            return

    def stop(self) -> None:
        self._stop.set()
        if self.obd is not None:
            self.link.serve(None)
        if self._ecu_thread.is_alive():
            self._ecu_thread.join(timeout=2.0)

    def _send(self, frames: list[RawFrame]) -> None:
        if frames:
            self.link.inject(frames)
            with self._lock:
                self.frames_sent += len(frames)

    def _answer(self, frame: RawFrame) -> list[RawFrame]:
        """On the link's thread: the ECU in the scenario's state of this instant answers ``frame``."""
        assert self.obd is not None
        with self._lock:
            now = time.time()
            self.obd.state = self.plan.obd_state(self.rig.scenario_time(now - self.rig._t0))
            self.obd.on_frame(frame)
            answers = self.obd.tick(now + DUE_ROUNDING_S)
            if not self._agent_up:
                self.frames_dropped += len(answers)
                return []
            self.frames_sent += len(answers)
            return answers

    def _obd_pending(self, now: float) -> None:
        """Frames the ECU scheduled for later: consecutive frames after a flow control, delayed answers."""
        assert self.obd is not None
        with self._lock:
            answers = self.obd.tick(now)  # also gives up on a flow control that never came (N_Bs)
            if not self._agent_up:
                self.frames_dropped += len(answers)
                return
        self._send(answers)

    def _write_nmea(self, offset: float) -> None:
        data = "".join(s + "\r\n" for s in self.gnss.sentences(offset)).encode("ascii")
        try:
            os.write(self.gnss_fd, data)
            self.epochs += 1
        except BlockingIOError:
            pass  # the agent is not reading (restarting); a receiver's UART would drop these too
