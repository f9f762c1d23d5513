"""Pure-Python twin of ``native/_hold.pyx``: the held-value timeline detectors evaluate on.

``edge_agent.detection.clock.HeldTimeline`` keeps the latest value of each signal a detector wants
and evaluates its conditions once per timestamp group (when the next value carries another
timestamp), at most once per ``step`` seconds unless the clock went backwards. This kernel walks a
batch of decoded values and says *when* to evaluate and *what was held* then, so the detector's
Python code runs per evaluation (a few per second of bus time), not per value.

Inputs: per value ``ts`` ('d'), ``field`` ('H'), ``values`` ('d'); ``local`` ('i', per field: the
detector's index of that signal, -1 = not wanted); ``n_local``; ``step``; ``state`` ('d', 4:
has pending, pending, has last evaluation, last evaluation). Values or times that are NaN are skipped.

Returns ``(eval_ts 'd', held 'q', final 'q', state 'd')``: the evaluation times; for evaluation ``k``
and wanted signal ``s``, ``held[k * n_local + s]`` is the index of the value held at that moment
(-1: none in this batch yet, whatever was held before it still is); ``final`` the same after the
last value; ``state`` the new carried state.
"""

from __future__ import annotations

from array import array

HAS_PENDING, PENDING, HAS_LAST, LAST = range(4)
STATE_LEN = 4


def hold(
    ts: array, field: array, values: array, local: array, n_local: int, step: float, state: array,
) -> tuple[array, array, array, array]:
    state = array("d", state)
    has_pending, pending, has_last, last = state[HAS_PENDING] != 0.0, state[PENDING], state[HAS_LAST] != 0.0, \
        state[LAST]
    eval_ts = array("d")
    held = array("q")
    current = array("q", [-1] * n_local)
    for j in range(len(ts)):
        s = local[field[j]]
        t = ts[j]
        if s < 0 or values[j] != values[j] or t != t:
            continue
        if not has_pending or t != pending:
            if has_pending and (not has_last or pending - last >= step or pending < last):
                eval_ts.append(pending)
                held.extend(current)
                has_last, last = True, pending
            has_pending, pending = True, t
        current[s] = j
    state[HAS_PENDING], state[PENDING], state[HAS_LAST], state[LAST] = float(has_pending), pending, \
        float(has_last), last
    return eval_ts, held, current, state
