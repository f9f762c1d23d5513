"""A serial-line CAN (slcan / Lawicel ASCII) adapter read in bursts: CANable, CANUSB and clones.

python-can's ``slcan`` interface reads the serial port one byte per call, which costs most of a
core at 2,000 frames/s on a small in-vehicle computer (measured in ``bench/bench_steady.py``). This
source speaks the same protocol but reads whatever the port holds in one call and splits it into
frames, so its cost grows with bursts, not bytes. The configuration is the same (``interface =
"slcan"``); ``options = { driver = "python-can" }`` in agent.toml selects python-can's instead.

Protocol (Lawicel CANUSB manual; the CANable slcan firmware follows it): commands and frames end
with ``\\r``; ``C`` close, ``S0``..``S8`` bitrate, ``O`` open; ``tiiildd..`` 11-bit and
``Tiiiiiiiildd..`` 29-bit data frames, ``r``/``R`` remote frames; ``z``/``Z`` acknowledge a
transmit, a lone BEL (0x07) reports an error.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Sequence
from typing import Any

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import RawFrame
from edge_agent.sources.can_bus import CanFilter

log = logging.getLogger(__name__)

#: Lawicel ``Sn`` codes per bitrate (CANUSB manual, "Setup with standard CAN bit-rates").
BITRATE_CODES = {10_000: 0, 20_000: 1, 50_000: 2, 100_000: 3, 125_000: 4, 250_000: 5, 500_000: 6,
                 800_000: 7, 1_000_000: 8}
#: Most bytes taken from the port per read call (a 1 Mbit/s bus delivers under 30 kB/s of slcan text).
READ_CHUNK = 65536
#: A line longer than this is not slcan (a 29-bit frame with 8 bytes is 27 characters).
MAX_LINE = 64


class SlcanSource:
    """``FrameSource`` and ``FrameSink`` over an slcan adapter's serial port."""

    def __init__(self, port: str, *, bitrate: int | None = None, counters: Counters | None = None,
                 filters: Sequence[CanFilter] = (), serial_baudrate: int = 115_200,
                 listen_only: bool = False) -> None:
        import serial  # pyserial: the boundary module owns it

        for f in filters:
            f.to_python_can()  # validates the widths with a clear message
        self._filters = [(f.can_id & f.can_mask, f.can_mask, f.extended) for f in filters]
        self.port = port
        self.counters = counters if counters is not None else Counters()
        self._pending = b""
        self._serial: Any = None
        try:
            self._serial = serial.Serial(port, serial_baudrate, timeout=0, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceError(f"cannot open slcan adapter {port!r}: {exc}") from exc
        self._fd = self._serial.fileno()
        commands = [b"C"]
        if bitrate is not None:
            if bitrate not in BITRATE_CODES:
                self.close()
                raise SourceError(f"slcan: bitrate {bitrate} has no Lawicel code; use one of "
                                  f"{', '.join(map(str, sorted(BITRATE_CODES)))}")
            commands.append(b"S%d" % BITRATE_CODES[bitrate])
        commands.append(b"L" if listen_only else b"O")
        self._write(b"".join(c + b"\r" for c in commands))

    def _write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
        except Exception as exc:  # pyserial raises SerialException / SerialTimeoutException / OSError
            raise SourceError(f"slcan adapter {self.port}: write failed: {exc}") from exc

    def read_batch(self, max_frames: int = 256, timeout: float = 0.1) -> list[RawFrame] | None:
        """Wait up to ``timeout`` for input, then take everything the port holds (at most a chunk)."""
        if self._serial is None:
            raise SourceError(f"slcan adapter {self.port} is closed")
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return []
            chunk = self._serial.read(READ_CHUNK)
        except Exception as exc:  # an unplugged USB adapter: EIO / SerialException
            self.counters.inc("source_errors")
            raise SourceError(f"slcan adapter {self.port}: read failed (unplugged?): {exc}") from exc
        if not chunk:
            # select said readable but nothing came: the other end hung up.
            self.counters.inc("source_errors")
            raise SourceError(f"slcan adapter {self.port}: end of input (unplugged?)")
        now = time.time()
        data = self._pending + chunk
        lines = data.split(b"\r")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE:
            self.counters.inc("source_errors")
            self._pending = b""
        out: list[RawFrame] = []
        for line in lines:
            frame = self._parse(line.strip(b"\n\x07"), now)
            if frame is not None and (not self._filters or self._accepts(frame)):
                out.append(frame)
        if out:
            self.counters.inc("frames", len(out))
        return out

    def _accepts(self, frame: RawFrame) -> bool:
        # SocketCAN semantics, as python-can applies them in software for slcan.
        return any(frame.is_extended == ext and frame.arbitration_id & mask == want
                   for want, mask, ext in self._filters)

    def _parse(self, line: bytes, ts: float) -> RawFrame | None:
        if not line or line in (b"z", b"Z"):
            return None  # transmit acknowledgements and empty answers to our commands
        kind = line[:1]
        try:
            if kind in (b"t", b"r"):
                can_id, dlc, body, extended = int(line[1:4], 16), int(line[4:5]), line[5:], False
            elif kind in (b"T", b"R"):
                can_id, dlc, body, extended = int(line[1:9], 16), int(line[9:10]), line[10:], True
            else:
                self.counters.inc("source_errors")
                return None
            if kind in (b"r", b"R"):
                self.counters.inc("can_remote_frames")
                return None
            if dlc > 8 or len(body) < 2 * dlc:
                raise ValueError("data shorter than its DLC")
            return RawFrame(ts, can_id, bytes.fromhex(body[: 2 * dlc].decode("ascii")), extended, self.port)
        except (ValueError, UnicodeDecodeError):
            # A garbled line (noise on the USB-serial link) is counted and skipped.
            self.counters.inc("source_errors")
            return None

    def send(self, frame: RawFrame) -> None:
        if self._serial is None:
            raise SourceError(f"slcan adapter {self.port} is closed")
        if len(frame.data) > 8:
            raise SourceError("slcan carries classic CAN frames only (at most 8 data bytes)")
        head = b"T%08X%d" % (frame.arbitration_id, len(frame.data)) if frame.is_extended else \
            b"t%03X%d" % (frame.arbitration_id, len(frame.data))
        self._write(head + frame.data.hex().upper().encode("ascii") + b"\r")

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.write(b"C\r")
                port.flush()
            except Exception as exc:  # closing an unplugged adapter must not raise
                log.debug("slcan %s: close command failed: %s", self.port, exc)
            port.close()

    def __enter__(self) -> SlcanSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
