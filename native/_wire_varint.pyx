# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/wire_varint_py.py`` (see there for the status contract)."""

from array import array

from libc.stdint cimport int64_t, uint64_t

cdef enum:
    OK_ = 0
    SHORT_ = 1
    WIDE_ = 2
    MAX_BYTES_ = 9

OK, SHORT, WIDE, MAX_BYTES = OK_, SHORT_, WIDE_, MAX_BYTES_


cdef inline int _read(const unsigned char[::1] data, Py_ssize_t* pos, uint64_t* out) noexcept nogil:
    cdef Py_ssize_t p = pos[0], start = pos[0], size = data.shape[0]
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef unsigned char b
    while True:
        if p >= size:
            return SHORT_
        if p - start >= MAX_BYTES_:
            return WIDE_
        b = data[p]
        p += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            break
        shift += 7
    pos[0] = p
    out[0] = v
    return OK_


cdef int _uvarints(const unsigned char[::1] data, Py_ssize_t* pos, int64_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t v
    cdef int status
    for i in range(out.shape[0]):
        status = _read(data, pos, &v)
        if status != OK_:
            return status
        out[i] = <int64_t>v
    return OK_


cdef int _svarints(const unsigned char[::1] data, Py_ssize_t* pos, int64_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t z
    cdef int status
    for i in range(out.shape[0]):
        status = _read(data, pos, &z)
        if status != OK_:
            return status
        out[i] = <int64_t>(z >> 1) if not (z & 1) else -(<int64_t>(z >> 1)) - 1
    return OK_


cdef int _deltas(const unsigned char[::1] data, Py_ssize_t* pos, int64_t[::1] out, bint second) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t z
    cdef int64_t d, prev = 0, prev_d = 0
    cdef int status
    for i in range(out.shape[0]):
        status = _read(data, pos, &z)
        if status != OK_:
            return status
        # z < 2**63 (at most 9 bytes), so both halves of the zigzag fit in int64
        d = <int64_t>(z >> 1) if not (z & 1) else -(<int64_t>(z >> 1)) - 1
        if second:
            if __builtin_add_overflow(d, prev_d, &d):
                return WIDE_
        if __builtin_add_overflow(prev, d, &prev):
            return WIDE_
        prev_d = d
        out[i] = prev
    return OK_


cdef extern from *:
    bint __builtin_add_overflow(int64_t a, int64_t b, int64_t* res) noexcept nogil


def uvarints(data, Py_ssize_t pos, Py_ssize_t n):
    """``n`` unsigned varints starting at ``data[pos]``."""
    out = array("q", bytes(8 * n))
    if n == 0:
        return OK_, out, pos
    cdef const unsigned char[::1] view = data
    cdef int64_t[::1] out_v = out
    cdef int status
    with nogil:
        status = _uvarints(view, &pos, out_v)
    if status != OK_:
        return status, array("q"), 0
    return OK_, out, pos


def svarints(data, Py_ssize_t pos, Py_ssize_t n):
    """``n`` zigzag (signed) varints starting at ``data[pos]``."""
    out = array("q", bytes(8 * n))
    if n == 0:
        return OK_, out, pos
    cdef const unsigned char[::1] view = data
    cdef int64_t[::1] out_v = out
    cdef int status
    with nogil:
        status = _svarints(view, &pos, out_v)
    if status != OK_:
        return status, array("q"), 0
    return OK_, out, pos


def deltas(data, Py_ssize_t pos, Py_ssize_t n, int order):
    """``n`` values of an order-1 or order-2 zigzag delta column starting at ``data[pos]``."""
    out = array("q", bytes(8 * n))
    if n == 0:
        return OK_, out, pos
    cdef const unsigned char[::1] view = data
    cdef int64_t[::1] out_v = out
    cdef int status
    cdef bint second = order == 2
    with nogil:
        status = _deltas(view, &pos, out_v, second)
    if status != OK_:
        return status, array("q"), 0
    return OK_, out, pos
