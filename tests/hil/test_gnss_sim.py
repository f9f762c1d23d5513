"""The GNSS simulator's NMEA, read back by the agent's own decoder and serial source."""

from __future__ import annotations

import itertools
import math
import time

from edge_agent.counters import Counters
from edge_agent.decoding.nmea import NmeaDecoder
from edge_agent.model import Fix, TimedLine
from edge_agent.sources.gnss_serial import SerialGnssSource
from hil.gnss_sim import Faults, GnssSimulator, PtyGnss, Route, Window, distance_m

START = 1_764_000_000.0  # 2025-11-24T16:00:00Z
# A depot yard in Lyon and two streets out of it (about 1.3 km).
WAYPOINTS = [(45.7460, 4.8420), (45.7480, 4.8440), (45.7500, 4.8500)]


def _decode(sim: GnssSimulator, seconds: int, counters: Counters) -> list[Fix]:
    decoder = NmeaDecoder(counters)
    fixes: list[Fix] = []
    for t in range(seconds):
        for line in sim.sentences(float(t)):
            fixes.extend(decoder.feed(TimedLine(START + t, line)))
    return fixes + decoder.flush()


def test_route_is_read_back_within_centimetres() -> None:
    route = Route(WAYPOINTS, speed_mps=12.0, stops={0: 30.0})
    sim = GnssSimulator(route, START)
    counters = Counters()
    fixes = _decode(sim, int(route.duration_s), counters)
    assert len(fixes) == int(route.duration_s)
    assert counters.decode_errors() == {}
    for fix in fixes:
        t = fix.timestamp - START
        truth = route.at(t)
        assert fix.valid and fix.quality == 1 and fix.mode == 3
        assert distance_m((fix.lat, fix.lon), (truth.lat, truth.lon)) < 0.05
        assert fix.speed_mps is not None and math.isclose(fix.speed_mps, truth.speed_mps, abs_tol=0.01)
    # Standing at the depot for the first 30 s, then moving at 12 m/s.
    assert fixes[10].speed_mps == 0.0 and fixes[40].speed_mps is not None and fixes[40].speed_mps > 11.9


def test_lost_fix_jump_and_corruption_are_what_the_decoder_sees() -> None:
    route = Route(WAYPOINTS, speed_mps=10.0)
    faults = Faults(lost_fix=[Window(20, 30)], jumps=[(Window(50, 52), 300.0, 0.0)], corrupt_rate=0.1)
    sim = GnssSimulator(route, START, faults=faults, seed=7)
    clean = GnssSimulator(route, START, faults=Faults(lost_fix=faults.lost_fix, jumps=faults.jumps))
    corrupted = sum(a != b for t in range(100) for a, b in zip(sim.sentences(t), clean.sentences(t), strict=True))
    sim = GnssSimulator(route, START, faults=faults, seed=7)  # same seed: the same sentences again
    counters = Counters()
    fixes = _decode(sim, 100, counters)
    assert corrupted > 10
    assert counters.decode_errors().get("nmea_checksum") == corrupted
    by_t = {round(f.timestamp - START): f for f in fixes}
    assert all(not by_t[t].valid for t in range(20, 30) if t in by_t)
    jumped = by_t.get(51) or by_t[50]
    truth = route.at(jumped.timestamp - START)
    assert 290 < distance_m((jumped.lat, jumped.lon), (truth.lat, truth.lon)) < 310


def test_pty_receiver_feeds_the_serial_source() -> None:
    route = Route(WAYPOINTS, speed_mps=15.0)
    gnss = PtyGnss(GnssSimulator(route, START), rate_hz=10.0, speedup=10.0).start()
    counters = Counters()
    source = SerialGnssSource(gnss.port, 9600, counters=counters)
    decoder = NmeaDecoder(counters)
    fixes: list[Fix] = []
    try:
        end = time.monotonic() + 15
        while len(fixes) < 50 and time.monotonic() < end:
            for line in source.read_lines(0.1):
                fixes.extend(decoder.feed(line))
    finally:
        source.close()
        gnss.close()
    assert len(fixes) >= 50
    # 10 Hz: fixes a tenth of a second apart on the receiver's clock.
    steps = {round(b.timestamp - a.timestamp, 2) for a, b in itertools.pairwise(fixes)}
    assert steps == {0.1}
    assert counters.decode_errors() == {}
