"""FrameBlock: columns that still behave as a Sequence[RawFrame]."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.model import EXTENDED_FLAG, FrameBlock, RawFrame

frames = st.lists(
    st.builds(
        RawFrame,
        st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 0x7FF),
        st.sampled_from([b"", b"\x01", bytes(range(8)), bytes(range(12)), bytes(range(64))]),
        st.booleans(), st.sampled_from(["can0", "can1", ""]),
    ),
    max_size=20,
)


@given(frames)
def test_round_trip_items_and_slices(items: list[RawFrame]) -> None:
    block = FrameBlock.from_frames(items)
    assert len(block) == len(items)
    assert list(block) == items
    assert [block[i] for i in range(-len(items), 0)] == items
    assert list(block[1:-1]) == items[1:-1]
    assert list(block[::2]) == items[::2]
    assert bool(block) == bool(items)


def test_columns_carry_the_extended_flag_and_padded_data() -> None:
    block = FrameBlock.from_frames([RawFrame(1.0, 0x18FEF100, b"\x01\x02", True, "can0"),
                                    RawFrame(2.0, 0x7E8, bytes(range(12)), False, "can1")])
    assert list(block.ids) == [0x18FEF100 | EXTENDED_FLAG, 0x7E8]
    assert block.data == b"\x01\x02" + bytes(6) + bytes(range(8))
    assert list(block.dlc) == [2, 12]
    assert block[1].data == bytes(range(12))
    assert block[-1].channel == "can1"
    with pytest.raises(IndexError):
        block[2]
    with pytest.raises(ValueError):
        FrameBlock(block.timestamps, block.ids, block.dlc, b"", block.channel, block.channels)
