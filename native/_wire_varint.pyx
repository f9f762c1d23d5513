# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/wire_varint_py.py`` (see there for the status contract)."""

from array import array

from libc.stdint cimport int64_t, uint64_t

cdef enum:
    OK_ = 0
    SHORT_ = 1
    WIDE_ = 2
    MISSING_ = 3
    MAX_BYTES_ = 9

OK, SHORT, WIDE, MISSING, MAX_BYTES = OK_, SHORT_, WIDE_, MISSING_, MAX_BYTES_


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


cdef int _sample_refs(const int64_t[::1] signals, const int64_t[::1] codes, int64_t[::1] last,
                      int64_t[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t s, code, ref
    for i in range(codes.shape[0]):
        s = signals[i]
        code = codes[i]
        if code:
            ref = code - 1
            last[s] = ref
        else:
            ref = last[s]
            if ref < 0:
                return MISSING_
        out[i] = ref
    return OK_


def sample_refs(signals, codes, Py_ssize_t n_strings):
    """Resolve a sample unit/source column (see the twin)."""
    cdef Py_ssize_t n = len(codes)
    out = array("q", bytes(8 * n))
    if n == 0:
        return OK_, out
    last = array("q", [-1]) * n_strings
    cdef int status
    cdef const int64_t[::1] sig_v = signals
    cdef const int64_t[::1] code_v = codes
    cdef int64_t[::1] last_v = last
    cdef int64_t[::1] out_v = out
    with nogil:
        status = _sample_refs(sig_v, code_v, last_v, out_v)
    if status != OK_:
        return status, array("q")
    return OK_, out


cdef int _sample_values(const int64_t[::1] signals, const int64_t[::1] classes, const int64_t[::1] mantissas,
                        const double[::1] factors, const unsigned char[::1] divide, int64_t[::1] prev,
                        int64_t v_int, int64_t v_raw, double[::1] floats, int64_t[::1] ints) noexcept nogil:
    cdef Py_ssize_t i, j = 0
    cdef int64_t c, s, m
    for i in range(classes.shape[0]):
        c = classes[i]
        if c == v_raw:
            continue
        s = signals[i]
        if j >= mantissas.shape[0]:
            return SHORT_
        if __builtin_add_overflow(prev[s], mantissas[j], &m):
            return WIDE_
        j += 1
        prev[s] = m
        ints[i] = m
        if c != v_int:
            floats[i] = (<double>m) / factors[c] if divide[c] else (<double>m) * factors[c]
    return OK_


def sample_values(signals, classes, mantissas, factors, divide, Py_ssize_t n_strings, int64_t v_int,
                  int64_t v_raw):
    """Sample values from classes and per-signal mantissa deltas (see the twin)."""
    cdef Py_ssize_t n = len(classes)
    floats = array("d", bytes(8 * n))
    ints = array("q", bytes(8 * n))
    if n == 0:
        return OK_, floats, ints
    prev = array("q", bytes(8 * n_strings))
    cdef int status
    cdef const int64_t[::1] sig_v = signals
    cdef const int64_t[::1] cls_v = classes
    cdef const int64_t[::1] man_v
    cdef const double[::1] fac_v = factors
    cdef const unsigned char[::1] div_v = divide
    cdef int64_t[::1] prev_v = prev
    cdef double[::1] f_v = floats
    cdef int64_t[::1] i_v = ints
    if len(mantissas):
        man_v = mantissas
    else:
        man_v = array("q", [0])[:0]
    with nogil:
        status = _sample_values(sig_v, cls_v, man_v, fac_v, div_v, prev_v, v_int, v_raw, f_v, i_v)
    if status != OK_:
        return status, array("d"), array("q")
    return OK_, floats, ints
