"""CanReplaySource: candump text (our parser), .asc/.blf (python-can readers), pacing, corrupt input."""

from __future__ import annotations

import gzip
from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.counters import DECODE_ERROR_DOCS, Counters
from edge_agent.errors import SourceError
from edge_agent.model import RawFrame
from edge_agent.sources.can_replay import CanReplaySource

DATA = Path(__file__).resolve().parents[2] / "data"
CORRUPT = DATA / "corrupt" / "can" / "mixed_bad_lines.log"


def drain(src: CanReplaySource, max_frames: int = 256) -> list[RawFrame]:
    out: list[RawFrame] = []
    while (batch := src.read_batch(max_frames)) is not None:
        out.extend(batch)
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CANDUMP = """\
(1436509052.249713) can0 0CF00400#FF7D7D0000F0FFFF
(1436509052.250000) vcan1 7E8#03410D32AAAAAAAA R
(1436509052.251000) can0 7DF#02010D T
(1436509052.252000) can0 18DAF110##1000102030405060708090A0B
(1436509052.253000) can0 123#R
(1436509052.254000) can0 20000080#0000000000000000
(1436509052.255000) can0 18FECA00#
"""


def test_candump_fields_fd_remote_error_and_direction_flags(tmp_path: Path) -> None:
    counters = Counters()
    frames = drain(CanReplaySource(write(tmp_path, "x.log", CANDUMP), counters=counters))
    assert frames == [
        RawFrame(1436509052.249713, 0x0CF00400, bytes.fromhex("FF7D7D0000F0FFFF"), True, "can0"),
        RawFrame(1436509052.25, 0x7E8, bytes.fromhex("03410D32AAAAAAAA"), False, "vcan1"),
        RawFrame(1436509052.251, 0x7DF, bytes.fromhex("02010D"), False, "can0"),
        RawFrame(1436509052.252, 0x18DAF110, bytes(range(12)), True, "can0"),
        RawFrame(1436509052.255, 0x18FECA00, b"", True, "can0"),
    ]
    assert counters.get("frames") == 5
    assert counters.get("can_remote_frames") == 1
    assert counters.get("can_error_frames") == 1
    assert counters.decode_errors() == {}


def test_agrees_with_python_can_reader_on_a_simulated_capture() -> None:
    path = DATA / "sim" / "van_obd2.log"
    ours = drain(CanReplaySource(path))
    theirs = [(m.timestamp, m.arbitration_id, bytes(m.data), m.is_extended_id)
              for m in can.CanutilsLogReader(path)]
    assert len(ours) > 100
    assert [(f.timestamp, f.arbitration_id, f.data, f.is_extended) for f in ours] == theirs


def test_corrupt_lines_are_counted_and_replay_continues() -> None:
    counters = Counters()
    src = CanReplaySource(CORRUPT, counters=counters)
    frames = drain(src, max_frames=3)
    # The last line of the file is good and follows 18 lines of mostly bad ones.
    assert frames[-1].arbitration_id == 0x18FEF100
    assert [f.arbitration_id for f in frames] == [
        0x0CF00400, 0x0CF00400, 0x18FEEE00, 0x7E8, 0x7E8, 0x7E8, 0x18FEF100
    ]
    assert counters.decode_errors() == {"can_log_malformed": 10}
    assert src.bad_lines == 10
    assert counters.get("can_remote_frames") == 1
    assert counters.get("can_error_frames") == 1
    assert "can_log_malformed" in DECODE_ERROR_DOCS


def test_column_aligned_candump_and_lowercase_hex(tmp_path: Path) -> None:
    # candump on a terminal pads 11-bit ids so columns line up, and prints lowercase hex.
    text = ("(143.100000) can1      3a1#0a0b0c0d00000000\n"
            "(143.100500) can1 0CF00400#f07d89861200ff89\n"
            "(143.101000) can1 18FECA01#\n")
    counters = Counters()
    frames = drain(CanReplaySource(write(tmp_path, "aligned.log", text), counters=counters))
    assert [(f.arbitration_id, f.is_extended, f.data.hex()) for f in frames] == [
        (0x3A1, False, "0a0b0c0d00000000"),
        (0x0CF00400, True, "f07d89861200ff89"),
        (0x18FECA01, True, ""),
    ]
    assert counters.decode_errors() == {}


def test_gzip_candump(tmp_path: Path) -> None:
    path = tmp_path / "x.log.gz"
    with gzip.open(path, "wt") as f:
        f.write(CANDUMP)
    assert len(drain(CanReplaySource(path))) == 5


def test_eof_returns_none_and_keeps_returning_none(tmp_path: Path) -> None:
    src = CanReplaySource(write(tmp_path, "x.log", CANDUMP))
    first = src.read_batch(max_frames=2)
    assert first is not None and len(first) == 2
    rest = src.read_batch(max_frames=100)
    assert rest is not None and len(rest) == 3
    assert src.read_batch() is None
    assert src.read_batch() is None
    src.close()
    src.close()


def test_empty_and_garbage_only_files_end_with_none(tmp_path: Path) -> None:
    assert CanReplaySource(write(tmp_path, "empty.log", "")).read_batch() is None
    counters = Counters()
    src = CanReplaySource(write(tmp_path, "junk.log", "junk\n" * 5000), counters=counters)
    assert drain(src, max_frames=10) == []
    assert counters.decode_errors()["can_log_malformed"] == 5000


