"""Replay an NMEA 0183 capture file as a ``LineSource`` (tests, HIL, dry runs).

Three paces: ``fast`` (as fast as the consumer reads), ``timestamps`` (the gaps between the
capture's own epochs, taken from GGA/RMC/ZDA/GLL times) and ``line-rate`` (a fixed number of lines
per second). Each line's ``received_at`` is the capture's own UTC time once the capture has said
it, so replays are deterministic; before that, a synthetic time of ``index / line_rate_hz``.
The file is read as bytes: anything that is not ASCII is replaced (U+FFFD) and counted, never raised.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import TimedLine

PACES = ("fast", "timestamps", "line-rate")
MAX_BATCH_LINES = 256
# How far into the capture we look for the first date (RMC/ZDA) so early lines get a full UTC time.
DATE_PRESCAN_LINES = 5000
# In "timestamps" pace a gap longer than this (receiver off, logger paused) or a jump back in time is
# replayed as this many seconds: a replay should not sleep for the hours a truck stood in a depot.
MAX_PACE_GAP_S = 10.0
_SECONDS_PER_DAY = 86400.0

_TIMED_RE = re.compile(r"\$[A-Z]{2}(GGA|RMC|ZDA|GLL),")
_TIME_RE = re.compile(r"^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$")


def _tod(raw: str) -> float | None:
    m = _TIME_RE.match(raw)
    if not m:
        return None
    hh, mm, ss = int(m.group(1)), int(m.group(2)), float(m.group(3))
    if hh > 23 or mm > 59 or ss >= 61:
        return None
    return hh * 3600 + mm * 60 + ss


def _line_time(text: str) -> tuple[float | None, dt.date | None]:
    """Time-of-day and date (if any) a sentence carries; a cheap look, not a full decode."""
    m = _TIMED_RE.search(text)
    if not m:
        return None, None
    fields = text[m.end() :].split("*", 1)[0].split(",")
    kind = m.group(1)
    # GLL puts the time after lat,N,lon,E (NMEA 0183 GLL field 5).
    tod = _tod(fields[4] if kind == "GLL" and len(fields) > 4 else fields[0])
    date: dt.date | None = None
    try:
        if kind == "RMC" and len(fields) > 8 and len(fields[8]) == 6 and fields[8].isdigit():
            d, mo, yy = int(fields[8][:2]), int(fields[8][2:4]), int(fields[8][4:])
            date = dt.date(1900 + yy if yy >= 80 else 2000 + yy, mo, d)
        elif kind == "ZDA" and len(fields) > 3 and all(f.isdigit() for f in fields[1:4]):
            date = dt.date(int(fields[3]), int(fields[2]), int(fields[1]))
    except ValueError:
        date = None
    return tod, date


class NmeaReplaySource:
    """A ``LineSource`` over an NMEA capture; ``read_lines`` returns ``None`` at end of file."""

    def __init__(
        self,
        path: str | Path,
        *,
        pace: str = "fast",
        line_rate_hz: float = 10.0,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if pace not in PACES:
            raise SourceError(f"unknown NMEA replay pace {pace!r}; use one of {PACES}")
        if line_rate_hz <= 0:
            raise SourceError(f"line_rate_hz must be positive, got {line_rate_hz}")
        self._path = Path(path)
        try:
            self._file: BinaryIO | None = self._path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open NMEA capture {self._path}: {exc}") from exc
        self._pace = pace
        self._rate = line_rate_hz
        self._counters = counters or Counters()
        self._clock = clock
        self._sleep = sleep
        self._date, self._first_time = self._prescan()
        self._last_tod: float | None = None
        self._capture_time: float | None = None
        self._index = 0
        self._lines = self._iter_lines()
        self._pending: TimedLine | None = None
        self._pending_paced_at: float = 0.0
        self._start_clock: float | None = None
        self._start_paced: float | None = None
        self._last_paced: float | None = None
        self._eof = False

    def _prescan(self) -> tuple[dt.date | None, float | None]:
        """The capture's first date, and its first UTC time (header lines before it get that)."""
        first_tod: float | None = None
        found: dt.date | None = None
        with self._path.open("rb") as fh:
            for i, raw in enumerate(fh):
                if i >= DATE_PRESCAN_LINES:
                    break
                tod, date = _line_time(raw.decode("ascii", errors="replace"))
                if first_tod is None:
                    first_tod = tod
                if date is not None:
                    found = date
                    break
        if first_tod is None:
            return found, None
        base = found or dt.date(1970, 1, 1)
        midnight = dt.datetime(base.year, base.month, base.day, tzinfo=dt.UTC)
        return found, midnight.timestamp() + first_tod

    def _iter_lines(self) -> Iterator[tuple[TimedLine, float]]:
        """Yield each line with its pacing time (capture seconds, or index / rate)."""
        assert self._file is not None
        for raw in self._file:
            text = raw.decode("ascii", errors="replace").rstrip("\r\n")
            if "\ufffd" in text:
                self._counters.inc("replay_garbage_lines")
            if not text.strip():
                continue
            self._counters.inc("lines")
            tod, date = _line_time(text)
            if date is not None:
                self._date = date
            if tod is not None:
                if (
                    date is None
                    and self._date is not None
                    and self._last_tod is not None
                    and tod < self._last_tod - _SECONDS_PER_DAY / 2
                ):
                    self._date = self._date + dt.timedelta(days=1)  # midnight, no new date yet
                self._last_tod = tod
                base = self._date or dt.date(1970, 1, 1)
                midnight = dt.datetime(base.year, base.month, base.day, tzinfo=dt.UTC)
                self._capture_time = midnight.timestamp() + tod
            synthetic = self._index / self._rate
            received = self._capture_time if self._capture_time is not None else self._first_time
            if received is None:
                received = synthetic
            paced = synthetic if self._pace == "line-rate" else received
            self._index += 1
            yield TimedLine(received, text), paced

    def read_lines(self, timeout: float = 0.1) -> list[TimedLine] | None:
        if self._file is None or (self._eof and self._pending is None):
            return None
        out: list[TimedLine] = []
        slept = False
        while len(out) < MAX_BATCH_LINES:
            if self._pending is None:
                try:
                    self._pending, self._pending_paced_at = next(self._lines)
                except StopIteration:
                    self._eof = True
                    break
            if self._pace != "fast":
                now = self._clock()
                if self._start_clock is None:
                    self._start_clock, self._start_paced = now, self._pending_paced_at
                assert self._start_paced is not None
                if self._last_paced is not None:
                    gap = self._pending_paced_at - self._last_paced
                    if not 0.0 <= gap <= MAX_PACE_GAP_S:
                        self._start_paced += gap - min(max(gap, 0.0), MAX_PACE_GAP_S)
                self._last_paced = self._pending_paced_at
                due = self._start_clock + (self._pending_paced_at - self._start_paced)
                if due > now:
                    if out or slept:
                        break  # hand over what is due; the rest comes on a later call
                    self._sleep(min(due - now, timeout))
                    slept = True
                    continue
            out.append(self._pending)
            self._pending = None
        if not out and self._eof:
            return None
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
