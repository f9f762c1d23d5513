"""A slcan (Lawicel ASCII) USB-CAN adapter emulator on the master side of a real pty, for HIL rigs and tests.

python-can's ``slcan`` interface opens the slave side as if it were a USB CANable/CANUSB; this
emulator answers setup commands (``S6``, ``O``, ``C``, ``V``, ...) with ``\\r`` like the firmware,
records every frame the host transmits, and can inject frames as slcan ASCII.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable

from edge_agent.model import RawFrame


def encode_slcan(frame: RawFrame) -> bytes:
    """``T<8 hex id><dlc><data>\\r`` for 29-bit, ``t<3 hex id><dlc><data>\\r`` for 11-bit."""
    if frame.is_extended:
        head = f"T{frame.arbitration_id:08X}{len(frame.data)}"
    else:
        head = f"t{frame.arbitration_id:03X}{len(frame.data)}"
    return (head + frame.data.hex().upper() + "\r").encode("ascii")


def decode_slcan(line: str) -> RawFrame:
    """The inverse of ``encode_slcan`` for classic data frames (what the host sends us)."""
    if line[0] == "T":
        can_id, dlc, rest, ext = int(line[1:9], 16), int(line[9]), line[10:], True
    elif line[0] == "t":
        can_id, dlc, rest, ext = int(line[1:4], 16), int(line[4]), line[5:], False
    else:
        raise ValueError(f"not an slcan data frame: {line!r}")
    return RawFrame(0.0, can_id, bytes.fromhex(rest[: dlc * 2]), ext)


class SlcanEmulator:
    """Owns a pty pair; ``port`` is the slave path to give python-can's slcan interface."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.port = os.ttyname(self.slave)
        self.commands: list[str] = []
        self.sent: list[RawFrame] = []
        self.is_open = False
        #: Called on the emulator's thread with each frame the host transmits (stamped on receipt), so a
        #: simulated ECU can answer at once instead of on some other thread's next turn.
        self.on_frame: Callable[[RawFrame], None] | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slcan-emulator", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            buf += chunk
            while b"\r" in buf:
                raw, _, buf = buf.partition(b"\r")
                self._handle(raw.decode("ascii", "replace"))

    def _handle(self, cmd: str) -> None:
        with self._lock:
            self.commands.append(cmd)
        if not cmd:
            return
        if cmd[0] in "Tt":
            frame = decode_slcan(cmd)
            with self._lock:
                self.sent.append(frame)
            # Real adapters acknowledge a transmit with "z\r" / "Z\r"; python-can reads past it.
            self._write(b"Z\r" if cmd[0] == "T" else b"z\r")
            callback = self.on_frame
            if callback is not None:
                callback(RawFrame(time.time(), frame.arbitration_id, frame.data, frame.is_extended, "can0"))
        elif cmd == "V":
            self._write(b"V1013\r")
        else:
            if cmd in ("O", "L"):
                self.is_open = True
            elif cmd == "C":
                self.is_open = False
            self._write(b"\r")

    def _write(self, data: bytes) -> None:
        # Two threads write (this one's answers, the rig's injections): one whole write at a time.
        with self._write_lock, contextlib.suppress(OSError):
            os.write(self.master, data)

    def inject(self, *frames: RawFrame, raw: bytes = b"") -> None:
        """Write frames (and optional raw bytes first) as the adapter would, in one burst."""
        self._write(raw + b"".join(encode_slcan(f) for f in frames))

    def wait_for(self, command: str, timeout: float = 2.0) -> bool:
        """True once the host has sent ``command`` (the emulator thread reads asynchronously)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if command in self.seen_commands():
                return True
            time.sleep(0.005)
        return False

    def sent_frames(self) -> list[RawFrame]:
        with self._lock:
            return list(self.sent)

    def seen_commands(self) -> list[str]:
        with self._lock:
            return list(self.commands)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
