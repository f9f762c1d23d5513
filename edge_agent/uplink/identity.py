"""Batch identity: a fresh ``boot_epoch`` per start, ``seq`` and the hash chain within it.

Why a fresh epoch at every start rather than a persisted counter: a persisted ``seq`` can go
backwards. SQLite with ``synchronous=FULL`` keeps every commit, but flash that acknowledges a write
before it is durable (common on vehicle SD cards) can lose the last commits in a power cut, and then
the counter would hand out a ``(boot_epoch, seq)`` the cloud already holds with other records; the
cloud would reject it as ``seq_reused`` (or, worse, take it for a duplicate). So nothing rolled back
can be reused, the epoch is drawn, not counted:

    boot_epoch = (wall-clock milliseconds << RANDOM_BITS) | RANDOM_BITS random bits

Milliseconds since 1970 need 41 bits until the year 2039 and 42 until 2109, so the value stays well
inside the wire's 63-bit limit. The clock part makes epochs grow across restarts; the random part
keeps two starts apart when the clock does not move between them (a device without an RTC battery
boots at the same wall time each time, until GNSS sets it): two such starts collide with probability
2**-20. The last epoch is also persisted, and a new one is made larger than it when the clock is
behind; that helps when the disk is honest and costs nothing when it is not.

Within an epoch ``seq`` counts from 0 and ``prev_hash`` is ``batch_hash`` of the previous batch
published in the epoch (``GENESIS_HASH`` for seq 0), so the cloud sees every batch lost in between.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.wire import GENESIS_HASH
from edge_agent.wire.model import MAX_ID

#: Random low bits of a boot epoch (see module docstring).
RANDOM_BITS = 20
#: Outbox state key holding the last epoch drawn.
STATE_KEY = "uplink"


def draw_epoch(wall_ms: int, last: int | None = None, rand: Callable[[int], int] = secrets.randbits) -> int:
    """A new boot epoch from the clock and random bits, above ``last`` when that is known."""
    epoch = (max(wall_ms, 0) << RANDOM_BITS) | rand(RANDOM_BITS)
    if last is not None and epoch <= last:
        # The clock is behind the previous start: continue above it, still with fresh random bits.
        epoch = (((last >> RANDOM_BITS) + 1) << RANDOM_BITS) | rand(RANDOM_BITS)
    if epoch > MAX_ID:  # only a clock set centuries ahead gets here
        epoch = rand(62)
    return epoch


@dataclass(slots=True)
class ChainState:
    """Where the next batch goes in the chain: ``(boot_epoch, seq)`` and its ``prev_hash``."""

    boot_epoch: int
    seq: int = 0
    prev_hash: bytes = GENESIS_HASH

    def advance(self, blob_hash: bytes) -> None:
        """The batch at ``seq`` was handed to MQTT: the next one follows it."""
        self.seq += 1
        self.prev_hash = blob_hash

    @classmethod
    def fresh(cls, last_epoch: int | None, wall_s: float | None = None) -> ChainState:
        now = time.time() if wall_s is None else wall_s
        return cls(draw_epoch(int(now * 1000), last_epoch))
