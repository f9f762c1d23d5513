"""Pure-Python twin of ``native/_wire_varint.pyx``: whole columns of LEB128 varints (wire format v1).

``edge_agent.wire.varint`` defines the encoding (LEB128, zigzag, order-1/order-2 delta columns). These
kernels decode a column of ``n`` values at once into an ``array('q')`` and return
``(status, values, end)``:

- ``OK``: ``values`` holds the column and ``end`` is the position after it;
- ``SHORT``: the data ends inside the column; ``WIDE``: a varint is longer than ``MAX_BYTES`` or a
  value leaves the int64 range. Then ``values`` is empty and ``end`` is ``pos``: the caller re-reads
  the column with ``varint.Reader``, which carries any size of int and raises the precise error.

Real batches never take the fallback (ids, times and quantised fields fit comfortably in int64).
"""

from __future__ import annotations

from array import array

OK, SHORT, WIDE = 0, 1, 2
#: 9 LEB128 bytes carry 63 bits, so every accepted varint is below 2**63.
MAX_BYTES = 9
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def uvarints(data: bytes, pos: int, n: int) -> tuple[int, array, int]:
    """``n`` unsigned varints starting at ``data[pos]``."""
    out = array("q")
    size = len(data)
    for _ in range(n):
        v = shift = 0
        start = pos
        while True:
            if pos >= size:
                return SHORT, array("q"), 0
            if pos - start >= MAX_BYTES:
                return WIDE, array("q"), 0
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        out.append(v)
    return OK, out, pos


def svarints(data: bytes, pos: int, n: int) -> tuple[int, array, int]:
    """``n`` zigzag (signed) varints starting at ``data[pos]``."""
    status, out, end = uvarints(data, pos, n)
    for i, z in enumerate(out):
        out[i] = z >> 1 if not z & 1 else -((z >> 1) + 1)
    return status, out, end


def deltas(data: bytes, pos: int, n: int, order: int) -> tuple[int, array, int]:
    """``n`` values of an order-1 or order-2 zigzag delta column starting at ``data[pos]``."""
    out = array("q")
    size = len(data)
    prev = prev_d = 0
    second = order == 2
    for _ in range(n):
        z = shift = 0
        start = pos
        while True:
            if pos >= size:
                return SHORT, array("q"), 0
            if pos - start >= MAX_BYTES:
                return WIDE, array("q"), 0
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        d = z >> 1 if not z & 1 else -((z >> 1) + 1)
        if second:
            d += prev_d
            if not _INT64_MIN <= d <= _INT64_MAX:
                return WIDE, array("q"), 0
        prev += d
        if not _INT64_MIN <= prev <= _INT64_MAX:
            return WIDE, array("q"), 0
        prev_d = d
        out.append(prev)
    return OK, out, pos
