# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/hold_py.py`` (see there for the array contract)."""

from array import array

from libc.stdint cimport int32_t, int64_t, uint16_t
from libc.string cimport memcpy


cdef Py_ssize_t _hold(
    const double[::1] ts, const uint16_t[::1] field, const double[::1] values, const int32_t[::1] local,
    Py_ssize_t n_local, double step, double[::1] state, double[::1] eval_ts, int64_t[::1] held,
    int64_t[::1] current,
) noexcept nogil:
    cdef Py_ssize_t j, n = 0
    cdef int32_t s
    cdef double t
    cdef bint has_pending = state[0] != 0.0, has_last = state[2] != 0.0
    cdef double pending = state[1], last = state[3]
    for j in range(ts.shape[0]):
        s = local[field[j]]
        t = ts[j]
        if s < 0 or values[j] != values[j] or t != t:
            continue
        if not has_pending or t != pending:
            if has_pending and (not has_last or pending - last >= step or pending < last):
                eval_ts[n] = pending
                if n_local:
                    memcpy(&held[n * n_local], &current[0], n_local * sizeof(int64_t))
                n += 1
                has_last = True
                last = pending
            has_pending = True
            pending = t
        current[s] = j
    state[0] = 1.0 if has_pending else 0.0
    state[1] = pending
    state[2] = 1.0 if has_last else 0.0
    state[3] = last
    return n


def hold(ts, field, values, local, Py_ssize_t n_local, double step, state):
    """See ``native/hold_py.py``."""
    cdef Py_ssize_t n_values = len(ts)
    if len(field) < n_values or len(values) < n_values or len(state) != 4:
        raise ValueError("field and values need one entry per timestamp, state four")
    new_state = array("d", state)
    eval_ts = array("d", bytes(8 * n_values))
    held = array("q", bytes(8 * max(1, n_values * n_local)))
    current = array("q", [-1] * max(1, n_local))
    cdef Py_ssize_t n = 0
    if n_values:
        n = _run(ts, field, values, local, n_local, step, new_state, eval_ts, held, current)
    del eval_ts[n:], held[n * n_local:], current[n_local:]
    return eval_ts, held, current, new_state


cdef Py_ssize_t _run(ts, field, values, local, Py_ssize_t n_local, double step, state, eval_ts, held, current):
    cdef const double[::1] v_ts = ts
    cdef const uint16_t[::1] v_field = field
    cdef const double[::1] v_values = values
    cdef const int32_t[::1] v_local = local
    cdef double[::1] v_state = state
    cdef double[::1] v_eval = eval_ts
    cdef int64_t[::1] v_held = held
    cdef int64_t[::1] v_current = current
    cdef Py_ssize_t n
    with nogil:
        n = _hold(v_ts, v_field, v_values, v_local, n_local, step, v_state, v_eval, v_held, v_current)
    return n
