"""Pure-Python twin of ``native/_j1939_ids.pyx``: split 29-bit J1939 identifiers.

SAE J1939-21 5.1.2: bits 28-26 priority, 25 EDP (extended data page), 24 DP (data page), 23-16
PDU format (PF), 15-8 PDU specific (PS), 7-0 source address. PF < 240 is PDU1: PS is a destination
address and is not part of the PGN; PF >= 240 is PDU2: PS is the group extension and the
destination is global (255).
"""

from __future__ import annotations

from array import array


def split_ids(ids: array) -> tuple[array, array, array, array]:
    """Return (priority, pgn, source, destination) arrays for an array of identifiers ('I')."""
    n = len(ids)
    prio = array("B", bytes(n))
    pgn = array("I", bytes(4 * n))
    sa = array("B", bytes(n))
    da = array("B", bytes(n))
    for i in range(n):
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
    return prio, pgn, sa, da
