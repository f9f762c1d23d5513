"""CanReplaySource.read_block: the same frames and counters whatever the chunking and batch size."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.model import FrameBlock, RawFrame
from edge_agent.sources import can_replay
from edge_agent.sources.can_replay import CanReplaySource

DATA = Path(__file__).resolve().parents[2] / "data"

MIXED = """\
(1.000000) can0 0CF00400#FF7D7D0000F0FFFF
(1.000100) can1      3a1#0a0b0c0d00000000
(1.000200) can0 18DAF110##1000102030405060708090A0B
garbage line
(1.000300) vcan2 18FECA00# T
(1.000400) can0 123#R
(1.000500) can0 20000080#0000000000000000

(1.000600) can0 0CF00400#FF7D7D0000F0FF\r
(1.000700) c\xe9n0 0CF00400#00
(1.000800) can1 18FEF100#0102030405060708 R
(1.000900) can0 0CF00400#FF7D7D0000F0FFFFFF
(1.001000) can1 7E8#0341"""


def _read(path: Path, max_frames: int) -> tuple[list[RawFrame], dict[str, object]]:
    counters = Counters()
    src = CanReplaySource(path, counters=counters)
    out: list[RawFrame] = []
    while (block := src.read_block(max_frames)) is not None:
        assert isinstance(block, FrameBlock)
        assert len(block) <= max_frames
        out.extend(block)
    return out, counters.snapshot()


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("max_frames", [1, 3, 512])
def test_chunking_and_batch_size_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, max_frames: int
) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(MIXED.encode("latin-1"))
    monkeypatch.setattr(can_replay, "CHUNK_BYTES", chunk)
    frames, snap = _read(path, max_frames)
    assert [(f.timestamp, f.arbitration_id, f.is_extended, f.channel, f.data.hex()) for f in frames] == [
        (1.0, 0x0CF00400, True, "can0", "ff7d7d0000f0ffff"),
        (1.0001, 0x3A1, False, "can1", "0a0b0c0d00000000"),
        (1.0002, 0x18DAF110, True, "can0", bytes(range(12)).hex()),
        (1.0003, 0x18FECA00, True, "vcan2", ""),
        (1.0006, 0x0CF00400, True, "can0", "ff7d7d0000f0ff"),
        (1.0007, 0x0CF00400, True, "c\ufffdn0", "00"),
        (1.0008, 0x18FEF100, True, "can1", "0102030405060708"),
        (1.001, 0x7E8, False, "can1", "0341"),
    ]
    assert snap["frames"] == 8
    assert snap["can_remote_frames"] == 1
    assert snap["can_error_frames"] == 1
    assert snap["decode_errors"] == {"can_log_malformed": 2}


def test_read_batch_lists_what_read_block_gives() -> None:
    path = DATA / "corrupt" / "can" / "mixed_bad_lines.log"
    blocks, _ = _read(path, 2)
    src = CanReplaySource(path)
    batches: list[RawFrame] = []
    while (batch := src.read_batch(2)) is not None:
        assert isinstance(batch, list)
        batches.extend(batch)
    assert batches == blocks and len(blocks) == 7
