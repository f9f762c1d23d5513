"""NmeaReplaySource: paces, capture time as received_at, binary junk, EOF, with the real captures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.counters import Counters
from edge_agent.decoding.nmea import NmeaDecoder
from edge_agent.errors import SourceError
from edge_agent.model import TimedLine
from edge_agent.sources.nmea_replay import MAX_PACE_GAP_S, NmeaReplaySource

DATA = Path(__file__).resolve().parents[2] / "data"
DRIVE = DATA / "real/nmea/gnss_drive.nmea"


class FakeTime:
    """A clock that only moves when the source sleeps, recording every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _drain(src: NmeaReplaySource, timeout: float = 10.0) -> list[TimedLine]:
    out: list[TimedLine] = []
    while (batch := src.read_lines(timeout)) is not None:
        out += batch
    return out


def test_fast_returns_every_line_then_none() -> None:
    c = Counters()
    src = NmeaReplaySource(DRIVE, counters=c)
    lines = _drain(src)
    expected = [ln for ln in DRIVE.read_text().splitlines() if ln.strip()]
    assert [tl.text for tl in lines] == expected and c.get("lines") == len(expected)
    assert src.read_lines() is None
    src.close()
    src.close()


def test_received_at_is_capture_time_and_decodes_deterministically() -> None:
    lines = _drain(NmeaReplaySource(DRIVE))
    # the date (26/05/2014) comes from the first RMC, prescanned, so header lines get it too
    first_time = dt.datetime(2014, 5, 26, 8, 14, 11, tzinfo=dt.UTC).timestamp()
    gga = next(tl for tl in lines if tl.text.startswith("$GPGGA,081412"))
    assert gga.received_at == first_time + 1
    d = NmeaDecoder(Counters())
    fixes = [f for tl in lines for f in d.feed(tl)] + d.flush()
    again = NmeaDecoder(Counters())
    assert fixes == [f for tl in _drain(NmeaReplaySource(DRIVE)) for f in again.feed(tl)] + again.flush()


def test_timestamps_pace_sleeps_follow_capture_epochs() -> None:
    ft = FakeTime()
    src = NmeaReplaySource(DRIVE, pace="timestamps", clock=ft.clock, sleep=ft.sleep)
    lines = _drain(src, timeout=5.0)
    epochs = sorted({tl.received_at for tl in lines})
    # 19 one-second epochs: the source sleeps 1 s between each pair, 18 s in total
    assert len(epochs) == 19
    assert ft.sleeps == pytest.approx([1.0] * 18)
    assert ft.now - 1000.0 == pytest.approx(epochs[-1] - epochs[0])


def test_timestamps_pace_respects_timeout() -> None:
    ft = FakeTime()
    src = NmeaReplaySource(DRIVE, pace="timestamps", clock=ft.clock, sleep=ft.sleep)
    first = src.read_lines(0.25)
    assert first  # the first epoch is due at once
    assert src.read_lines(0.25) == [] and ft.sleeps == [0.25]


def test_line_rate_pace(tmp_path: Path) -> None:
    p = tmp_path / "x.nmea"
    p.write_text("a\nb\nc\nd\n")
    ft = FakeTime()
    src = NmeaReplaySource(p, pace="line-rate", line_rate_hz=4.0, clock=ft.clock, sleep=ft.sleep)
    lines = _drain(src)
    assert [tl.text for tl in lines] == ["a", "b", "c", "d"]
    assert ft.sleeps == pytest.approx([0.25, 0.25, 0.25])
    # no time in the capture: synthetic received_at = index / rate
    assert [tl.received_at for tl in lines] == [0.0, 0.25, 0.5, 0.75]


def test_binary_junk_is_replaced_and_counted(tmp_path: Path) -> None:
    good = DRIVE.read_bytes().splitlines()[12]
    p = tmp_path / "junk.nmea"
    p.write_bytes(b"\xff\xfe\x00garbage\r\n" + good + b"\r\n\x80\x81\n")
    c = Counters()
    lines = _drain(NmeaReplaySource(p, counters=c))
    assert len(lines) == 3 and lines[1].text == good.decode()
    assert c.get("replay_garbage_lines") == 2


def test_bad_arguments() -> None:
    with pytest.raises(SourceError):
        NmeaReplaySource(DRIVE, pace="warp")
    with pytest.raises(SourceError):
        NmeaReplaySource(DRIVE / "missing")


def test_long_gap_and_backward_jump_are_capped(tmp_path: Path) -> None:
    lines = DRIVE.read_text().splitlines()
    rmc = [ln for ln in lines if ln.startswith("$GNRMC")]
    # 081411 -> 081429 (18 s, capped to 10) -> 081412 (backwards: no sleep)
    p = tmp_path / "gap.nmea"
    p.write_text("\n".join([rmc[0], rmc[-1], rmc[1]]) + "\n")
    ft = FakeTime()
    src = NmeaReplaySource(p, pace="timestamps", clock=ft.clock, sleep=ft.sleep)
    assert len(_drain(src, timeout=60.0)) == 3
    assert ft.sleeps == pytest.approx([MAX_PACE_GAP_S])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_any_bytes_replay_never_raises(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    p = tmp_path_factory.mktemp("fuzz") / "x.nmea"
    p.write_bytes(blob)
    ft = FakeTime()
    src = NmeaReplaySource(p, pace="timestamps", clock=ft.clock, sleep=ft.sleep)
    lines = _drain(src, timeout=1.0)
    nonblank = [ln for ln in blob.decode("ascii", errors="replace").split("\n") if ln.strip("\r").strip()]
    assert len(lines) == len(nonblank)
    assert sum(ft.sleeps) <= MAX_PACE_GAP_S * len(lines)


def test_midnight_rollover_without_new_date(tmp_path: Path) -> None:
    def cs(body: str) -> str:
        x = 0
        for ch in body:
            x ^= ord(ch)
        return f"${body}*{x:02X}"

    p = tmp_path / "midnight.nmea"
    p.write_text(
        "\n".join(
            [
                cs("GPRMC,235959.00,A,4807.038,N,01131.000,E,,,311224,,,A"),
                cs("GPGGA,000000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
            ]
        )
        + "\n"
    )
    lines = _drain(NmeaReplaySource(p))
    assert lines[1].received_at - lines[0].received_at == 1.0
    assert lines[1].received_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
