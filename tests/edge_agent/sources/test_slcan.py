"""The burst-reading slcan source against the adapter emulator on a real pty."""

from __future__ import annotations

import time

import pytest

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import RawFrame
from edge_agent.sources.can_bus import CanFilter
from edge_agent.sources.slcan import SlcanSource
from hil.slcan_adapter import SlcanEmulator


def _read(src: SlcanSource, n: int, timeout: float = 5.0) -> list[RawFrame]:
    got: list[RawFrame] = []
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got.extend(src.read_batch(512, 0.05) or [])
    return got


def test_setup_burst_receive_and_send(emulator: SlcanEmulator) -> None:
    counters = Counters()
    with SlcanSource(emulator.port, bitrate=500_000, counters=counters) as src:
        assert emulator.wait_for("S6") and emulator.wait_for("O")  # Lawicel S6 = 500 kbit/s
        frames = [RawFrame(0, 0x0CF00400 + i, bytes([i % 256, 1, 2, 3, 4, 5, 6, 7]), True) for i in range(300)]
        frames.append(RawFrame(0, 0x7E8, bytes.fromhex("064100BE3FA813"), False))
        frames.append(RawFrame(0, 0x18FECA00, b"", True))
        emulator.inject(*frames)
        got = _read(src, len(frames))
        assert [(f.arbitration_id, f.data, f.is_extended) for f in got] == [
            (f.arbitration_id, f.data, f.is_extended) for f in frames
        ]
        assert counters.get("frames") == len(frames)
        src.send(RawFrame(0, 0x7DF, bytes.fromhex("02010C0000000000"), False))
        src.send(RawFrame(0, 0x18DB33F1, bytes.fromhex("020105"), True))
        assert emulator.wait_for("t7DF802010C0000000000") and emulator.wait_for("T18DB33F13020105")
    time.sleep(0.1)
    assert emulator.seen_commands()[-1] == "C"


def test_garbage_remote_frames_acks_and_filters(emulator: SlcanEmulator) -> None:
    counters = Counters()
    keep = CanFilter(0x00FEF100, 0x00FFFF00, True)
    with SlcanSource(emulator.port, counters=counters, filters=[keep]) as src:
        good = RawFrame(0, 0x18FEF100, bytes(8), True)
        other = RawFrame(0, 0x0CF00400, bytes(8), True)
        emulator.inject(good, other, raw=b"TZZZZZZZZ8nothex\rR18FEF1008\rz\r\x07")
        got = _read(src, 1)
        time.sleep(0.1)
        got += src.read_batch(512, 0.05) or []
    assert [f.arbitration_id for f in got] == [0x18FEF100]
    assert counters.get("source_errors") == 1 and counters.get("can_remote_frames") == 1


def test_unplugged_adapter_fails_loudly_and_bad_bitrate_is_refused(emulator: SlcanEmulator) -> None:
    with pytest.raises(SourceError, match="no Lawicel code"):
        SlcanSource(emulator.port, bitrate=333_000)
    src = SlcanSource(emulator.port)
    try:
        emulator.inject(RawFrame(0, 0x7E8, b"\x01", False))
        assert [f.arbitration_id for f in _read(src, 1)] == [0x7E8]
        emulator.close()  # the USB cable pulled: reads fail with EIO or end of input
        with pytest.raises(SourceError, match="unplugged"):
            for _ in range(20):
                src.read_batch(16, 0.1)
    finally:
        src.close()
    with pytest.raises(SourceError, match="cannot open"):
        SlcanSource("/dev/nonexistent-slcan")
