"""A monotonic clock built from a source's own timestamps (bus or GNSS receiver time).

Sources are monotonic in principle, but a receiver's clock can jump (a cold start, a week-number
rollover) and a system clock can be set backwards. Detectors measure durations on this clock instead:
a step back counts as zero and a step forward is capped, so a duration is never negative and a jump
never fabricates hours of idling. The same rule is applied to arrays by ``native/runs``.
"""

from __future__ import annotations

import math


class MonoClock:
    """Advance with each timestamp; ``now`` only ever grows."""

    __slots__ = ("last_ts", "max_step", "now")

    def __init__(self, max_step: float) -> None:
        self.max_step = max_step
        self.now = 0.0
        self.last_ts: float | None = None

    def advance(self, ts: float) -> float:
        """The monotonic time of a sample stamped ``ts`` (NaN leaves the clock where it is)."""
        if math.isnan(ts):
            return self.now
        if self.last_ts is not None:
            self.now += min(max(ts - self.last_ts, 0.0), self.max_step)
        self.last_ts = ts
        return self.now

    def state(self) -> dict[str, object]:
        return {"now": self.now, "last_ts": self.last_ts}

    def restore(self, state: dict[str, object]) -> None:
        now, last = state.get("now"), state.get("last_ts")
        if isinstance(now, int | float) and math.isfinite(now):
            self.now = float(now)
        if isinstance(last, int | float) and math.isfinite(last):
            self.last_ts = float(last)
