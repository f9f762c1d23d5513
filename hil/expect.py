"""Check a scenario's expectations against the records an agent left in its outbox.

The outbox is opened read-only through SQLite's URI form (``mode=ro``) after the agent has stopped,
so the check can never change what the agent wrote. An expectation counts the records of its kind
whose payload satisfies every ``where`` condition, and passes when the count is within its bounds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hil.scenario_expect import EVENT_KINDS, Expectation


@dataclass(frozen=True, slots=True)
class StoredEvent:
    kind: str
    ts: float
    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    expectation: Expectation
    count: int
    passed: bool
    #: What was found of this kind, for the report when it fails: payloads of near misses.
    seen: tuple[dict[str, object], ...] = ()

    def as_dict(self) -> dict[str, object]:
        e = self.expectation
        return {
            "index": e.index, "kind": e.kind, "expect": e.describe(), "min": e.min_count, "max": e.max_count,
            "count": self.count, "passed": self.passed,
            **({} if self.passed else {"seen": list(self.seen)}),
        }


def read_events(outbox: Path, kinds: Sequence[str] = EVENT_KINDS) -> list[StoredEvent]:
    """Every record of ``kinds`` in the outbox, in append order (read-only)."""
    if not outbox.exists():
        return []
    marks = ",".join("?" for _ in kinds)
    conn = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        rows = conn.execute(f"SELECT kind, ts, payload FROM records WHERE kind IN ({marks}) ORDER BY id",
                            tuple(kinds)).fetchall()
    finally:
        conn.close()
    out = []
    for kind, ts, payload in rows:
        try:
            data = json.loads(payload)
        except json.JSONDecodeError:
            data = {"_unreadable": payload}
        out.append(StoredEvent(str(kind), float(ts), data if isinstance(data, dict) else {"_value": data}))
    return out


def check(expectations: Sequence[Expectation], events: Sequence[StoredEvent]) -> list[ExpectationResult]:
    results = []
    for e in expectations:
        of_kind = [ev for ev in events if ev.kind == e.kind]
        hits = [ev for ev in of_kind if all(m.test(ev.payload.get(k)) for k, m in e.where.items())]
        n = len(hits)
        ok = n >= e.min_count and (e.max_count is None or n <= e.max_count)
        shown = tuple(_brief(ev.payload, e) for ev in of_kind[:5])
        results.append(ExpectationResult(e, n, ok, shown))
    return results


def _brief(payload: dict[str, object], e: Expectation) -> dict[str, object]:
    """The payload fields an expectation looks at (or the whole payload when it looks at none)."""
    if not e.where:
        return payload
    return {k: payload.get(k) for k in e.where}
