# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/j1939_decode_py.py`` (see there for the array contract)."""

from array import array

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    STAT_MATCHED = 0
    STAT_IGNORED = 1
    STAT_NA = 2
    STAT_ERROR = 3
    STAT_SHORT = 4
    STAT_STANDARD = 5


cdef inline Py_ssize_t _find(const uint32_t[::1] keys, uint32_t key) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = keys.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.shape[0] and keys[lo] == key:
        return lo
    return -1


cdef Py_ssize_t _decode(
    const uint32_t[::1] ids, const uint8_t[::1] data, const uint8_t[::1] dlc,
    const uint32_t[::1] pgns, const uint32_t[::1] first, const uint16_t[::1] start,
    const uint8_t[::1] length, const uint8_t[::1] is_signed, const double[::1] scale,
    const double[::1] offset, const uint64_t[::1] missing_from, const uint64_t[::1] error_value,
    const uint32_t[::1] special,
    uint32_t[::1] value_frame, uint16_t[::1] value_field, double[::1] values,
    uint32_t[::1] special_frames, Py_ssize_t* n_special, uint64_t[::1] stats,
) noexcept nogil:
    cdef Py_ssize_t i, f, m, n = 0, ns = 0
    cdef uint32_t can_id, pf, pgn
    cdef uint64_t word, raw, limit
    cdef int64_t sraw
    cdef uint8_t bits
    for i in range(ids.shape[0]):
        can_id = ids[i]
        if not (can_id & 0x80000000u):
            stats[STAT_STANDARD] += 1
            continue
        pf = (can_id >> 16) & 0xFF
        if pf < 240:
            pgn = (can_id >> 8) & 0x3FF00
        else:
            pgn = (can_id >> 8) & 0x3FFFF
        m = _find(pgns, pgn)
        if m < 0:
            if _find(special, pgn) >= 0:
                special_frames[ns] = <uint32_t>i
                ns += 1
            else:
                stats[STAT_IGNORED] += 1
            continue
        stats[STAT_MATCHED] += 1
        memcpy(&word, &data[8 * i], 8)  # little-endian hosts only (x86-64, AArch64 Linux)
        for f in range(first[m], first[m + 1]):
            bits = length[f]
            if (start[f] + bits + 7) // 8 > dlc[i]:
                stats[STAT_SHORT] += 1
                continue
            if bits >= 64:
                raw = word >> start[f]
            else:
                raw = (word >> start[f]) & ((<uint64_t>1 << bits) - 1)
            limit = missing_from[f]
            if limit and raw >= limit:
                if raw == error_value[f] or (bits >= 8 and (raw >> (bits - 8)) == 0xFE):
                    stats[STAT_ERROR] += 1
                else:
                    stats[STAT_NA] += 1
                continue
            value_frame[n] = <uint32_t>i
            value_field[n] = <uint16_t>f
            if is_signed[f] and (raw >> (bits - 1)) & 1:
                sraw = <int64_t>raw - (<int64_t>1 << bits)
                values[n] = sraw * scale[f] + offset[f]
            else:
                values[n] = raw * scale[f] + offset[f]
            n += 1
    n_special[0] = ns
    return n


cdef tuple _run(ids, data, dlc, pgns, first, start, length, is_signed, scale, offset, missing_from,
                error_value, special, value_frame, value_field, values, special_frames, stats):
    # Memoryviews live only in this frame, so the caller can shrink the output arrays afterwards.
    cdef const uint32_t[::1] v_ids = ids
    cdef const uint8_t[::1] v_data = data
    cdef const uint8_t[::1] v_dlc = dlc
    cdef const uint32_t[::1] v_pgns = pgns
    cdef const uint32_t[::1] v_first = first
    cdef const uint16_t[::1] v_start = start
    cdef const uint8_t[::1] v_length = length
    cdef const uint8_t[::1] v_signed = is_signed
    cdef const double[::1] v_scale = scale
    cdef const double[::1] v_offset = offset
    cdef const uint64_t[::1] v_missing = missing_from
    cdef const uint64_t[::1] v_error = error_value
    cdef const uint32_t[::1] v_special = special
    cdef uint32_t[::1] v_vframe = value_frame
    cdef uint16_t[::1] v_vfield = value_field
    cdef double[::1] v_values = values
    cdef uint32_t[::1] v_sframes = special_frames
    cdef uint64_t[::1] v_stats = stats
    cdef Py_ssize_t n = 0, ns = 0
    with nogil:
        n = _decode(v_ids, v_data, v_dlc, v_pgns, v_first, v_start, v_length, v_signed, v_scale,
                    v_offset, v_missing, v_error, v_special, v_vframe, v_vfield, v_values,
                    v_sframes, &ns, v_stats)
    return n, ns


def decode_frames(ids, data, dlc, pgns, first, start, length, is_signed, scale, offset,
                  missing_from, error_value, special):
    """See ``native/j1939_decode_py.py``."""
    cdef Py_ssize_t n_frames = len(ids)
    cdef Py_ssize_t max_fields = 0, k
    for k in range(len(pgns)):
        max_fields = max(max_fields, first[k + 1] - first[k])
    cdef Py_ssize_t cap = n_frames * max_fields
    if len(data) < 8 * n_frames or len(dlc) < n_frames:
        raise ValueError("data must hold 8 bytes and dlc one length per frame")
    value_frame = array("I", bytes(4 * cap))
    value_field = array("H", bytes(2 * cap))
    values = array("d", bytes(8 * cap))
    special_frames = array("I", bytes(4 * n_frames))
    stats = array("Q", bytes(8 * 6))
    n, ns = 0, 0
    if n_frames:
        n, ns = _run(ids, data, dlc, pgns, first, start, length, is_signed, scale, offset, missing_from,
                     error_value, special, value_frame, value_field, values, special_frames, stats)
    del value_frame[n:], value_field[n:], values[n:], special_frames[ns:]
    return value_frame, value_field, values, special_frames, stats
