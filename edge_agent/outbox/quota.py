"""Which rows the quota (or a full disk) evicts, and the drop report that accounts for them.

Eviction order is lowest priority first and, within a priority, oldest first, over the union of the
pending stored rows and the records of the append being made (which are younger than anything
stored, and ordered among themselves by their position in the append). So a burst of samples never
pushes out a stored fault, and an append larger than the whole quota keeps its highest-priority,
newest records. Rows in flight (claimed by the uplink) and drop reports are never candidates.
Quarantined rows (``outbox.quarantine``) are, and go before the stored rows of their priority.

Every eviction is counted in a drop report: a record of kind ``"drop_report"`` at
``Priority.DROP_REPORT`` whose payload is ``{"reason", "dropped": {kind: n}, "count", "first_ts",
"last_ts", "bytes"}`` (timestamps are the device times of the oldest and newest record dropped;
``bytes`` is their quota size). There is at most one *pending* report per reason; later evictions are
merged into it in place, so a long outage costs one row, not one per eviction. Once the uplink claims
it, the next eviction starts a new one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

DROP_REPORT_KIND = "drop_report"
REASON_QUOTA = "quota"
REASON_DISK_FULL = "disk_full"

#: ``Candidate.age`` of a quarantined row (refused by the cloud: goes before unsent rows of its
#: priority), a stored row (older) and a record in the current append (younger).
QUARANTINED, STORED, INCOMING = -1, 0, 1


class Candidate(NamedTuple):
    """One evictable row. Tuple order *is* eviction order: (priority, age, id or append position)."""

    priority: int
    age: int
    order: int
    kind: str
    ts: float
    size: int


def eviction_order(stored: Iterable[Candidate], incoming: Iterable[Candidate]) -> Iterator[Candidate]:
    """Merge two streams already sorted in eviction order (stored from SQL, incoming sorted here)."""
    return heapq.merge(stored, sorted(incoming))


class DropTally:
    """Evictions made in one transaction, to be merged into the pending drop report."""

    __slots__ = ("by_kind", "bytes", "count", "first_ts", "last_ts", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.by_kind: dict[str, int] = {}
        self.count = 0
        self.bytes = 0
        self.first_ts = float("inf")
        self.last_ts = float("-inf")

    def add(self, c: Candidate) -> None:
        self.by_kind[c.kind] = self.by_kind.get(c.kind, 0) + 1
        self.count += 1
        self.bytes += c.size
        if c.ts < self.first_ts:
            self.first_ts = c.ts
        if c.ts > self.last_ts:
            self.last_ts = c.ts

    def merged_into(self, previous: Mapping[str, object] | None) -> dict[str, object]:
        """The drop report payload after adding this tally to ``previous`` (the pending one, if any)."""
        dropped: dict[str, int] = {}
        count, size = self.count, self.bytes
        first_ts, last_ts = self.first_ts, self.last_ts
        if previous:
            old = previous.get("dropped")
            if isinstance(old, dict):
                dropped.update({str(k): int(v) for k, v in old.items()})
            count += _int(previous.get("count"))
            size += _int(previous.get("bytes"))
            first_ts = min(first_ts, _float(previous.get("first_ts"), first_ts))
            last_ts = max(last_ts, _float(previous.get("last_ts"), last_ts))
        for kind, n in self.by_kind.items():
            dropped[kind] = dropped.get(kind, 0) + n
        return {
            "reason": self.reason,
            "dropped": dict(sorted(dropped.items())),
            "count": count,
            "first_ts": first_ts,
            "last_ts": last_ts,
            "bytes": size,
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
