# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/gate_py.py`` (see there for the array contract)."""

from array import array

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t


cdef Py_ssize_t _admit(
    const double[::1] ts, const uint16_t[::1] field, const uint16_t[::1] source, const double[::1] values,
    const int32_t[::1] table, Py_ssize_t n_sources, const uint16_t[::1] slot_spec, const double[::1] limit,
    const double[::1] band, const uint8_t[::1] on_change, double[::1] state, uint32_t[::1] kept,
) noexcept nogil:
    cdef Py_ssize_t j, base, n = 0
    cdef int32_t slot
    cdef uint16_t spec
    cdef double t, value, last_value, delta, dt
    cdef bint value_nan, last_nan
    for j in range(ts.shape[0]):
        slot = table[field[j] * n_sources + source[j]]
        if slot < 0:
            kept[n] = <uint32_t>j
            n += 1
            continue
        t = ts[j]
        value = values[j]
        base = 3 * slot
        if state[base] == 0.0:
            state[base] = 1.0
            state[base + 1] = t
            state[base + 2] = value
            kept[n] = <uint32_t>j
            n += 1
            continue
        spec = slot_spec[slot]
        last_value = state[base + 2]
        value_nan = value != value
        last_nan = last_value != last_value
        dt = t - state[base + 1]
        if not (0.0 <= dt and dt < limit[spec]):
            pass
        elif band[spec] > 0.0:
            delta = value - last_value
            if not (delta >= band[spec] or -delta >= band[spec]) and value_nan == last_nan:
                continue
        elif on_change[spec]:
            if value == last_value or (value_nan and last_nan):
                continue
        elif value_nan == last_nan:
            continue
        state[base + 1] = t
        state[base + 2] = value
        kept[n] = <uint32_t>j
        n += 1
    return n


def admit(ts, field, source, values, table, Py_ssize_t n_sources, slot_spec, limit, band, on_change, state):
    """See ``native/gate_py.py``."""
    cdef Py_ssize_t n_values = len(ts)
    if len(field) < n_values or len(source) < n_values or len(values) < n_values:
        raise ValueError("field, source and values need one entry per timestamp")
    kept = array("I", bytes(4 * n_values))
    cdef Py_ssize_t n = 0
    if n_values:
        n = _run(ts, field, source, values, table, n_sources, slot_spec, limit, band, on_change, state, kept)
    del kept[n:]
    return kept


cdef Py_ssize_t _run(ts, field, source, values, table, Py_ssize_t n_sources, slot_spec, limit, band, on_change,
                     state, kept):
    # Memoryviews live only in this frame, so the caller can shrink ``kept`` afterwards.
    cdef const double[::1] v_ts = ts
    cdef const uint16_t[::1] v_field = field
    cdef const uint16_t[::1] v_source = source
    cdef const double[::1] v_values = values
    cdef const int32_t[::1] v_table = table
    cdef const uint16_t[::1] v_slot_spec = slot_spec
    cdef const double[::1] v_limit = limit
    cdef const double[::1] v_band = band
    cdef const uint8_t[::1] v_on_change = on_change
    cdef double[::1] v_state = state
    cdef uint32_t[::1] v_kept = kept
    cdef Py_ssize_t n
    with nogil:
        n = _admit(v_ts, v_field, v_source, v_values, v_table, n_sources, v_slot_spec, v_limit, v_band,
                   v_on_change, v_state, v_kept)
    return n
