"""Boot epochs: fresh at every start, above the last one when the clock is behind, inside 63 bits."""

from __future__ import annotations

import random

from edge_agent.uplink.identity import RANDOM_BITS, ChainState, draw_epoch
from edge_agent.wire import GENESIS_HASH
from edge_agent.wire.model import MAX_ID

NOW_MS = 1_764_028_800_000


def test_epoch_is_clock_then_random_bits() -> None:
    epoch = draw_epoch(NOW_MS, rand=lambda bits: 0x5A5A5 & ((1 << bits) - 1))
    assert epoch >> RANDOM_BITS == NOW_MS
    assert epoch & ((1 << RANDOM_BITS) - 1) == 0x5A5A5
    # Milliseconds until far beyond this century still fit the wire's 63-bit field.
    assert draw_epoch(int(4_102_444_800_000 * 1.5)) <= MAX_ID


def test_same_clock_two_starts_differ() -> None:
    # A device without an RTC battery boots at the same wall time twice: only the random bits differ.
    epochs = {draw_epoch(0) for _ in range(200)}
    assert len(epochs) == 200


def test_clock_behind_the_last_start_still_moves_up() -> None:
    rng = random.Random(3)
    last = draw_epoch(NOW_MS)
    for _ in range(50):
        behind = draw_epoch(NOW_MS - 86_400_000, last, rand=rng.getrandbits)  # the clock went back a day
        assert behind > last
        last = behind


def test_absurd_clock_gives_a_valid_epoch() -> None:
    assert 0 <= draw_epoch(2**60) <= MAX_ID
    assert 0 <= draw_epoch(-5) <= MAX_ID


def test_chain_advances() -> None:
    chain = ChainState.fresh(None, wall_s=NOW_MS / 1000)
    assert (chain.seq, chain.prev_hash) == (0, GENESIS_HASH)
    chain.advance(b"\x01" * 32)
    chain.advance(b"\x02" * 32)
    assert (chain.seq, chain.prev_hash) == (2, b"\x02" * 32)
