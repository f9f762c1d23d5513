"""Replay a CAN capture file as a ``FrameSource`` (tests, HIL, dry runs, benchmarks).

candump ``.log`` text (optionally ``.log.gz``) is parsed here, because python-can's
``CanutilsLogReader`` raises on the first malformed line and so ends the whole replay; a bad line
must instead be counted (``can_log_malformed``) and skipped. It is also the hot path of the
end-to-end benchmark: the file is read in chunks of bytes and the ``candump`` kernel turns the plain
lines into columns (a ``FrameBlock``) without one Python object per frame; the few other lines
(CAN-FD, remote and error frames, padded columns, broken text) are parsed here one by one.
Other formats (Vector ``.asc``, ``.blf``, ``.trc``, ``.csv``) go through python-can's readers.

``read_block`` hands over a ``FrameBlock``; ``read_batch`` (the ``FrameSource`` protocol) the same
frames as a list.

Pacing: ``"fast"`` returns frames as fast as the caller asks; ``"realtime"`` follows the capture's
timestamps relative to its first frame, using the injected ``clock`` and ``sleep``.
"""

from __future__ import annotations

import gzip
import logging
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import native
from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import FrameBlock, RawFrame

log = logging.getLogger(__name__)

PACES = ("fast", "realtime")
#: SocketCAN's CAN_ERR_FLAG: candump writes error frames as 8-digit ids with this bit set.
CAN_ERR_FLAG = 0x20000000
MAX_EXTENDED_ID = 0x1FFFFFFF
MAX_STANDARD_ID = 0x7FF
#: Payload lengths a CAN-FD frame can have (DLC 0-15).
FD_LENGTHS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64))
#: How many malformed lines are logged with their line number before we only count them.
LOGGED_BAD_LINES = 10
_MALFORMED = "can_log_malformed"
#: Bytes read from a candump file at a time (a 1 MiB chunk holds ~20,000 lines).
CHUNK_BYTES = 1 << 20


