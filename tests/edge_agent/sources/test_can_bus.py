"""CanBusSource over real python-can buses: the in-process virtual bus and slcan over a real pty."""

from __future__ import annotations

import contextlib
import time
import uuid

import can
import pytest

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import RawFrame
from edge_agent.sources.can_bus import MAX_CONSECUTIVE_ERRORS, CanBusSource, CanFilter
from hil.slcan_adapter import SlcanEmulator


@pytest.fixture
def channel() -> str:
    # A fresh virtual channel per test so parallel tests never hear each other.
    return f"test-{uuid.uuid4().hex}"


def _read_until(src: CanBusSource, n: int, deadline_s: float = 2.0) -> list[list[RawFrame]]:
    batches: list[list[RawFrame]] = []
    end = time.monotonic() + deadline_s
    while sum(map(len, batches)) < n and time.monotonic() < end:
        batch = src.read_batch(max_frames=256, timeout=0.05)
        assert batch is not None  # a live bus never ends
        if batch:
            batches.append(batch)
    return batches


def test_virtual_send_and_batched_read(channel: str) -> None:
    counters = Counters()
    with CanBusSource("virtual", channel) as tx, CanBusSource("virtual", channel, counters=counters) as rx:
        sent = [RawFrame(0.0, 0x0CF00400 + i, bytes([i] * 8), True) for i in range(50)]
        for f in sent:
            tx.send(f)
        batches = _read_until(rx, 50)
    got = [f for b in batches for f in b]
    assert [(f.arbitration_id, f.data, f.is_extended) for f in got] == [
        (f.arbitration_id, f.data, True) for f in sent
    ]
    # Everything was queued before the first read, so the drain must return it in one batch.
    assert len(batches[0]) > 1
    assert counters.get("frames") == 50
    assert all(f.timestamp > 0 for f in got)


def test_max_frames_caps_a_batch(channel: str) -> None:
    with CanBusSource("virtual", channel) as tx, CanBusSource("virtual", channel) as rx:
        for i in range(10):
            tx.send(RawFrame(0.0, 0x7E8, bytes([i]), False))
        first = rx.read_batch(max_frames=4, timeout=1.0)
        second = rx.read_batch(max_frames=100, timeout=1.0)
    assert first is not None and second is not None
    assert [f.data[0] for f in first] == [0, 1, 2, 3]
    assert [f.data[0] for f in second] == list(range(4, 10))


def test_empty_bus_returns_empty_list_after_timeout(channel: str) -> None:
    with CanBusSource("virtual", channel) as rx:
        started = time.monotonic()
        assert rx.read_batch(timeout=0.1) == []
        assert time.monotonic() - started >= 0.09


def test_filters_keep_only_matching_frames(channel: str) -> None:
    # Only PGN 61444 (EEC1, 0x0CF004xx from any source) and the 11-bit OBD responder 0x7E8.
    filters = [CanFilter(0x00F00400, 0x00FFFF00, True), CanFilter(0x7E8, 0x7FF, False)]
    with CanBusSource("virtual", channel) as tx, CanBusSource("virtual", channel, filters=filters) as rx:
        for can_id, ext in [(0x0CF00400, True), (0x18FEEE00, True), (0x7E8, False), (0x7DF, False),
                            (0x0CF00403, True), (0x7E8, True)]:
            tx.send(RawFrame(0.0, can_id, b"\x01\x02", ext))
        got = [f for b in _read_until(rx, 3) for f in b]
        assert rx.read_batch(timeout=0.05) == []
    assert [(f.arbitration_id, f.is_extended) for f in got] == [
        (0x0CF00400, True), (0x7E8, False), (0x0CF00403, True)
    ]


def test_filter_wider_than_identifier_is_refused(channel: str) -> None:
    with pytest.raises(SourceError, match="11 bits"):
        CanBusSource("virtual", channel, filters=[CanFilter(0x800, 0x7FF, False)])


def test_error_and_remote_frames_are_counted_and_skipped_fd_kept(channel: str) -> None:
    counters = Counters()
    with can.Bus(interface="virtual", channel=channel) as raw, \
            CanBusSource("virtual", channel, counters=counters) as rx:
        raw.send(can.Message(arbitration_id=0x123, is_extended_id=False, is_remote_frame=True, dlc=8))
        raw.send(can.Message(arbitration_id=0x20000004, is_error_frame=True, dlc=8,
                             data=bytes(8)))
        raw.send(can.Message(arbitration_id=0x18DAF100, is_fd=True, data=bytes(range(64))))
        got = [f for b in _read_until(rx, 1) for f in b]
    assert [(f.arbitration_id, f.data) for f in got] == [(0x18DAF100, bytes(range(64)))]
    assert counters.get("can_remote_frames") == 1
    assert counters.get("can_error_frames") == 1
    assert counters.get("frames") == 1


