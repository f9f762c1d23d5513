"""Pure-Python twin of ``native/_runs.pyx``: debounced runs of a condition over a sample timeline.

Idle ("engine running while still"), threshold faults ("coolant above the limit") and trips ("engine
on") are all the same question: when did a condition start holding, and when did it stop, ignoring
runs that are too short and blips that are too brief. Inputs are flat arrays:

* ``ts`` ('d'): sample times from the bus/receiver clock (seconds). The clock may jump: a step back
  counts as zero time, a step forward of more than ``max_gap`` ends any run at the last sample
  before the gap (the bus fell silent: ignition off, or a clock jump) and counts as ``max_gap``.
  Durations are measured on the resulting monotonic clock, so they are never negative.
* ``cond`` ('B'): the condition at each sample (non-zero is true).
* ``rate`` ('d'): a quantity integrated over each run by the left rectangle rule (the value at a
  sample holds until the next one), e.g. fuel rate in L/h gives litre-hours per 3600. NaN counts as 0.
* ``state`` ('d', ``STATE_LEN``): what was carried in from the previous batch (``new_state()`` at first).

A run starts with the first true sample (``on``). It is reported (``EV_STARTED``) once it has held
for ``min_duration``; a false spell shorter than ``debounce`` does not interrupt it (a flapping
condition is one run), one lasting ``debounce`` ends it at the spell's first sample (``off``,
reported ``EV_ENDED``). A run that ends before ``min_duration`` is dropped without an event.

``find_runs`` returns ``(ev_index 'I', ev_kind 'B', ev_on 'd', ev_off 'd', ev_on_ts 'd', ev_off_ts 'd',
ev_acc 'd', mono 'd', state 'd')``: per event the sample index that decided it, its kind, the run's
start and end on the monotonic clock and as the source's timestamps of those samples (for
``EV_STARTED`` the end is the deciding sample), the integral of ``rate`` from ``on`` to ``off``;
``mono`` is every sample's monotonic time, and ``state`` the state to carry into the next batch.
Samples with a NaN time are skipped (their ``mono`` is NaN).
"""

from __future__ import annotations

from array import array

EV_STARTED = 1
EV_ENDED = 2

# Layout of the carried state.
(S_HAS_LAST, S_LAST_TS, S_MONO, S_RUN, S_ACTIVE, S_ON, S_IN_GAP, S_OFF, S_ACC, S_GAP_ACC, S_LAST_RATE, S_ON_TS,
 S_OFF_TS) = range(13)
STATE_LEN = 13


def new_state() -> array:
    return array("d", [0.0] * STATE_LEN)


def find_runs(
    ts: array, cond: array, rate: array, state: array, min_duration: float, debounce: float, max_gap: float
) -> tuple[array, array, array, array, array, array, array, array, array]:
    if len(cond) != len(ts) or len(rate) != len(ts) or len(state) != STATE_LEN:
        raise ValueError("ts, cond and rate must have the same length; state must be STATE_LEN long")
    ev_index, ev_kind, ev_on, ev_off, ev_acc = array("I"), array("B"), array("d"), array("d"), array("d")
    ev_on_ts, ev_off_ts = array("d"), array("d")
    mono_out = array("d", [0.0] * len(ts))
    st = array("d", state)
    has_last, last_ts, mono = st[S_HAS_LAST], st[S_LAST_TS], st[S_MONO]
    run, active, on, in_gap, off = st[S_RUN], st[S_ACTIVE], st[S_ON], st[S_IN_GAP], st[S_OFF]
    acc, gap_acc, last_rate, on_ts, off_ts = st[S_ACC], st[S_GAP_ACC], st[S_LAST_RATE], st[S_ON_TS], st[S_OFF_TS]
    for i in range(len(ts)):
        t = ts[i]
        if t != t:
            mono_out[i] = t
            continue
        if has_last != 0.0:
            dt = t - last_ts
            if dt < 0.0:
                dt = 0.0
            if dt > max_gap:
                # The bus was silent (or the clock leapt): whatever ran ended with the last sample.
                if run != 0.0:
                    if active != 0.0:
                        ev_index.append(i)
                        ev_kind.append(EV_ENDED)
                        ev_on.append(on)
                        ev_off.append(off if in_gap != 0.0 else mono)
                        ev_on_ts.append(on_ts)
                        ev_off_ts.append(off_ts if in_gap != 0.0 else last_ts)
                        ev_acc.append(acc)
                    run = active = in_gap = 0.0
                    acc = gap_acc = 0.0
                dt = max_gap
            elif run != 0.0:
                if in_gap != 0.0:
                    gap_acc += last_rate * dt
                else:
                    acc += last_rate * dt
            mono += dt
        has_last = 1.0
        last_ts = t
        r = rate[i]
        last_rate = 0.0 if r != r else r
        mono_out[i] = mono
        if cond[i]:
            if run == 0.0:
                run, on, on_ts, acc = 1.0, mono, t, 0.0
            elif in_gap != 0.0:
                acc += gap_acc
            in_gap, gap_acc = 0.0, 0.0
            if active == 0.0 and mono - on >= min_duration:
                active = 1.0
                ev_index.append(i)
                ev_kind.append(EV_STARTED)
                ev_on.append(on)
                ev_off.append(mono)
                ev_on_ts.append(on_ts)
                ev_off_ts.append(t)
                ev_acc.append(acc)
        elif run != 0.0:
            if in_gap == 0.0:
                in_gap, off, off_ts, gap_acc = 1.0, mono, t, 0.0
            if mono - off >= debounce:
                if active != 0.0:
                    ev_index.append(i)
                    ev_kind.append(EV_ENDED)
                    ev_on.append(on)
                    ev_off.append(off)
                    ev_on_ts.append(on_ts)
                    ev_off_ts.append(off_ts)
                    ev_acc.append(acc)
                run = active = in_gap = 0.0
                acc = gap_acc = 0.0
    out = array("d", [has_last, last_ts, mono, run, active, on, in_gap, off, acc, gap_acc, last_rate, on_ts, off_ts])
    return ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, mono_out, out
