"""Preflight of the GNSS receiver: NMEA arrives on the configured port and a fix of usable quality comes.

The agent's own ``SerialGnssSource`` and ``NmeaDecoder`` read the port, so a wrong baud rate, silence and
a receiver without a fix are told apart the way the agent counts them. The check waits for a fix up to
a deadline with progress (a cold receiver can take a minute); the fix's UTC time is kept for the clock check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from edge_agent.config import AgentConfig
from edge_agent.counters import Counters
from edge_agent.decoding.nmea import NmeaDecoder
from edge_agent.errors import FleetError
from edge_agent.model import Fix
from edge_agent.sources.gnss_serial import SerialGnssSource
from provisioning.checks import CheckResult, Progress, failed, passed, skipped

#: HDOP above this is a poor fix (positions off by tens of metres): commonly rated 1-2 excellent/good,
#: 2-5 good/moderate, above 5 fair or poor.
MAX_HDOP = 5.0
#: A 3D position needs four satellites (three for position, one for the receiver's clock).
MIN_SATELLITES = 4
NAME = "GNSS fix"


@dataclass
class GnssOutcome:
    result: CheckResult
    #: system clock minus GNSS time of the best fix's arrival (seconds), None without a valid fix
    clock_offset_s: float | None = None


def check_gnss(config: AgentConfig, fix_wait_s: float, progress: Progress) -> GnssOutcome:
    if config.gnss is None:
        return GnssOutcome(skipped(NAME, "no [gnss] section in agent.toml (no receiver configured)"))
    port, baud = config.gnss.port, config.gnss.baudrate
    counters = Counters()
    try:
        source = SerialGnssSource(port, baud, counters=counters, silence_reopen=None)
    except FleetError as exc:
        return GnssOutcome(failed(NAME, f"cannot use {port}: {exc}", "check [gnss] port and baudrate in agent.toml"))
    decoder = NmeaDecoder(counters)
    best: Fix | None = None
    best_at = 0.0
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < fix_wait_s:
            progress(_waiting(port, elapsed, fix_wait_s, counters, best))
            for line in source.read_lines(0.2):
                for fix in decoder.feed(line):
                    if fix.valid and (best is None or not _good(best) or _good(fix)):
                        best, best_at = fix, line.received_at
            if best is not None and _good(best):
                break
    finally:
        source.close()
    details = {"port": port, "baudrate": baud, "sentences": counters.get("sentences"),
               "lines": counters.get("lines")}
    if best is not None:
        details.update(lat=round(best.lat, 6), lon=round(best.lon, 6), hdop=best.hdop, satellites=best.satellites,
                       quality=best.quality, mode=best.mode)
        quality = f"HDOP {best.hdop if best.hdop is not None else '?'}, {best.satellites or '?'} satellites"
        offset = best_at - best.timestamp
        if _good(best):
            return GnssOutcome(passed(NAME, f"fix at {best.lat:.5f}, {best.lon:.5f} ({quality})", **details), offset)
        return GnssOutcome(failed(NAME, f"fix of poor quality ({quality}; want HDOP <= {MAX_HDOP:g} and >= "
                                        f"{MIN_SATELLITES} satellites)",
                                  "move the antenna to the roof or dash top with a clear view of the sky, away "
                                  "from metal and heated windscreens; re-run", **details), offset)
    if counters.get("lines") == 0:
        why = "wrong baud rate" if counters.get("baud_mismatch") else "no data"
        return GnssOutcome(failed(NAME, f"{why} from {port} at {baud} baud in {fix_wait_s:.0f} s",
                                  _silent_fix(port, baud, bool(counters.get("baud_mismatch"))), **details))
    return GnssOutcome(failed(NAME, f"the receiver on {port} sends NMEA but had no fix within {fix_wait_s:.0f} s",
                              "is the antenna connected and outside (not in a workshop)? a cold receiver can take "
                              "several minutes: re-run with a longer --fix-wait", **details))


def _good(fix: Fix) -> bool:
    hdop_ok = fix.hdop is not None and math.isfinite(fix.hdop) and fix.hdop <= MAX_HDOP
    return fix.valid and hdop_ok and (fix.satellites or 0) >= MIN_SATELLITES


def _waiting(port: str, elapsed: float, limit: float, counters: Counters, best: Fix | None) -> str:
    state = "no NMEA yet" if counters.get("sentences") == 0 else (
        "no fix yet" if best is None else f"fix with HDOP {best.hdop}, {best.satellites} satellites")
    return f"waiting for a GNSS fix on {port}: {elapsed:.0f} s of {limit:.0f} s, {state}"


def _silent_fix(port: str, baud: int, mismatch: bool) -> str:
    if mismatch:
        return (f"set [gnss] baudrate to the receiver's rate (4800, 9600, 38400 or 115200; {baud} gives "
                "garbage)")
    return (f"is the receiver powered and wired to {port} (TX of the receiver to RX of the unit)? "
            "`cat` the port to see if anything arrives")