def _open_candump(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a BufferedIOBase
    return path.open("rb")


class _Columns:
    """A ``FrameBlock`` being filled: kernel output appended whole, odd lines one frame at a time."""

    __slots__ = ("chan", "data", "dlc", "ids", "long_data", "ts")

    def __init__(self) -> None:
        self.ts, self.ids, self.dlc, self.chan = array("d"), array("I"), array("B"), array("I")
        self.data = bytearray()
        self.long_data: dict[int, bytes] = {}

    def extend(self, ts: array, ids: array, dlc: array, data: bytes, chan: array) -> None:
        self.ts += ts
        self.ids += ids
        self.dlc += dlc
        self.data += data
        self.chan += chan

    def append(self, frame: RawFrame, channel: int) -> None:
        if len(frame.data) > 8:
            self.long_data[len(self.ids)] = frame.data
        self.ts.append(frame.timestamp)
        self.ids.append(frame.arbitration_id | (0x80000000 if frame.is_extended else 0))
        self.dlc.append(len(frame.data))
        self.data += (frame.data + bytes(8))[:8]
        self.chan.append(channel)

    def block(self, channels: list[str]) -> FrameBlock:
        return FrameBlock(self.ts, self.ids, self.dlc, bytes(self.data), self.chan, channels, self.long_data)


def _is_candump(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".log") or name.endswith(".log.gz")


class CanReplaySource:
    """Frames from a capture file; ``read_batch`` returns ``None`` once the file is exhausted."""

    def __init__(
        self,
        path: str | Path,
        *,
        pace: str = "fast",
        counters: Counters | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if pace not in PACES:
            raise SourceError(f"unknown CAN replay pace {pace!r}; choose one of: {', '.join(PACES)}")
        self.path = Path(path)
        self.pace = pace
        self.counters = counters if counters is not None else Counters()
        self._clock = clock
        self._sleep = sleep
        self._file: IO[bytes] | None = None
        self._buf = b""
        self._pos = 0  # next unparsed byte of _buf
        self._end = 0  # just past the last complete line in _buf
        self._file_done = False
        self._parse_lines = native.kernel("candump").parse_lines
        # Channel names seen (a frame's channel is an index), and the kernel's table of them.
        self._chan_names: list[str] = []
        self._chan_ids: dict[str, int] = {}
        self._chan_entries: list[bytes] = []
        self._chan_blob = b""
        self._reader: Any = None  # a python-can reader for non-candump formats
        self._messages: Iterator[Any] | None = None
        self._reader_errors: tuple[type[Exception], ...] = ()
        self._line_no = 0
        self._bad_lines = 0
        self._pending: RawFrame | None = None  # realtime: read but not yet due
        self._t0_capture: float | None = None
        self._t0_clock = 0.0
        self._ended = False
        try:
            if _is_candump(self.path):
                self._file = _open_candump(self.path)
            else:
                import can  # lazy: only non-candump formats need python-can here
                from can.io.blf import BLFParseError

                # What python-can's readers raise on damaged files (struct/zlib for a cut .blf).
                self._reader_errors = (ValueError, IndexError, KeyError, OSError, EOFError,
                                       struct.error, zlib.error, BLFParseError)
                self._reader = can.LogReader(self.path)
                self._messages = iter(self._reader)
        except (OSError, ValueError, NotImplementedError, ImportError) as exc:
            raise SourceError(f"cannot open CAN capture {self.path}: {exc}") from exc

    def read_batch(self, max_frames: int = 256, timeout: float = 0.1) -> list[RawFrame] | None:
        block = self.read_block(max_frames, timeout)
        return None if block is None else list(block)

    def read_block(self, max_frames: int = 256, timeout: float = 0.1) -> FrameBlock | None:
        """As ``read_batch``, as columns (what ``Pipeline.on_frames`` decodes without per-frame objects)."""
        if self.pace == "fast":
            batch = self._next_frames(max_frames)
            if batch is None:
                return None
            if batch:
                self.counters.inc("frames", len(batch))
            return batch
        frames = self._read_realtime(max_frames, timeout)
        return None if frames is None else FrameBlock.from_frames(frames)

    def _read_realtime(self, max_frames: int, timeout: float) -> list[RawFrame] | None:
        out: list[RawFrame] = []
        deadline = self._clock() + timeout
        while len(out) < max_frames:
            if self._pending is None:
                got = self._next_frames(1)
                if got is None:
                    break
                if not got:
                    continue  # only bad lines so far; keep looking
                self._pending = got[0]
            frame = self._pending
            if self._t0_capture is None:
                self._t0_capture = frame.timestamp
                self._t0_clock = self._clock()
            due = self._t0_clock + (frame.timestamp - self._t0_capture)
            now = self._clock()
            if due > now:
                if out or now >= deadline:
                    break
                # Sleep only as long as the caller allowed; the frame stays pending for next call.
                self._sleep(min(due, deadline) - now)
                if self._clock() < due:
                    break
            out.append(frame)
            self._pending = None
        if out:
            self.counters.inc("frames", len(out))
            return out
        if self._ended and self._pending is None:
            return None
        return out

    def _next_frames(self, max_frames: int) -> FrameBlock | None:
        """Up to ``max_frames`` frames; empty if only skipped lines were read; ``None`` at EOF."""
        if self._ended:
            return None
        if self._file is not None:
            out = self._parse_candump(max_frames)
        else:
            out = FrameBlock.from_frames(self._read_python_can(max_frames))
        if not out and self._ended:
            return None
        return out

    def _fill(self) -> bool:
        """Read another chunk behind the unparsed rest; False once the file is exhausted."""
        assert self._file is not None
        chunk = self._file.read(CHUNK_BYTES)
        rest = self._buf[self._pos:]
        if not chunk:
            if self._file_done or not rest:
                self._file_done = True
                self._buf, self._pos, self._end = b"", 0, 0
                return False
            # A last line without its newline is still a line (as ``readline`` returned it).
            self._buf, self._pos, self._end, self._file_done = rest + b"\n", 0, len(rest) + 1, True
            return True
        self._buf = rest + chunk
        self._pos = 0
        self._end = self._buf.rfind(b"\n") + 1
        return True

    def _parse_candump(self, max_frames: int) -> FrameBlock:
        """Up to ``max_frames`` frames: plain lines through the ``candump`` kernel, the rest one by one."""
        cols = _Columns()
        parse = self._parse_lines
        # Loop bounded by odd lines read so that a file of pure garbage still yields control.
        odd_budget = max_frames * 4
        while len(cols.ids) < max_frames:
            if self._pos >= self._end:
                if not self._fill():
                    self._ended = True
                    break
                continue
            ts, ids, dlc, data, chan, stop, lines = parse(
                self._buf, self._pos, self._end, max_frames - len(cols.ids), self._chan_blob
            )
            if ids:
                cols.extend(ts, ids, dlc, data, chan)
            self._line_no += lines
            self._pos = stop
            if len(cols.ids) >= max_frames or stop >= self._end:
                continue
            # The kernel stopped before a line it leaves to us (FD, remote, error, odd or broken).
            nl = self._buf.index(b"\n", stop)
            raw = self._buf[stop:nl + 1]
            self._pos = nl + 1
            # Text-mode reading split lines at "\r" too; keep doing so for these lines.
            text = raw.decode("ascii", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
            for line in text.split("\n")[:-1]:
                self._line_no += 1
                frame = self._parse_line(line + "\n")
                if frame is not None:
                    cols.append(frame, self._channel_index(frame.channel))
            odd_budget -= 1
            if odd_budget <= 0:
                break
        return cols.block(self._chan_names)

    def _channel_index(self, name: str) -> int:
        n = self._chan_ids.get(name)
        if n is None:
            n = self._chan_ids[name] = len(self._chan_names)
            self._chan_names.append(name)
            # Only names the kernel can match byte for byte go into its table (an empty entry never matches).
            plain = name.isascii() and name.isprintable() and " " not in name
            self._chan_entries.append(name.encode("ascii") if plain else b"")
            self._chan_blob = b"\n".join(self._chan_entries)
        return n

    def _parse_line(self, line: str) -> RawFrame | None:
        """The full rules for one line: a frame, or ``None`` (counted: remote, error or malformed)."""
        # Format: "(1436509052.249713) can0 0CF00400#FF7D7D... [T|R]"
        try:
            if line[0] != "(":
                if line.strip():
                    self._bad_line(line, "no '(' timestamp")
                return None
            ts_s, _, rest = line[1:].partition(") ")
            chan, _, rest = rest.partition(" ")
            if rest[:1] == " ":
                # Interactive candump pads 11-bit ids to align columns: "can1      301#..".
                rest = rest.lstrip(" ")
            frame_s, _, tail = rest.rstrip().partition(" ")
            # python-can's writer appends a direction flag; anything else is a broken line.
            if tail and tail != "R" and tail != "T":
                self._bad_line(line, "unexpected text after frame")
                return None
            id_s, sep, data_s = frame_s.partition("#")
            if not sep or not id_s:
                self._bad_line(line, "no ID#DATA")
                return None
            can_id = int(id_s, 16)
            extended = len(id_s) > 3
            if data_s and data_s[0] == "#":
                # CAN-FD: "ID##<flags nibble><data>"
                int(data_s[1], 16)
                data = bytes.fromhex(data_s[2:])
                if len(data) not in FD_LENGTHS:
                    self._bad_line(line, "CAN-FD length")
                    return None
            elif data_s and data_s[0] == "R":
                self.counters.inc("can_remote_frames")
                return None
            else:
                data = bytes.fromhex(data_s)
                if len(data) > 8:
                    self._bad_line(line, "classic frame over 8 bytes")
                    return None
            if extended and can_id & CAN_ERR_FLAG:
                self.counters.inc("can_error_frames")
                return None
            if can_id > (MAX_EXTENDED_ID if extended else MAX_STANDARD_ID):
                self._bad_line(line, "identifier too wide")
                return None
            return RawFrame(float(ts_s), can_id, data, extended, chan)
        except (ValueError, IndexError) as exc:
            self._bad_line(line, str(exc))
            return None

    def _bad_line(self, line: str, why: str) -> None:
        self.counters.decode_error(_MALFORMED)
        self._bad_lines += 1
        if self._bad_lines <= LOGGED_BAD_LINES:
            log.warning("%s:%d: malformed candump line (%s): %r",
                        self.path, self._line_no, why, line[:120])

    def _read_python_can(self, max_frames: int) -> list[RawFrame]:
        assert self._messages is not None
        out: list[RawFrame] = []
        for _ in range(max_frames * 4):
            try:
                msg = next(self._messages)
            except StopIteration:
                self._ended = True
                break
            except self._reader_errors as exc:
                # A python-can reader cannot resume after raising (its generator is finished),
                # so a corrupt .asc/.blf ends the replay here; counted so the cut is visible.
                self.counters.decode_error(_MALFORMED)
                log.warning("%s: capture unreadable after %d frames: %s", self.path, len(out), exc)
                self._ended = True
                break
            if msg.is_error_frame:
                self.counters.inc("can_error_frames")
                continue
            if msg.is_remote_frame:
                self.counters.inc("can_remote_frames")
                continue
            out.append(RawFrame(
                float(msg.timestamp), int(msg.arbitration_id), bytes(msg.data),
                bool(msg.is_extended_id), "" if msg.channel is None else str(msg.channel),
            ))
            if len(out) >= max_frames:
                break
        return out

    @property
    def bad_lines(self) -> int:
        """Malformed lines skipped so far (also counted under ``can_log_malformed``)."""
        return self._bad_lines

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        self._ended = True

    def __enter__(self) -> CanReplaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
