"""A GNSS receiver on a serial port (pyserial) as a ``LineSource``.

Built for the field: the receiver may be unplugged and plugged back (the port is closed, counted
and reopened with exponential backoff + jitter; ``read_lines`` never raises), bytes arrive in any
chunking (partial lines are buffered), line noise and over-long lines are discarded with a count,
and a window of mostly unprintable input is reported once as a probable baud-rate mismatch.
pyserial types stay in this module.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable

import serial

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import TimedLine

log = logging.getLogger(__name__)

# Bytes inspected before judging the baud rate; ~1 s of NMEA at 4800 Bd (480 chars/s, 10 bits/char).
BAUD_WINDOW_BYTES = 512
# Above this share of non-printable bytes, with no valid '$' line in the window, the rate is wrong:
# a receiver at the right rate sends ASCII only (NMEA 0183 4.10 section 5.1: printable 0x20-0x7E).
BAUD_NOISE_RATIO = 0.3
READ_CHUNK = 4096
# Longest single blocking read: short enough that the daemon's stop flag is seen promptly. Set once
# at open, because pyserial reprograms the port (tcsetattr) on every timeout change.
READ_TIMEOUT_S = 0.05
# Rates GNSS receivers ship with (NMEA 0183 standard 4800; u-blox/MediaTek/SiRF 9600/38400/115200).
AUTOBAUD_RATES = (4800, 9600, 38400, 115200)
# A receiver sends at least one epoch per second (GGA/RMC at 1 Hz is the slowest common setting);
# this long without a byte, the port is treated as dead (some USB-serial drivers stall, not fail).
DEFAULT_SILENCE_REOPEN_S = 10.0


class _Backoff:
    """Exponential backoff with full jitter between ``low`` and ``high`` seconds."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.attempt = 0

    def next_delay(self) -> float:
        cap = min(self.high, self.low * (2**self.attempt))
        self.attempt += 1
        return random.uniform(self.low, max(self.low, cap))

    def reset(self) -> None:
        self.attempt = 0


def _printable(b: int) -> bool:
    return 0x20 <= b <= 0x7E or b in (0x0D, 0x0A)


