# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of ``native/j1939_ids_py.py``: split 29-bit J1939 identifiers (J1939-21 5.1.2)."""

from array import array

from libc.stdint cimport uint8_t, uint32_t


cdef void _split(const uint32_t[::1] ids, uint8_t[::1] prio, uint32_t[::1] pgn,
                 uint8_t[::1] sa, uint8_t[::1] da) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint32_t can_id, pf, ps, dp_edp
    for i in range(ids.shape[0]):
        can_id = ids[i] & 0x1FFFFFFF
        prio[i] = (can_id >> 26) & 0x7
        pf = (can_id >> 16) & 0xFF
        ps = (can_id >> 8) & 0xFF
        dp_edp = (can_id >> 24) & 0x3
        sa[i] = can_id & 0xFF
        if pf < 240:
            pgn[i] = (dp_edp << 16) | (pf << 8)
            da[i] = ps
        else:
            pgn[i] = (dp_edp << 16) | (pf << 8) | ps
            da[i] = 0xFF


def split_ids(ids):
    """Return (priority, pgn, source, destination) arrays for an array of identifiers ('I')."""
    n = len(ids)
    prio = array("B", bytes(n))
    pgn = array("I", bytes(4 * n))
    sa = array("B", bytes(n))
    da = array("B", bytes(n))
    cdef const uint32_t[::1] ids_v
    cdef uint8_t[::1] prio_v, sa_v, da_v
    cdef uint32_t[::1] pgn_v
    if n:
        ids_v = ids
        prio_v = prio
        pgn_v = pgn
        sa_v = sa
        da_v = da
        with nogil:
            _split(ids_v, prio_v, pgn_v, sa_v, da_v)
    return prio, pgn, sa, da
