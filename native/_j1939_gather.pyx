# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/j1939_gather_py.py`` (see there for the array contract)."""

from array import array

from libc.stdint cimport uint16_t, uint32_t


cdef void _gather(const uint32_t[::1] vframe, const double[::1] frame_ts, const uint32_t[::1] frame_ids,
                  double[::1] ts, uint16_t[::1] source) noexcept nogil:
    cdef Py_ssize_t j
    cdef uint32_t i
    for j in range(vframe.shape[0]):
        i = vframe[j]
        ts[j] = frame_ts[i]
        source[j] = <uint16_t>(frame_ids[i] & 0xFF)


def gather(value_frame, frame_ts, frame_ids):
    """See ``native/j1939_gather_py.py``."""
    cdef Py_ssize_t n = len(value_frame), k, n_frames = len(frame_ts)
    if len(frame_ids) != n_frames:
        raise ValueError("frame_ts and frame_ids need one entry per frame")
    cdef const uint32_t[::1] v = value_frame
    for k in range(n):
        if v[k] >= n_frames:
            raise IndexError("value_frame names a frame beyond frame_ts")
    ts = array("d", bytes(8 * n))
    source = array("H", bytes(2 * n))
    cdef const double[::1] v_fts = frame_ts
    cdef const uint32_t[::1] v_fids = frame_ids
    cdef double[::1] v_ts = ts
    cdef uint16_t[::1] v_src = source
    if n:
        with nogil:
            _gather(v, v_fts, v_fids, v_ts, v_src)
    return ts, source
