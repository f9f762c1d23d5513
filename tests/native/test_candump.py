"""The candump line kernel equals its twin, and agrees with the full line parser on what it accepts."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from edge_agent.counters import Counters
from edge_agent.model import EXTENDED_FLAG, RawFrame
from edge_agent.sources.can_replay import CanReplaySource
from native import candump_py

pytestmark = pytest.mark.native

HEX = "0123456789abcdefABCDEF"
CHANNELS = ["can0", "vcan1", "can1", "x"]

plain_line = st.builds(
    lambda sec, frac, chan, can_id, width, data, tail: (
        f"({sec}.{frac}) {chan} {can_id:0{width}X}#{data.hex().upper()}{tail}\n"
    ),
    st.integers(0, 10**12), st.from_regex(r"\A[0-9]{1,9}\Z"), st.sampled_from([*CHANNELS, "can9"]),
    st.integers(0, 0x3FFFFFFF), st.sampled_from([1, 2, 3, 4, 8]), st.binary(max_size=9),
    st.sampled_from(["", " T", " R", "\r", " X", "  "]),
)
odd_line = st.one_of(
    st.sampled_from([
        "\n", "\r\n", "junk\n", "(1.5) can0 123#R\n", "(1.5) can0 18DAF110##1001122\n",
        "(1.5) can0      3a1#0a0b\n", "(1.5)  can0 123#00\n", "(1e3) can0 123#00\n", "(1.5) can0 123#0\n",
        "(1.5) can0 20000080#0000000000000000\n", "(1.5) can0 123#00 T\r\n", "(12345678901234567.5) can0 1#\n",
        "(1.5) c\xe9n0 123#00\n", "(1.5) can0 123456789#00\n", "(.5) can0 1#\n", "(1.) can0 1#\n",
    ]),
    st.text(alphabet="(0123456789.) can#ABRT\r", max_size=30).map(lambda s: s + "\n"),
)
lines = st.lists(st.one_of(plain_line, plain_line, odd_line), max_size=40)


def _table(names: list[str]) -> bytes:
    return b"\n".join(n.encode() for n in names)


@settings(max_examples=400)
@given(lines, st.integers(1, 50), st.lists(st.sampled_from([*CHANNELS, ""]), max_size=4), st.integers(0, 40))
def test_kernel_equals_twin(text: list[str], max_frames: int, names: list[str], cut: int) -> None:
    buf = "".join(text).encode("latin-1")
    pos = min(cut, len(buf))
    args = (buf, pos, len(buf), max_frames, _table(names))
    assert native.kernel("candump").parse_lines(*args) == candump_py.parse_lines(*args)


@settings(max_examples=300)
@given(lines)
def test_accepted_lines_parse_as_the_full_parser_does(text: list[str]) -> None:
    buf = "".join(text).encode("latin-1")
    ts, ids, dlc, data, chan, stop, consumed = native.kernel("candump").parse_lines(
        buf, 0, len(buf), 1000, _table(CHANNELS)
    )
    taken = buf[:stop].decode("ascii").splitlines()
    assert consumed == len(taken)
    full = CanReplaySource.__new__(CanReplaySource)
    full.counters = Counters()
    expected = [f for f in (full._parse_line(line + "\n") for line in taken if line) if f is not None]
    got = [RawFrame(ts[i], ids[i] & ~EXTENDED_FLAG, data[8 * i: 8 * i + dlc[i]], bool(ids[i] & EXTENDED_FLAG),
                    CHANNELS[chan[i]]) for i in range(len(ids))]
    assert got == expected
    assert full.counters.decode_errors() == {}
    # It stopped at the end or at a line it leaves to the caller, never inside a line.
    assert stop == len(buf) or buf[stop - 1:stop] in (b"", b"\n")


def test_timestamps_are_the_correctly_rounded_double() -> None:
    stamps = ["1436509052.249713", "0.1", "9007199254.740992", "1764000000.000001", "3.14159265358979"]
    buf = "".join(f"({s}) can0 1#\n" for s in [*stamps, "9007199254.740993"]).encode()
    ts, *_, stop, _lines = native.kernel("candump").parse_lines(buf, 0, len(buf), 100, b"can0")
    assert list(ts) == [float(s) for s in stamps]
    # Past 2**53 the digits are no longer exact: that line is left to the full parser.
    assert buf[stop:].startswith(b"(9007199254.740993)")


def test_a_recorded_capture_parses_whole_and_equals_the_twin() -> None:
    path = Path(__file__).resolve().parents[1] / "data" / "sim" / "van_obd2.log"
    buf = path.read_bytes()
    table = b"vcan0\ncan0"
    out = native.kernel("candump").parse_lines(buf, 0, len(buf), 10**6, table)
    assert out == candump_py.parse_lines(buf, 0, len(buf), 10**6, table)
    assert out[5] == len(buf) and len(out[1]) == buf.count(b"\n")
    assert isinstance(out[0], array) and out[0].typecode == "d"
