"""Time for detectors: a monotonic clock from a source's own timestamps, and held signal values.

Sources are monotonic in principle, but a receiver's clock can jump (a cold start, a week-number
rollover) and a system clock can be set backwards. Detectors measure durations on this clock instead:
a step back counts as zero and a step forward is capped, so a duration is never negative and a jump
never fabricates hours of idling. The same rule is applied to arrays by ``native/runs``
(``find_runs_ticked`` adds the daemon's silence ticks, ``edge_agent.detection.DetectionBatch.tick``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Sequence

import native
from edge_agent.model import Sample, SampleColumns

#: What ``native/runs.find_runs`` returns: events (index, kind, on, off, on_ts, off_ts, acc), mono, state.
Runs = tuple[array, array, array, array, array, array, array, array, array]


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


#: Finest time step (source seconds) at which detectors re-evaluate their conditions. Engine speed
#: arrives at up to 100 Hz (J1939 EEC1); idle, trips and threshold faults work in seconds, so
#: evaluating at most five times a second loses nothing and keeps the per-sample cost to a dict store.
EVAL_STEP_S = 0.2


class HeldTimeline:
    """The latest value of each wanted signal, evaluated once per timestamp group.

    ``feed`` stores every sample's value and calls ``evaluate(ts)`` when a group of samples sharing
    one timestamp is complete (the next sample has another timestamp), so the evaluation sees all of
    that instant's values. Groups closer than ``step`` to the last evaluated one are skipped unless
    the clock went backwards. The last group of a batch is evaluated when the next batch starts.
    """

    __slots__ = ("_local", "_order", "held", "last_eval", "pending", "signals", "step")

    def __init__(self, signals: frozenset[str], step: float = EVAL_STEP_S) -> None:
        self.signals = signals
        self.step = step
        self.held: dict[str, tuple[float, float, str]] = {}  # signal -> (value, source time, source)
        self.pending: float | None = None
        self.last_eval: float | None = None
        self._order = tuple(sorted(signals))
        # Per column layout (``SampleColumns.names``): field -> index in ``_order`` or -1.
        self._local: tuple[Sequence[str], array] | None = None

    def feed_batch(
        self, columns: SampleColumns | None, samples: Iterable[Sample], evaluate: Callable[[float], None]
    ) -> None:
        """A detection batch's values: its columns, then its samples."""
        if columns is not None and len(columns):
            self.feed_columns(columns, evaluate)
        self.feed(samples, evaluate)

    def feed_columns(self, cols: SampleColumns, evaluate: Callable[[float], None]) -> None:
        """``feed`` for columns: the ``hold`` kernel finds the evaluations, Python runs only those."""
        if self._local is None or self._local[0] is not cols.names:
            index = {name: k for k, name in enumerate(self._order)}
            self._local = (cols.names, array("i", [index.get(name, -1) for name in cols.names]))
        n = len(self._order)
        state = array("d", [
            self.pending is not None, self.pending or 0.0, self.last_eval is not None, self.last_eval or 0.0,
        ])
        eval_ts, held_idx, final, state = native.kernel("hold").hold(
            cols.timestamps, cols.field, cols.values, self._local[1], n, self.step, state
        )
        held, order = self.held, self._order
        ts, values, source, sources = cols.timestamps, cols.values, cols.source, cols.sources
        current = [-1] * n
        for k in range(len(eval_ts)):
            for s in range(n):
                j = held_idx[k * n + s]
                if j != current[s]:
                    current[s] = j
                    held[order[s]] = (values[j], ts[j], sources[source[j]])
            evaluate(eval_ts[k])
        for s in range(n):
            j = final[s]
            if j >= 0:
                held[order[s]] = (values[j], ts[j], sources[source[j]])
        self.pending = state[1] if state[0] else None
        self.last_eval = state[3] if state[2] else None

    def feed(self, samples: Iterable[Sample], evaluate: Callable[[float], None]) -> None:
        held, signals, step = self.held, self.signals, self.step
        pending, last = self.pending, self.last_eval
        for s in samples:
            if s.signal not in signals or s.value != s.value or s.timestamp != s.timestamp:
                continue
            t = s.timestamp
            if t != pending:
                if pending is not None and (last is None or pending - last >= step or pending < last):
                    evaluate(pending)
                    last = pending
                pending = t
            held[s.signal] = (s.value, t, s.source)
        self.pending, self.last_eval = pending, last

    def flush_pending(self, evaluate: Callable[[float], None]) -> None:
        """Evaluate the last group fed, as the next value would have (a silence tick: none is coming)."""
        pending, last = self.pending, self.last_eval
        if pending is not None and (last is None or pending - last >= self.step or pending < last):
            evaluate(pending)
            self.last_eval = pending
        self.pending = None

    def fresh(self, name: str, now: float, stale_s: float) -> float | None:
        """The held value of ``name`` if it was stamped at most ``stale_s`` before ``now``."""
        held = self.held.get(name)
        return held[0] if held is not None and now - held[1] <= stale_s else None

    def state(self) -> dict[str, object]:
        return {"held": {k: list(v) for k, v in self.held.items()}, "pending": self.pending, "last": self.last_eval}

    def restore(self, state: dict[str, object]) -> None:
        held = state.get("held")
        if isinstance(held, dict):
            for name, raw in held.items():
                if (name in self.signals and isinstance(raw, list) and len(raw) == 3
                        and isinstance(raw[0], int | float) and isinstance(raw[1], int | float)):
                    self.held[name] = (float(raw[0]), float(raw[1]), str(raw[2]))
        for key, attr in (("pending", "pending"), ("last", "last_eval")):
            value = state.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                setattr(self, attr, float(value))


def find_runs_ticked(
    ts: array, cond: array, rate: array, state: array, min_duration: float, debounce: float, max_gap: float,
    ticks_from: int,
) -> Runs:
    """``native/runs.find_runs`` where the evaluations from index ``ticks_from`` on are silence ticks.

    The daemon ticks only once the bus has been silent long enough (``SILENCE_S``), so any step to a
    tick is a gap that ends a run: at its last real sample, with the duration and integral it had there,
    exactly as the bus waking after ``max_gap`` would end it. Nothing runs during a silence, so a tick's
    condition is false whatever the held values say. Real samples keep ``max_gap``.
    """
    runs = native.kernel("runs")
    if ticks_from >= len(ts):
        result: Runs = runs.find_runs(ts, cond, rate, state, min_duration, debounce, max_gap)
        return result
    quiet = array("B", bytes(len(ts) - ticks_from))
    if ticks_from == 0:
        result = runs.find_runs(ts, quiet, rate, state, min_duration, debounce, 0.0)
        return result
    head: Runs = runs.find_runs(ts[:ticks_from], cond[:ticks_from], rate[:ticks_from], state, min_duration,
                                debounce, max_gap)
    tail: Runs = runs.find_runs(ts[ticks_from:], quiet, rate[ticks_from:], head[8], min_duration, debounce, 0.0)
    index = array("I", head[0])
    index.extend(i + ticks_from for i in tail[0])
    return (index, head[1] + tail[1], head[2] + tail[2], head[3] + tail[3], head[4] + tail[4], head[5] + tail[5],
            head[6] + tail[6], head[7] + tail[7], tail[8])