class SerialGnssSource:
    """Read NMEA lines from ``port``; survives unplug, noise and partial lines."""

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        counters: Counters,
        reopen_backoff: tuple[float, float] = (0.5, 30.0),
        max_line: int = 256,
        clock: Callable[[], float] = time.time,
        autobaud: bool = False,
        silence_reopen: float | None = DEFAULT_SILENCE_REOPEN_S,
    ) -> None:
        if baudrate <= 0 or max_line <= 0:
            # Permanent misconfiguration: fail at start, never retry it as if the port were unplugged.
            raise SourceError(f"GNSS port {port}: baudrate and max_line must be positive")
        self._port_name = port
        self._baudrate = baudrate
        self._counters = counters
        self._backoff = _Backoff(*reopen_backoff)
        self._max_line = max_line
        self._clock = clock
        self._serial: serial.Serial | None = None
        self._buf = bytearray()
        self._discarding = False  # inside an over-long line: drop until the next newline
        self._next_open_at = 0.0
        self._window_total = 0
        self._window_noise = 0
        self._window_good_lines = 0
        self._baud_warned = False
        self._closed = False
        self._autobaud = autobaud
        self._silence_reopen = silence_reopen
        self._last_byte_at = time.monotonic()
        self._open()

    @property
    def baudrate(self) -> int:
        """The rate the port is (or will be) opened at; autobaud may change it."""
        return self._baudrate

    # -- port lifecycle ---------------------------------------------------------------------
    def _open(self) -> bool:
        try:
            self._serial = serial.Serial(self._port_name, self._baudrate, timeout=READ_TIMEOUT_S)
        except (serial.SerialException, OSError) as exc:
            delay = self._backoff.next_delay()
            self._next_open_at = time.monotonic() + delay
            log.warning("GNSS port %s cannot be opened (%s); retrying in %.1f s", self._port_name, exc, delay)
            self._serial = None
            return False
        self._backoff.reset()
        self._last_byte_at = time.monotonic()
        return True

    def _drop_port(self, exc: BaseException) -> None:
        log.warning("GNSS port %s failed (%s); closing and reopening", self._port_name, exc)
        self._counters.inc("source_errors")
        self._counters.inc("serial_reopens")
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
        self._serial = None
        self._buf.clear()  # a partial line from before the unplug cannot be completed
        self._discarding = False
        self._next_open_at = time.monotonic() + self._backoff.next_delay()

    # -- public front door ------------------------------------------------------------------
    def read_lines(self, timeout: float = 0.1) -> list[TimedLine]:
        """Complete lines received within ``timeout``; ``[]`` if none. Never raises."""
        if self._closed:
            return []
        deadline = time.monotonic() + timeout
        lines: list[TimedLine] = []
        while True:
            if self._serial is None:
                if time.monotonic() >= self._next_open_at:
                    self._open()
                if self._serial is None:
                    time.sleep(max(0.0, min(0.05, deadline - time.monotonic())))
            else:
                try:
                    data = self._read_some()
                except (serial.SerialException, OSError) as exc:
                    self._drop_port(exc)
                    data = b""
                if data:
                    self._last_byte_at = time.monotonic()
                    lines.extend(self._split(data))
                elif self._silence_reopen is not None and time.monotonic() - self._last_byte_at > self._silence_reopen:
                    self._drop_port(TimeoutError(f"no data for {self._silence_reopen:.0f} s"))
            if lines or time.monotonic() >= deadline:
                return lines

    def _read_some(self) -> bytes:
        assert self._serial is not None
        # Whatever is buffered, else wait up to READ_TIMEOUT_S for the first byte.
        waiting = self._serial.in_waiting
        data: bytes = self._serial.read(min(max(waiting, 1), READ_CHUNK))
        return data

    def close(self) -> None:
        self._closed = True
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None

    # -- byte handling ----------------------------------------------------------------------
    def _split(self, data: bytes) -> list[TimedLine]:
        self._observe_baud(data)
        now = self._clock()
        out: list[TimedLine] = []
        for b in data:
            if b == 0x0A:
                if self._discarding:
                    self._discarding = False
                elif self._buf:
                    text = self._buf.decode("ascii").rstrip("\r")
                    if text:
                        self._counters.inc("lines")
                        if text.startswith(("$", "!")):
                            self._window_good_lines += 1
                        out.append(TimedLine(now, text))
                self._buf.clear()
            elif not _printable(b):
                self._counters.inc("serial_garbage_bytes")
            elif not self._discarding:
                self._buf.append(b)
                if len(self._buf) > self._max_line:
                    self._counters.inc("serial_long_lines")
                    self._counters.inc("serial_garbage_bytes", len(self._buf))
                    self._buf.clear()
                    self._discarding = True
        return out

    def _observe_baud(self, data: bytes) -> None:
        # Judge in fixed windows however the reads are chunked, so the count means "windows".
        for i in range(0, len(data), BAUD_WINDOW_BYTES):
            self._observe_window(data[i : i + BAUD_WINDOW_BYTES])

    def _observe_window(self, data: bytes) -> None:
        self._window_total += len(data)
        self._window_noise += sum(1 for b in data if not _printable(b))
        if self._window_total < BAUD_WINDOW_BYTES:
            return
        noisy = self._window_noise / self._window_total > BAUD_NOISE_RATIO
        if noisy and self._window_good_lines == 0:
            self._counters.inc("baud_mismatch")
            if not self._baud_warned:
                log.warning(
                    "GNSS port %s: input is mostly unprintable with no NMEA sentence at %d baud; "
                    "the receiver probably uses another rate (4800/9600/38400/115200)",
                    self._port_name,
                    self._baudrate,
                )
                self._baud_warned = True
            if self._autobaud:
                self._try_next_rate()
        elif not noisy:
            self._baud_warned = False
        self._window_total = self._window_noise = self._window_good_lines = 0

    def _try_next_rate(self) -> None:
        rates = AUTOBAUD_RATES
        nxt = rates[(rates.index(self._baudrate) + 1) % len(rates)] if self._baudrate in rates else rates[0]
        log.warning("GNSS port %s: autobaud switching %d -> %d baud", self._port_name, self._baudrate, nxt)
        self._baudrate = nxt
        self._buf.clear()
        self._discarding = False
        if self._serial is not None:
            try:
                self._serial.baudrate = nxt
            except (serial.SerialException, OSError, ValueError) as exc:
                self._drop_port(exc)  # reopened at the new rate
