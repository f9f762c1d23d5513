"""What an hours evaluation returns: violations, time left per rule, and counted allowances.

Every item names its rule (the pack's rule id and the regulation's paragraph) and its window: the span of
time the limit is measured over. Minutes are exact (seconds / 60), so 10:59 and 11:00 stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Violation:
    """``minutes`` over (or short of) the limit of ``rule`` in the window ``[start, end]``; ``at`` is when the
    limit was first broken."""

    rule: str
    cite: str
    start: int
    end: int
    at: int
    minutes: float
    detail: str


@dataclass(frozen=True, slots=True)
class TimeLeft:
    """``left_minutes`` of ``limit_minutes`` remain in the window ``[start, end]`` (``end`` None: the window
    closes only when the driver rests)."""

    rule: str
    cite: str
    start: int
    end: int | None
    limit_minutes: float
    used_minutes: float
    left_minutes: float
    limits_driving: bool = True


@dataclass(frozen=True, slots=True)
class Allowance:
    """A counted permission, e.g. extended driving days left this week."""

    rule: str
    cite: str
    start: int
    end: int | None
    limit: int
    used: int
    left: int


@dataclass(slots=True)
class HoursReport:
    pack: str
    now: int
    violations: list[Violation] = field(default_factory=list)
    time_left: list[TimeLeft] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)

    @property
    def driving_left_minutes(self) -> float:
        """How long the driver may still drive now: the least time left of the rules that stop driving."""
        return min((t.left_minutes for t in self.time_left if t.limits_driving), default=0.0)

    def left(self, rule: str) -> TimeLeft:
        for t in self.time_left:
            if t.rule == rule:
                return t
        raise KeyError(rule)


def claim(flagged: dict[str, list[tuple[int, int]]], rule: str, a: int, b: int) -> list[tuple[int, int]]:
    """The parts of ``[a, b)`` not yet claimed for ``rule``, now claimed: a driving minute several windows see
    (two sleeper pairs, two fortnights) is one violation."""
    done = flagged.setdefault(rule, [])
    parts = [(a, b)] if a < b else []
    for x, y in done:
        parts = [p for lo, hi in parts for p in ((lo, min(hi, x)), (max(lo, y), hi)) if p[0] < p[1]]
    done.extend(parts)
    return parts


class Accumulator:
    """Collects excess minutes per (rule, window start) so a long breach is one violation, not one per
    segment."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], Violation] = {}

    def add(self, rule: str, cite: str, start: int, end: int, at: int, seconds: int, detail: str) -> None:
        if seconds <= 0:
            return
        key = (rule, start)
        old = self._items.get(key)
        if old is None:
            self._items[key] = Violation(rule, cite, start, end, at, seconds / 60, detail)
        else:
            self._items[key] = Violation(rule, cite, start, max(end, old.end), old.at,
                                         old.minutes + seconds / 60, old.detail)

    def result(self) -> list[Violation]:
        return sorted(self._items.values(), key=lambda v: (v.at, v.rule))
