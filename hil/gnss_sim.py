"""A GNSS receiver simulator: NMEA 0183 (GGA, RMC, VTG, GSA) along a route, to a pty or a list.

``GnssSimulator.sentences(t)`` renders one receiver epoch at simulated time ``t`` (UTC seconds);
``PtyGnss`` writes epochs at 1-10 Hz to the master side of a real pseudo-terminal so the agent reads
the slave side exactly as it would a USB receiver. Faults a test engineer asks for: lost fix
(quality 0, RMC status V, empty position), poor HDOP, position jumps, and corrupted sentences
(one character changed after the checksum was computed, as line noise does).

Sentence layouts follow NMEA 0183 v4.10 (GGA 15 fields, RMC with mode indicator, VTG, GSA with
PDOP/HDOP/VDOP); the checksum is the XOR of every character between ``$`` and ``*``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: WGS-84 mean Earth radius used for the route's local distances (IUGG mean radius R1, metres).
EARTH_RADIUS_M = 6_371_008.8
#: 1 knot = 1852 m per hour (international nautical mile).
MPS_TO_KNOTS = 3600.0 / 1852.0


@dataclass(frozen=True, slots=True)
class Kinematics:
    """Where the simulated antenna is at one instant."""

    lat: float
    lon: float
    speed_mps: float
    course_deg: float


@dataclass(frozen=True, slots=True)
class Window:
    """A fault active from ``start`` to ``end`` (simulated seconds since the route began)."""

    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(slots=True)
class Faults:
    """What the receiver should get wrong, and when (times relative to the route's start)."""

    lost_fix: list[Window] = field(default_factory=list)
    poor_hdop: list[Window] = field(default_factory=list)
    #: (window, north metres, east metres): positions offset while the window lasts (multipath).
    jumps: list[tuple[Window, float, float]] = field(default_factory=list)
    #: Probability that a sentence has one character changed after its checksum was computed.
    corrupt_rate: float = 0.0


class Route:
    """A polyline of (lat, lon) waypoints driven at constant speed, with stops at chosen waypoints.

    ``stops`` maps a waypoint index to seconds spent standing there (a depot idle, a delivery).
    """

    def __init__(
        self, waypoints: Sequence[tuple[float, float]], speed_mps: float, stops: dict[int, float] | None = None
    ) -> None:
        if len(waypoints) < 1 or speed_mps <= 0:
            raise ValueError("a route needs at least one waypoint and a positive speed")
        self.waypoints = list(waypoints)
        self.speed_mps = speed_mps
        stops = stops or {}
        # (t_start, t_end, from, to) legs; a stop is a leg from a point to itself.
        self._legs: list[tuple[float, float, tuple[float, float], tuple[float, float]]] = []
        t = 0.0
        for i, here in enumerate(self.waypoints):
            if stops.get(i, 0.0) > 0:
                self._legs.append((t, t + stops[i], here, here))
                t += stops[i]
            if i + 1 < len(self.waypoints):
                there = self.waypoints[i + 1]
                dur = distance_m(here, there) / speed_mps
                self._legs.append((t, t + dur, here, there))
                t += dur
        self.duration_s = t

    def at(self, t: float) -> Kinematics:
        t = min(max(t, 0.0), self.duration_s)
        for t0, t1, a, b in self._legs:
            if t <= t1:
                if a == b or t1 <= t0:
                    return Kinematics(a[0], a[1], 0.0, 0.0)
                f = (t - t0) / (t1 - t0)
                return Kinematics(a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), self.speed_mps, bearing_deg(a, b))
        last = self.waypoints[-1]
        return Kinematics(last[0], last[1], 0.0, 0.0)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance: exact enough over the few kilometres between waypoints."""
    lat0 = math.radians((a[0] + b[0]) / 2)
    dy = math.radians(b[0] - a[0]) * EARTH_RADIUS_M
    dx = math.radians(b[1] - a[1]) * EARTH_RADIUS_M * math.cos(lat0)
    return math.hypot(dx, dy)


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat0 = math.radians((a[0] + b[0]) / 2)
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(lat0)
    return math.degrees(math.atan2(dx, dy)) % 360.0


def checksum(body: str) -> str:
    value = 0
    for ch in body:
        value ^= ord(ch)
    return f"{value:02X}"


def _sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


def _lat(value: float) -> tuple[str, str]:
    deg = int(abs(value))
    return f"{deg:02d}{(abs(value) - deg) * 60:09.6f}", "N" if value >= 0 else "S"


def _lon(value: float) -> tuple[str, str]:
    deg = int(abs(value))
    return f"{deg:03d}{(abs(value) - deg) * 60:09.6f}", "E" if value >= 0 else "W"


class GnssSimulator:
    """Renders receiver epochs for a route; deterministic for a given seed."""

    def __init__(
        self, route: Route, start_utc: float, *, faults: Faults | None = None, talker: str = "GP",
        altitude_m: float = 120.0, satellites: int = 9, seed: int = 1,
    ) -> None:
        self.route = route
        self.start_utc = start_utc
        self.faults = faults or Faults()
        self.talker = talker
        self.altitude_m = altitude_m
        self.satellites = satellites
        self._rng = random.Random(seed)

    def sentences(self, t: float) -> list[str]:
        """GGA, RMC, VTG and GSA for the epoch ``t`` seconds after the route's start."""
        kin = self.route.at(t)
        lat, lon = kin.lat, kin.lon
        for window, north, east in self.faults.jumps:
            if t in window:
                lat += math.degrees(north / EARTH_RADIUS_M)
                lon += math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
        now = dt.datetime.fromtimestamp(self.start_utc + t, dt.UTC)
        hms = now.strftime("%H%M%S") + f".{now.microsecond // 10000:02d}"
        dmy = now.strftime("%d%m%y")
        lost = any(t in w for w in self.faults.lost_fix)
        hdop = 9.5 if any(t in w for w in self.faults.poor_hdop) else 0.9
        tk = self.talker
        knots = kin.speed_mps * MPS_TO_KNOTS
        if lost:
            out = [
                f"{tk}GGA,{hms},,,,,0,00,99.99,,,,,,",
                f"{tk}RMC,{hms},V,,,,,,,{dmy},,,N",
                f"{tk}VTG,,T,,M,,N,,K,N",
                f"{tk}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99",
            ]
        else:
            la, ns = _lat(lat)
            lo, ew = _lon(lon)
            prns = ",".join(f"{p:02d}" for p in range(1, self.satellites + 1)) + "," * (12 - self.satellites)
            out = [
                f"{tk}GGA,{hms},{la},{ns},{lo},{ew},1,{self.satellites:02d},{hdop:.1f},{self.altitude_m:.1f},M,"
                f"47.0,M,,",
                f"{tk}RMC,{hms},A,{la},{ns},{lo},{ew},{knots:.2f},{kin.course_deg:.1f},{dmy},,,A",
                f"{tk}VTG,{kin.course_deg:.1f},T,,M,{knots:.2f},N,{kin.speed_mps * 3.6:.2f},K,A",
                f"{tk}GSA,A,3,{prns},{hdop * 1.6:.1f},{hdop:.1f},{hdop * 1.3:.1f}",
            ]
        lines = [_sentence(body) for body in out]
        if self.faults.corrupt_rate > 0:
            lines = [self._corrupt(s) if self._rng.random() < self.faults.corrupt_rate else s for s in lines]
        return lines

    def _corrupt(self, sentence: str) -> str:
        i = self._rng.randrange(1, sentence.index("*"))
        ch = sentence[i]
        repl = "7" if ch != "7" else "3"
        return sentence[:i] + repl + sentence[i + 1 :]


class PtyGnss:
    """Writes a simulator's epochs to a real pty at ``rate_hz``; ``port`` is what the agent opens.

    ``speedup`` runs simulated time faster than the wall clock (an hour's route in a minute).
    """

    def __init__(self, sim: GnssSimulator, rate_hz: float = 1.0, speedup: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < rate_hz <= 10:
            raise ValueError("NMEA receivers output 1 to 10 Hz")
        self.sim = sim
        self.rate_hz = rate_hz
        self.speedup = speedup
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.epochs = 0
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gnss-sim", daemon=True)

    def start(self) -> PtyGnss:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = self._clock()
        period = 1.0 / self.rate_hz
        n = 0
        while not self._stop.is_set():
            sim_t = n * period
            if sim_t > self.sim.route.duration_s:
                return
            due = t0 + sim_t / self.speedup
            delay = due - self._clock()
            if delay > 0 and self._stop.wait(delay):
                return
            data = "".join(s + "\r\n" for s in self.sim.sentences(sim_t)).encode("ascii")
            try:
                os.write(self.master, data)
            except OSError:
                return
            self.epochs = n = n + 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