def test_fd_frame_can_be_sent(channel: str) -> None:
    with CanBusSource("virtual", channel) as tx, CanBusSource("virtual", channel) as rx:
        tx.send(RawFrame(0.0, 0x18DAF100, bytes(range(16)), True))
        got = [f for b in _read_until(rx, 1) for f in b]
    assert got[0].data == bytes(range(16))


def test_bus_state_and_double_close(channel: str) -> None:
    src = CanBusSource("virtual", channel)
    assert src.bus_state() in ("active", "unknown")
    src.close()
    src.close()
    with pytest.raises(SourceError, match="closed"):
        src.read_batch()


def test_unknown_interface_names_interface_and_channel() -> None:
    with pytest.raises(SourceError) as info:
        CanBusSource("no-such-interface", "can7")
    msg = str(info.value)
    assert "'no-such-interface'" in msg and "'can7'" in msg


def test_missing_socketcan_device_raises_source_error() -> None:
    with pytest.raises(SourceError) as info:
        CanBusSource("socketcan", "nosuchcan9")
    assert "'socketcan'" in str(info.value) and "'nosuchcan9'" in str(info.value)


def test_missing_serial_port_for_slcan_raises_source_error() -> None:
    with pytest.raises(SourceError, match=r"slcan.*/dev/does-not-exist"):
        CanBusSource("slcan", "/dev/does-not-exist", sleep_after_open=0)


# --- slcan over a real pty -------------------------------------------------------------------


def test_slcan_pty_receive_and_send(emulator: SlcanEmulator) -> None:
    counters = Counters()
    src = CanBusSource("slcan", emulator.port, bitrate=250_000, counters=counters,
                       sleep_after_open=0)
    try:
        # S5 = 250 kbit/s in the Lawicel table; then the bus is opened with O.
        assert emulator.wait_for("S5") and emulator.wait_for("O") and emulator.is_open
        frames = [
            RawFrame(0, 0x0CF00400, bytes.fromhex("FF7D7D0000F0FFFF"), True),
            RawFrame(0, 0x7E8, bytes.fromhex("064100BE3FA813"), False),
            RawFrame(0, 0x18FECA00, b"", True),
        ]
        emulator.inject(*frames)
        got = [f for b in _read_until(src, 3) for f in b]
        assert [(f.arbitration_id, f.data, f.is_extended) for f in got] == [
            (f.arbitration_id, f.data, f.is_extended) for f in frames
        ]
        src.send(RawFrame(0, 0x7DF, bytes.fromhex("02010C0000000000"), False))
        src.send(RawFrame(0, 0x18DB33F1, bytes.fromhex("0201050000000000"), True))
        assert emulator.wait_for("t7DF802010C0000000000")
        assert emulator.wait_for("T18DB33F180201050000000000")
        assert [(f.arbitration_id, f.is_extended) for f in emulator.sent_frames()] == [
            (0x7DF, False), (0x18DB33F1, True)
        ]
    finally:
        src.close()
    # python-can sends C before S5 too; closing must send it again after the last frame.
    time.sleep(0.1)
    assert emulator.seen_commands()[-1] == "C"


def test_slcan_garbled_line_is_counted_and_reading_continues(emulator: SlcanEmulator) -> None:
    counters = Counters()
    with CanBusSource("slcan", emulator.port, counters=counters, sleep_after_open=0) as src:
        good = RawFrame(0, 0x7E8, b"\x01\x02", False)
        emulator.inject(good, raw=b"TZZZZZZZZ8nothex\r")
        got = [f for b in _read_until(src, 1) for f in b]
    assert [(f.arbitration_id, f.data) for f in got] == [(0x7E8, b"\x01\x02")]
    assert counters.get("source_errors") == 1


def test_unplugged_slcan_adapter_is_counted_then_fails_loudly(emulator: SlcanEmulator) -> None:
    counters = Counters()
    src = CanBusSource("slcan", emulator.port, counters=counters, sleep_after_open=0)
    try:
        emulator.inject(RawFrame(0, 0x7E8, b"\x01", False))
        assert [f.arbitration_id for b in _read_until(src, 1) for f in b] == [0x7E8]
        # Closing the master side is what a USB unplug looks like: reads on the tty fail with EIO.
        emulator.close()
        assert src.read_batch(timeout=0.01) == []
        assert counters.get("source_errors") == 1
        with pytest.raises(SourceError, match="in a row"):
            for _ in range(MAX_CONSECUTIVE_ERRORS):
                src.read_batch(timeout=0.01)
        assert counters.get("source_errors") == MAX_CONSECUTIVE_ERRORS
    finally:
        with contextlib.suppress(Exception):
            src.close()
