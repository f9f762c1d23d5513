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


#: Status of ``sample_refs``: a "same as before" code for a signal that has no earlier sample.
MISSING = 3


def sample_refs(signals: array, codes: array, n_strings: int) -> tuple[int, array]:
    """Resolve a sample unit/source column (``kinds.SampleCodec``): code 0 repeats the previous string
    index of the same signal, code ``k`` names index ``k - 1``. Every signal and code is below
    ``n_strings`` (+1) already (the caller checked)."""
    last = [-1] * n_strings
    out = array("q", bytes(8 * len(codes)))
    for i in range(len(codes)):
        s, code = signals[i], codes[i]
        if code:
            ref = last[s] = code - 1
        else:
            ref = last[s]
            if ref < 0:
                return MISSING, array("q")
        out[i] = ref
    return OK, out


def sample_values(signals: array, classes: array, mantissas: array, factors: array, divide: bytes,
                  n_strings: int, v_int: int, v_raw: int) -> tuple[int, array, array]:
    """Sample values from their classes and per-signal mantissa deltas (``kinds.SampleCodec``):
    ``(status, floats, ints)``. Class ``c < v_int`` gives ``m / factors[c]`` if ``divide[c]`` else
    ``m * factors[c]`` (exactly ``values.restore``); ``v_int`` leaves the float 0 and the int ``m``;
    ``v_raw`` takes no mantissa (its float is read by the caller). ``WIDE`` if a running mantissa
    leaves int64."""
    prev = [0] * n_strings
    n = len(classes)
    floats = array("d", bytes(8 * n))
    ints = array("q", bytes(8 * n))
    j = 0
    for i in range(n):
        c = classes[i]
        if c == v_raw:
            continue
        s = signals[i]
        m = prev[s] + mantissas[j]
        j += 1
        if not _INT64_MIN <= m <= _INT64_MAX:
            return WIDE, array("d"), array("q")
        prev[s] = m
        ints[i] = m
        if c != v_int:
            floats[i] = m / factors[c] if divide[c] else m * factors[c]
    return OK, floats, ints
