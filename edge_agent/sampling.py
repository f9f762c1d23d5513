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
``admit_many`` is the hot path (every decoded sample passes it, ~100k/s on a busy truck): one dict
lookup per sample for the signal, one for the source, comparisons on floats, no allocation except
the first time a (signal, source) pair is seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from edge_agent.errors import ConfigError
from edge_agent.model import Sample

#: A signal whose value never changes is still stored this often (seconds), as proof of life.
HEARTBEAT_S = 300.0
# The heartbeat fires on "more than HEARTBEAT_S", the rate on "at least 1/rate_hz": folding both into
# one "admit when dt >= limit" bound needs the smallest float above HEARTBEAT_S.
_HEARTBEAT_LIMIT = math.nextafter(HEARTBEAT_S, math.inf)

# Per-signal gate: [time limit, deadband, on-change flag, per-source last admitted [timestamp, value]].
_Spec = tuple[float, float, bool, dict[str, list[float]]]


class SampleGate:
    """Rate, deadband and heartbeat thinning of samples, keyed per (signal, source)."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Mapping[str, tuple[float, float]]) -> None:
        self._specs: dict[str, _Spec] = {}
        for name, (rate_hz, deadband) in specs.items():
            rate, band = float(rate_hz), float(deadband)
            if not (rate >= 0.0 and math.isfinite(rate)) or not (band >= 0.0 and math.isfinite(band)):
                raise ConfigError(
                    f"sampling of signal {name!r}: rate_hz and deadband must be finite and >= 0 "
                    f"(got rate_hz={rate_hz!r}, deadband={deadband!r})"
                )
            period = 1.0 / rate if rate > 0.0 else math.inf
            self._specs[name] = (min(period, _HEARTBEAT_LIMIT), band, rate == 0.0 and band == 0.0, {})

    def admit(self, sample: Sample) -> bool:
        """True if ``sample`` should be stored (and, if so, it becomes the new reference)."""
        return bool(self.admit_many((sample,)))

    def admit_many(self, samples: Sequence[Sample]) -> list[Sample]:
        """The samples to store, in input order; updates the per-(signal, source) references."""
        specs = self._specs
        kept: list[Sample] = []
        keep = kept.append
        for sample in samples:
            spec = specs.get(sample.signal)
            if spec is None:
                keep(sample)
                continue
            limit, band, on_change, last_by_source = spec
            last = last_by_source.get(sample.source)
            ts = sample.timestamp
            value = sample.value
            if last is None:
                last_by_source[sample.source] = [ts, value]
                keep(sample)
                continue
            last_value = last[1]
            # One chained comparison covers: rate or heartbeat due, clock went backwards, NaN time.
            if not (0.0 <= ts - last[0] < limit):
                pass
            elif band > 0.0:
                delta = value - last_value
                # NaN deltas fail both comparisons; NaN transitions are caught below.
                if not (delta >= band or -delta >= band) and (value != value) == (last_value != last_value):
                    continue
            elif on_change:
                # NaN != NaN, so compare "both NaN" explicitly: NaN after NaN is no change.
                if value == last_value or (value != value and last_value != last_value):
                    continue
            elif (value != value) == (last_value != last_value):
                continue
            last[0] = ts
            last[1] = value
            keep(sample)
        return kept
