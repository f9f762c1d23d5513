"""Pure-Python twin of ``native/_gate.pyx``: the sampling gate over columns of decoded values.

The rules are ``edge_agent.sampling``'s (rate, deadband, on-change, NaN transitions, heartbeat, clock
going backwards); this kernel applies them to a batch without one Python object per value.

Inputs, per value ``j``: ``ts`` ('d'), ``field`` ('H') and ``source`` ('H'), ``values`` ('d'). The
value's gate slot is ``table[field * n_sources + source]`` ('i'); -1 means "no spec: admit".
Per slot: ``slot_spec`` ('H') names its spec; per spec: ``limit`` ('d', the admit-when-``dt``-reaches
bound, rate period and heartbeat folded), ``band`` ('d', deadband), ``on_change`` ('B').
``state`` ('d', 3 per slot: seen flag, last admitted timestamp, last admitted value) is updated in
place, so the gate's memory stays one buffer shared by every caller.

Returns ``kept`` ('I'): the indices of the admitted values, in input order.
"""

from __future__ import annotations

from array import array


def admit(
    ts: array, field: array, source: array, values: array, table: array, n_sources: int,
    slot_spec: array, limit: array, band: array, on_change: array, state: array,
) -> array:
    kept = array("I")
    for j in range(len(ts)):
        slot = table[field[j] * n_sources + source[j]]
        if slot < 0:
            kept.append(j)
            continue
        t = ts[j]
        value = values[j]
        base = 3 * slot
        if state[base] == 0.0:
            state[base], state[base + 1], state[base + 2] = 1.0, t, value
            kept.append(j)
            continue
        spec = slot_spec[slot]
        last_value = state[base + 2]
        # One chained comparison covers: rate or heartbeat due, clock went backwards, NaN time.
        if not (0.0 <= t - state[base + 1] < limit[spec]):
            pass
        elif band[spec] > 0.0:
            delta = value - last_value
            # NaN deltas fail both comparisons; NaN transitions are caught by the second test.
            if not (delta >= band[spec] or -delta >= band[spec]) and (value != value) == (last_value != last_value):
                continue
        elif on_change[spec]:
            # NaN != NaN, so compare "both NaN" explicitly: NaN after NaN is no change.
            if value == last_value or (value != value and last_value != last_value):
                continue
        elif (value != value) == (last_value != last_value):
            continue
        state[base + 1] = t
        state[base + 2] = value
        kept.append(j)
    return kept
