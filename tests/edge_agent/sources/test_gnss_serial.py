"""SerialGnssSource over real ptys: partial lines, garbage, over-long lines, unplug/replug, baud noise."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.model import TimedLine
from edge_agent.sources.gnss_serial import BAUD_WINDOW_BYTES, SerialGnssSource

DATA = Path(__file__).resolve().parents[2] / "data"
SENTENCES = [ln for ln in (DATA / "real/nmea/bu353s4_gp.nmea").read_text().splitlines() if ln.startswith("$")]


class Pty:
    """A pty pair; the master plays the GNSS receiver, the slave is the 'serial port'."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty_pair() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


def _collect(src: SerialGnssSource, want: int, seconds: float = 5.0) -> list[TimedLine]:
    out: list[TimedLine] = []
    end = time.monotonic() + seconds
    while len(out) < want and time.monotonic() < end:
        out += src.read_lines(0.05)
    return out


def test_partial_lines_across_writes_and_garbage(pty_pair: Pty) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, 9600, counters=c, clock=lambda: 42.0)
    blob = "".join(s + "\r\n" for s in SENTENCES[:6]).encode()
    # cut mid-sentence at odd places, with line noise between two sentences
    pieces = [blob[:17], blob[17:90], b"\x00\xff\x13", blob[90:91], blob[91:]]
    for piece in pieces:
        pty_pair.write(piece)
        time.sleep(0.02)
    lines = _collect(src, 6)
    src.close()
    assert [tl.text for tl in lines] == SENTENCES[:6]  # noise bytes were dropped, not spliced in
    assert all(tl.received_at == 42.0 for tl in lines)
    assert c.get("serial_garbage_bytes") == 3 and c.get("lines") == 6


def test_over_long_line_discarded_and_counted(pty_pair: Pty) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, counters=c, max_line=100)
    pty_pair.write(b"$GPTXT," + b"A" * 300 + b"\r\n" + SENTENCES[0].encode() + b"\r\n")
    lines = _collect(src, 1)
    src.close()
    assert [tl.text for tl in lines] == [SENTENCES[0]]
    assert c.get("serial_long_lines") == 1


def test_unplug_and_replug_reopens_and_continues(tmp_path: Path) -> None:
    c = Counters()
    first = Pty()
    link = tmp_path / "ttyGNSS"
    link.symlink_to(first.path)
    src = SerialGnssSource(str(link), counters=c, reopen_backoff=(0.01, 0.05))
    first.write((SENTENCES[0] + "\r\n").encode())
    assert [tl.text for tl in _collect(src, 1)] == [SENTENCES[0]]
    # unplug: the receiver side goes away and the device node vanishes
    first.write(SENTENCES[1][:20].encode())  # a partial line that can never complete
    time.sleep(0.05)
    os.close(first.master)
    link.unlink()
    assert src.read_lines(0.3) == []  # no raise, nothing invented
    assert c.get("serial_reopens") >= 1
    # replug: a new device appears under the same name
    second = Pty()
    link.symlink_to(second.path)
    deadline = time.monotonic() + 5
    got: list[TimedLine] = []
    while not got and time.monotonic() < deadline:
        second.write((SENTENCES[2] + "\r\n").encode())
        got = _collect(src, 1, 0.3)
    src.close()
    os.close(first.slave)
    second.close()
    assert got and got[0].text == SENTENCES[2]  # the stale partial line was not glued on


def test_port_missing_at_start_never_raises(tmp_path: Path) -> None:
    c = Counters()
    src = SerialGnssSource(str(tmp_path / "nothing"), counters=c, reopen_backoff=(0.01, 0.02))
    assert src.read_lines(0.1) == []
    src.close()


