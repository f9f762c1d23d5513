# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/candump_py.py`` (see there for the line form and the array contract)."""

from array import array

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memset

cdef enum:
    MAX_DECIMALS = 22
    MAX_TABLE = 4096

cdef uint32_t EXTENDED_FLAG = 0x80000000u
cdef uint32_t MAX_EXTENDED_ID = 0x1FFFFFFFu
cdef uint32_t MAX_STANDARD_ID = 0x7FFu
cdef uint64_t MAX_MANTISSA = (<uint64_t>1) << 53

cdef double[23] POW10
cdef int _p
POW10[0] = 1.0
for _p in range(1, 23):
    POW10[_p] = POW10[_p - 1] * 10.0  # every power up to 1e22 is exact in a double


cdef inline int _hex(uint8_t c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


cdef Py_ssize_t _parse(
    const uint8_t* buf, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_frames,
    const uint8_t* names, const Py_ssize_t* name_start, const Py_ssize_t* name_len, Py_ssize_t n_names,
    double* ts, uint32_t* ids, uint8_t* dlc, uint8_t* data, uint32_t* chan,
    Py_ssize_t* stop_out, Py_ssize_t* lines_out,
) noexcept nogil:
    cdef Py_ssize_t n = 0, lines = 0, nl, stop, i, j, k, c0, c1, h0, h1, d0, d1, length, m, b
    cdef uint64_t mantissa
    cdef uint32_t can_id
    cdef int digits, decimals, hi, lo
    cdef bint found
    while pos < end and n < max_frames:
        nl = pos
        while nl < end and buf[nl] != 10:
            nl += 1
        if nl >= end:
            break
        stop = nl
        if nl > pos and buf[nl - 1] == 13:
            stop = nl - 1
        if nl == pos:
            pos = nl + 1
            lines += 1
            continue
        if buf[pos] != 40:  # '('
            break
        # Timestamp: digits '.' digits ')', as one exact integer over an exact power of ten.
        i = pos + 1
        mantissa = 0
        j = i
        while j < stop and 48 <= buf[j] <= 57 and j - i < 20:
            mantissa = mantissa * 10 + (buf[j] - 48)
            j += 1
        if j == i or j >= stop or buf[j] != 46:
            break
        k = j + 1
        while k < stop and 48 <= buf[k] <= 57 and k - j <= MAX_DECIMALS:
            mantissa = mantissa * 10 + (buf[k] - 48)
            k += 1
        decimals = <int>(k - j - 1)
        if decimals == 0 or k >= stop or buf[k] != 41:  # ')' (also catches more than 22 decimals)
            break
        if (j - i) + decimals > 19 or mantissa > MAX_MANTISSA:
            break
        if k + 2 >= stop or buf[k + 1] != 32:
            break
        # Channel: printable non-space ASCII, one of the known names.
        c0 = k + 2
        c1 = c0
        while c1 < stop and 33 <= buf[c1] <= 126:
            c1 += 1
        if c1 == c0 or c1 >= stop or buf[c1] != 32:
            break
        found = False
        for m in range(n_names):
            if name_len[m] == c1 - c0 and memcmp(names + name_start[m], buf + c0, c1 - c0) == 0:
                found = True
                break
        if not found:
            break
        # Identifier.
        h0 = c1 + 1
        h1 = h0
        can_id = 0
        while h1 < stop and h1 - h0 < 9 and _hex(buf[h1]) >= 0:
            can_id = (can_id << 4) | <uint32_t>_hex(buf[h1])
            h1 += 1
        digits = <int>(h1 - h0)
        if digits < 1 or digits > 8 or h1 >= stop or buf[h1] != 35:  # '#'
            break
        if digits > 3:
            if can_id > MAX_EXTENDED_ID:
                break
            can_id |= EXTENDED_FLAG
        elif can_id > MAX_STANDARD_ID:
            break
        # Data: up to eight hex byte pairs, then nothing or a " T" / " R" direction flag.
        d0 = h1 + 1
        d1 = d0
        while d1 < stop and d1 - d0 <= 16 and _hex(buf[d1]) >= 0:
            d1 += 1
        length = d1 - d0
        if length & 1 or length > 16:
            break
        if d1 != stop and not (d1 + 2 == stop and buf[d1] == 32 and (buf[d1 + 1] == 84 or buf[d1 + 1] == 82)):
            break
        memset(data + 8 * n, 0, 8)
        for b in range(length >> 1):
            hi = _hex(buf[d0 + 2 * b])
            lo = _hex(buf[d0 + 2 * b + 1])
            data[8 * n + b] = <uint8_t>((hi << 4) | lo)
        ts[n] = <double>mantissa / POW10[decimals]
        ids[n] = can_id
        dlc[n] = <uint8_t>(length >> 1)
        chan[n] = <uint32_t>m
        n += 1
        pos = nl + 1
        lines += 1
    stop_out[0] = pos
    lines_out[0] = lines
    return n


def parse_lines(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_frames,
                bytes channels):
    """See ``native/candump_py.py``."""
    cdef Py_ssize_t[MAX_TABLE] name_start
    cdef Py_ssize_t[MAX_TABLE] name_len
    cdef Py_ssize_t n_names = 0, p = 0, q, total = len(channels)
    cdef const uint8_t* names = <const uint8_t*>(<char*>channels)
    while total and n_names < MAX_TABLE:
        q = p
        while q < total and names[q] != 10:
            q += 1
        name_start[n_names] = p
        name_len[n_names] = q - p
        n_names += 1
        if q >= total:
            break
        p = q + 1
    if end > buf.shape[0]:
        end = buf.shape[0]
    if pos < 0:
        pos = 0
    # At most one frame per two bytes of input (shortest line "(0.0) c 1#\n" is longer still).
    cdef Py_ssize_t cap = max(0, min(max_frames, (end - pos) // 2 + 1))
    timestamps = array("d", bytes(8 * cap))
    ids = array("I", bytes(4 * cap))
    dlc = array("B", bytes(cap))
    data = bytearray(8 * cap)
    chan = array("I", bytes(4 * cap))
    cdef double[::1] v_ts = timestamps
    cdef uint32_t[::1] v_ids = ids
    cdef uint8_t[::1] v_dlc = dlc
    cdef uint8_t[::1] v_data = data
    cdef uint32_t[::1] v_chan = chan
    cdef Py_ssize_t n = 0, stop = pos, lines = 0
    if cap and end > pos:
        with nogil:
            n = _parse(&buf[0], pos, end, cap, names, name_start, name_len, n_names,
                       &v_ts[0], &v_ids[0], &v_dlc[0], &v_data[0], &v_chan[0], &stop, &lines)
    del v_ts, v_ids, v_dlc, v_data, v_chan
    del timestamps[n:], ids[n:], dlc[n:], chan[n:]
    return timestamps, ids, dlc, bytes(data[:8 * n]), chan, stop, lines
