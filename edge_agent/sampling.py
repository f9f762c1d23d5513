"""The sampling gate: which decoded samples are worth a row in the outbox.

A busy J1939 bus repeats most signals every 10-100 ms; storing each repeat would fill the outbox with
values nobody asked for. ``SampleGate`` keeps, per (signal, source), the last *admitted* sample and
admits a new one when any of these holds:

* it is the first sample of that signal from that source;
* at least ``1 / rate_hz`` seconds passed since the last admitted one (``rate_hz == 0``: never by time);
* the value moved by at least ``deadband`` from the last admitted value (``deadband > 0``), or, for an
  on-change-only signal (``rate_hz == 0`` and ``deadband == 0``), the value differs at all;
* the value became NaN, or stopped being NaN (a sensor going invalid is news at any rate);
* more than ``HEARTBEAT_S`` seconds passed since the last admitted one, so a constant state signal is
  still known to be alive;
* the timestamp went backwards (a clock jump or a replay restart): admit and re-base on it.

Signals absent from the specs are admitted unchanged (the profile decides what is thinned).
The rules run in the ``gate`` kernel (``native/gate_py.py``): ``admit_columns`` is the hot path (every
decoded J1939 value passes it, ~170k/s on a busy truck) and makes no object per value; ``admit_many``
feeds ``Sample`` objects through the same kernel and the same per-(signal, source) memory.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence

import native
from edge_agent.errors import ConfigError
from edge_agent.model import Sample, SampleColumns

#: A signal whose value never changes is still stored this often (seconds), as proof of life.
HEARTBEAT_S = 300.0
# The heartbeat fires on "more than HEARTBEAT_S", the rate on "at least 1/rate_hz": folding both into
# one "admit when dt >= limit" bound needs the smallest float above HEARTBEAT_S.
_HEARTBEAT_LIMIT = math.nextafter(HEARTBEAT_S, math.inf)
#: ``admit_many`` numbers the samples of one kernel call with 16-bit field indices.
_MAX_PART = 0xFFFF


class SampleGate:
    """Rate, deadband and heartbeat thinning of samples, keyed per (signal, source)."""

    __slots__ = ("_admit", "_band", "_bindings", "_limit", "_on_change", "_slot_spec", "_slots", "_spec_of",
                 "_state")

    def __init__(self, specs: Mapping[str, tuple[float, float]]) -> None:
        self._spec_of: dict[str, int] = {}
        self._limit, self._band, self._on_change = array("d"), array("d"), array("B")
        for name, (rate_hz, deadband) in specs.items():
            rate, band = float(rate_hz), float(deadband)
            if not (rate >= 0.0 and math.isfinite(rate)) or not (band >= 0.0 and math.isfinite(band)):
                raise ConfigError(
                    f"sampling of signal {name!r}: rate_hz and deadband must be finite and >= 0 "
                    f"(got rate_hz={rate_hz!r}, deadband={deadband!r})"
                )
            period = 1.0 / rate if rate > 0.0 else math.inf
            self._spec_of[name] = len(self._limit)
            self._limit.append(min(period, _HEARTBEAT_LIMIT))
            self._band.append(band)
            self._on_change.append(rate == 0.0 and band == 0.0)
        # One slot of memory per (signal, source) pair: its spec, and [seen, last ts, last value].
        self._slots: dict[tuple[str, str], int] = {}
        self._slot_spec = array("H")
        self._state = array("d")
        # Slot tables for column layouts seen before, keyed by (names, sources) identity.
        self._bindings: dict[tuple[int, int], tuple[Sequence[str], Sequence[str], array]] = {}
        self._admit = native.kernel("gate").admit

    def _slot(self, name: str, source: str) -> int:
        """The pair's slot, made on first sight; -1 if the signal has no spec."""
        slot = self._slots.get((name, source))
        if slot is None:
            spec = self._spec_of.get(name)
            if spec is None:
                return -1
            slot = self._slots[(name, source)] = len(self._slot_spec)
            self._slot_spec.append(spec)
            self._state.extend((0.0, 0.0, 0.0))
        return slot

    def _table(self, names: Sequence[str], sources: Sequence[str]) -> array:
        key = (id(names), id(sources))
        bound = self._bindings.get(key)
        # The layout objects are kept alive in the binding, so their ids cannot be reused meanwhile.
        if bound is None or bound[0] is not names or bound[1] is not sources:
            table = array("i", [self._slot(n, s) for n in names for s in sources])
            bound = self._bindings[key] = (names, sources, table)
        return bound[2]

    def admit(self, sample: Sample) -> bool:
        """True if ``sample`` should be stored (and, if so, it becomes the new reference)."""
        return bool(self.admit_many((sample,)))

    def admit_columns(self, cols: SampleColumns) -> array:
        """Indices ('I') of the values to store, in input order; updates the per-(signal, source) references."""
        if not len(cols):
            return array("I")
        table = self._table(cols.names, cols.sources)
        return self._admit(cols.timestamps, cols.field, cols.source, cols.values, table, len(cols.sources),
                           self._slot_spec, self._limit, self._band, self._on_change, self._state)

    def admit_many(self, samples: Sequence[Sample]) -> list[Sample]:
        """The samples to store, in input order; updates the per-(signal, source) references."""
        kept: list[Sample] = []
        for start in range(0, len(samples), _MAX_PART):
            part = samples[start:start + _MAX_PART]
            n = len(part)
            # Each sample is its own "field" (source 0) whose table entry is its pair's slot.
            table = array("i", [self._slot(s.signal, s.source) for s in part])
            idx = self._admit(array("d", [s.timestamp for s in part]), array("H", range(n)), array("H", bytes(2 * n)),
                              array("d", [s.value for s in part]), table, 1, self._slot_spec, self._limit,
                              self._band, self._on_change, self._state)
            kept += [part[j] for j in idx]
        return kept