def test_baud_mismatch_warned_once_with_port_and_rate(pty_pair: Pty, caplog: pytest.LogCaptureFixture) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, 4800, counters=c)
    rng = random.Random(7)
    # What a 4800 Bd port sees from a 38400 Bd receiver: framing noise, mostly high bytes.
    noise = bytes(rng.choice([0x00, 0x80, 0xF8, 0xFE, 0xE0, 0x78, 0x86]) for _ in range(BAUD_WINDOW_BYTES * 3))
    with caplog.at_level(logging.WARNING, logger="edge_agent.sources.gnss_serial"):
        for i in range(0, len(noise), 256):
            pty_pair.write(noise[i : i + 256])
            time.sleep(0.01)
        end = time.monotonic() + 3
        while c.get("baud_mismatch") < 3 and time.monotonic() < end:
            src.read_lines(0.05)
    src.close()
    assert c.get("baud_mismatch") == 3
    warnings = [r.getMessage() for r in caplog.records if "baud" in r.getMessage()]
    assert len(warnings) == 1 and pty_pair.path in warnings[0] and "4800" in warnings[0]


def test_clean_nmea_is_not_a_baud_mismatch(pty_pair: Pty) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, counters=c)
    pty_pair.write("".join(s + "\r\n" for s in SENTENCES).encode())
    lines = _collect(src, len(SENTENCES))
    src.close()
    assert len(lines) == len(SENTENCES) and c.get("baud_mismatch") == 0


def test_autobaud_steps_through_common_rates(pty_pair: Pty) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, 9600, counters=c, autobaud=True)
    pty_pair.write(b"\xfe\x80\x00\xf8" * (BAUD_WINDOW_BYTES // 4))
    end = time.monotonic() + 3
    while c.get("baud_mismatch") < 1 and time.monotonic() < end:
        src.read_lines(0.05)
    assert src.baudrate == 38400
    # at the right rate the receiver's sentences come through and no more switching happens
    pty_pair.write("".join(s + "\r\n" for s in SENTENCES).encode())
    lines = _collect(src, len(SENTENCES))
    src.close()
    assert len(lines) == len(SENTENCES) and src.baudrate == 38400


def test_silent_port_is_reopened(pty_pair: Pty) -> None:
    c = Counters()
    src = SerialGnssSource(pty_pair.path, counters=c, silence_reopen=0.2, reopen_backoff=(0.01, 0.02))
    end = time.monotonic() + 3
    while c.get("serial_reopens") < 1 and time.monotonic() < end:
        assert src.read_lines(0.05) == []
    assert c.get("serial_reopens") == 1
    # after the reopen the same (still plugged) port delivers again
    got: list[TimedLine] = []
    while not got and time.monotonic() < end:
        pty_pair.write((SENTENCES[0] + "\r\n").encode())
        got = _collect(src, 1, 0.1)
    src.close()
    assert got[0].text == SENTENCES[0]


RECEIVER = """
import os, sys, time
fd = int(sys.argv[1])
lines = [ln for ln in open(sys.argv[2], "rb").read().splitlines() if ln.startswith(b"$")]
for ln in lines:
    os.write(fd, ln + b"\\r\\n")
    time.sleep(0.002)
time.sleep(60)  # stay 'plugged in' until killed
"""


def test_receiver_process_end_to_end_then_killed(tmp_path: Path) -> None:
    """A separate receiver process feeds a pty; decoding its output gives every epoch; SIGKILL = unplug."""
    import signal
    import subprocess
    import sys

    from edge_agent.decoding.nmea import NmeaDecoder

    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    capture = DATA / "real/nmea/bu353s4_gp.nmea"
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(master), str(capture)], pass_fds=[master])
    os.close(master)  # only the receiver process holds the master: its death is the unplug
    c = Counters()
    src = SerialGnssSource(path, counters=c, reopen_backoff=(0.05, 0.1))
    os.close(slave)
    try:
        lines = _collect(src, len(SENTENCES), 10.0)
        decoder = NmeaDecoder(c)
        fixes = [f for tl in lines for f in decoder.feed(tl)] + decoder.flush()
        assert len(fixes) == 25 and all(f.valid for f in fixes)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        end = time.monotonic() + 3
        while c.get("serial_reopens") == 0 and time.monotonic() < end:
            assert src.read_lines(0.05) == []
        assert c.get("serial_reopens") >= 1
    finally:
        src.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_bad_configuration_fails_at_start(pty_pair: Pty) -> None:
    from edge_agent.errors import SourceError

    with pytest.raises(SourceError, match="baudrate"):
        SerialGnssSource(pty_pair.path, 0, counters=Counters())