def _messages() -> list[can.Message]:
    return [
        can.Message(timestamp=10.0, arbitration_id=0x0CF00400, is_extended_id=True,
                    data=bytes.fromhex("FF7D7D0000F0FFFF"), channel=0),
        can.Message(timestamp=10.01, arbitration_id=0x7E8, is_extended_id=False,
                    data=bytes.fromhex("03410D32"), channel=0),
        can.Message(timestamp=10.02, arbitration_id=0x123, is_extended_id=False,
                    is_remote_frame=True, dlc=8, channel=0),
        can.Message(timestamp=10.03, arbitration_id=0x18FEF100, is_extended_id=True,
                    data=bytes.fromhex("FFFFFF0000FFFFFF"), channel=0),
    ]


@pytest.mark.parametrize("suffix", [".asc", ".blf"])
def test_python_can_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"capture{suffix}"
    with can.Logger(path) as writer:
        for msg in _messages():
            writer.on_message_received(msg)
    counters = Counters()
    frames = drain(CanReplaySource(path, counters=counters))
    assert [(f.arbitration_id, f.data, f.is_extended) for f in frames] == [
        (0x0CF00400, bytes.fromhex("FF7D7D0000F0FFFF"), True),
        (0x7E8, bytes.fromhex("03410D32"), False),
        (0x18FEF100, bytes.fromhex("FFFFFF0000FFFFFF"), True),
    ]
    assert counters.get("can_remote_frames") == 1
    # Capture timestamps survive (ASC stores them relative to its header; offsets must hold).
    assert frames[2].timestamp - frames[0].timestamp == pytest.approx(0.03, abs=1e-4)


def test_truncated_blf_is_counted_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "capture.blf"
    with can.Logger(path) as writer:
        for i in range(2000):
            writer.on_message_received(can.Message(timestamp=1.0 + i / 1000, arbitration_id=i,
                                                   is_extended_id=True, data=bytes(8)))
    blob = path.read_bytes()
    cut = tmp_path / "cut.blf"
    cut.write_bytes(blob[: len(blob) // 2] + b"\xde\xad\xbe\xef" * 64)
    counters = Counters()
    frames = drain(CanReplaySource(cut, counters=counters))
    # Whatever python-can could read is returned; the rest ends the replay without an exception.
    assert len(frames) < 2000
    assert [f.arbitration_id for f in frames] == list(range(len(frames)))
    assert counters.decode_errors() == {"can_log_malformed": 1}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 6))
        self.now += s


def test_realtime_follows_capture_timestamps(tmp_path: Path) -> None:
    text = "".join(
        f"({ts}) can0 7E8#01\n" for ts in (100.0, 100.0, 100.5, 101.0, 103.0)
    )
    clock = FakeClock()
    src = CanReplaySource(write(tmp_path, "x.log", text), pace="realtime",
                          clock=clock, sleep=clock.sleep)
    got = []
    while (batch := src.read_batch(max_frames=10, timeout=1.0)) is not None:
        got.append((clock.now, [f.timestamp for f in batch]))
    assert got == [
        (0.0, [100.0, 100.0]),  # same timestamp: one burst, no sleep
        (0.5, [100.5]),
        (1.0, [101.0]),
        (2.0, []),  # next frame is 2 s away; the 1 s timeout expires first
        (3.0, [103.0]),
    ]
    assert clock.sleeps == [0.5, 0.5, 1.0, 1.0]


def test_fast_pace_never_sleeps(tmp_path: Path) -> None:
    clock = FakeClock()
    src = CanReplaySource(write(tmp_path, "x.log", "(1.0) c 1#01\n(500.0) c 1#02\n"),
                          clock=clock, sleep=clock.sleep)
    assert len(drain(src)) == 2 and clock.sleeps == []


def test_open_errors_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.log"):
        CanReplaySource(tmp_path / "missing.log")
    with pytest.raises(SourceError, match=r"missing\.asc"):
        CanReplaySource(tmp_path / "missing.asc")
    with pytest.raises(SourceError, match=r"capture\.xyz"):
        CanReplaySource(write(tmp_path, "capture.xyz", "x"))
    with pytest.raises(SourceError, match="pace"):
        CanReplaySource(write(tmp_path, "x.log", ""), pace="warp")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="()0123456789abcdefABCDEF.#R T-xz\t", max_size=60), max_size=30))
def test_arbitrary_lines_never_crash(tmp_path_factory: pytest.TempPathFactory,
                                     lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.log"
    path.write_text("\n".join(lines))
    counters = Counters()
    frames = drain(CanReplaySource(path, counters=counters), max_frames=4)
    for f in frames:
        assert len(f.data) <= 64
        assert f.arbitration_id <= (0x1FFFFFFF if f.is_extended else 0x7FF)
    skipped = (counters.decode_errors().get("can_log_malformed", 0)
               + counters.get("can_remote_frames") + counters.get("can_error_frames"))
    assert len(frames) + skipped <= len([ln for ln in lines if ln.strip()]) + lines.count("")
