# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/runs_py.py`` (see there for the array contract)."""

from array import array

from libc.stdint cimport uint8_t, uint32_t

cdef enum:
    EV_STARTED = 1
    EV_ENDED = 2
    STATE_LEN = 13


cdef inline void _emit(Py_ssize_t* n, uint32_t[::1] ev_index, uint8_t[::1] ev_kind, double[::1] ev_on,
                       double[::1] ev_off, double[::1] ev_on_ts, double[::1] ev_off_ts, double[::1] ev_acc,
                       Py_ssize_t i, uint8_t kind, double on, double off, double on_ts, double off_ts,
                       double acc) noexcept nogil:
    cdef Py_ssize_t k = n[0]
    ev_index[k] = <uint32_t>i
    ev_kind[k] = kind
    ev_on[k] = on
    ev_off[k] = off
    ev_on_ts[k] = on_ts
    ev_off_ts[k] = off_ts
    ev_acc[k] = acc
    n[0] = k + 1


cdef Py_ssize_t _runs(
    const double[::1] ts, const uint8_t[::1] cond, const double[::1] rate, double[::1] st,
    double min_duration, double debounce, double max_gap,
    uint32_t[::1] ev_index, uint8_t[::1] ev_kind, double[::1] ev_on, double[::1] ev_off, double[::1] ev_on_ts,
    double[::1] ev_off_ts, double[::1] ev_acc, double[::1] mono_out,
) noexcept nogil:
    cdef Py_ssize_t i, n = 0
    cdef double has_last = st[0], last_ts = st[1], mono = st[2], run = st[3], active = st[4], on = st[5]
    cdef double in_gap = st[6], off = st[7], acc = st[8], gap_acc = st[9], last_rate = st[10]
    cdef double on_ts = st[11], off_ts = st[12]
    cdef double t, dt, r
    for i in range(ts.shape[0]):
        t = ts[i]
        if t != t:
            mono_out[i] = t
            continue
        if has_last != 0.0:
            dt = t - last_ts
            if dt < 0.0:
                dt = 0.0
            if dt > max_gap:
                if run != 0.0:
                    if active != 0.0:
                        _emit(&n, ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, i, EV_ENDED,
                              on, off if in_gap != 0.0 else mono, on_ts, off_ts if in_gap != 0.0 else last_ts,
                              acc)
                    run = 0.0
                    active = 0.0
                    in_gap = 0.0
                    acc = 0.0
                    gap_acc = 0.0
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
                run = 1.0
                on = mono
                on_ts = t
                acc = 0.0
            elif in_gap != 0.0:
                acc += gap_acc
            in_gap = 0.0
            gap_acc = 0.0
            if active == 0.0 and mono - on >= min_duration:
                active = 1.0
                _emit(&n, ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, i, EV_STARTED, on, mono,
                      on_ts, t, acc)
        elif run != 0.0:
            if in_gap == 0.0:
                in_gap = 1.0
                off = mono
                off_ts = t
                gap_acc = 0.0
            if mono - off >= debounce:
                if active != 0.0:
                    _emit(&n, ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, i, EV_ENDED, on, off,
                          on_ts, off_ts, acc)
                run = 0.0
                active = 0.0
                in_gap = 0.0
                acc = 0.0
                gap_acc = 0.0
    st[0] = has_last
    st[1] = last_ts
    st[2] = mono
    st[3] = run
    st[4] = active
    st[5] = on
    st[6] = in_gap
    st[7] = off
    st[8] = acc
    st[9] = gap_acc
    st[10] = last_rate
    st[11] = on_ts
    st[12] = off_ts
    return n


cdef Py_ssize_t _run(ts, cond, rate, st, double min_duration, double debounce, double max_gap,
                     ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, mono_out):
    # Memoryviews live only in this frame, so the caller can shrink the output arrays afterwards.
    cdef const double[::1] v_ts = ts
    cdef const uint8_t[::1] v_cond = cond
    cdef const double[::1] v_rate = rate
    cdef double[::1] v_st = st
    cdef uint32_t[::1] v_index = ev_index
    cdef uint8_t[::1] v_kind = ev_kind
    cdef double[::1] v_on = ev_on
    cdef double[::1] v_off = ev_off
    cdef double[::1] v_on_ts = ev_on_ts
    cdef double[::1] v_off_ts = ev_off_ts
    cdef double[::1] v_acc = ev_acc
    cdef double[::1] v_mono = mono_out
    cdef Py_ssize_t n
    with nogil:
        n = _runs(v_ts, v_cond, v_rate, v_st, min_duration, debounce, max_gap, v_index, v_kind, v_on, v_off,
                  v_on_ts, v_off_ts, v_acc, v_mono)
    return n


def find_runs(ts, cond, rate, state, double min_duration, double debounce, double max_gap):
    """See ``native/runs_py.py``."""
    cdef Py_ssize_t n_samples = len(ts)
    if len(cond) != n_samples or len(rate) != n_samples or len(state) != STATE_LEN:
        raise ValueError("ts, cond and rate must have the same length; state must be STATE_LEN long")
    # Each sample decides at most two events (a gap ending one run, then starting another).
    cdef Py_ssize_t cap = 2 * n_samples
    ev_index = array("I", bytes(4 * cap))
    ev_kind = array("B", bytes(cap))
    ev_on = array("d", bytes(8 * cap))
    ev_off = array("d", bytes(8 * cap))
    ev_on_ts = array("d", bytes(8 * cap))
    ev_off_ts = array("d", bytes(8 * cap))
    ev_acc = array("d", bytes(8 * cap))
    mono_out = array("d", bytes(8 * n_samples))
    st = array("d", state)
    cdef Py_ssize_t n = 0
    if n_samples:
        n = _run(ts, cond, rate, st, min_duration, debounce, max_gap, ev_index, ev_kind, ev_on, ev_off, ev_on_ts,
                 ev_off_ts, ev_acc, mono_out)
    del ev_index[n:], ev_kind[n:], ev_on[n:], ev_off[n:], ev_on_ts[n:], ev_off_ts[n:], ev_acc[n:]
    return ev_index, ev_kind, ev_on, ev_off, ev_on_ts, ev_off_ts, ev_acc, mono_out, st
