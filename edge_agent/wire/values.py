"""The generic canonical form of a JSON-like value (any record kind without a columnar codec).

A small CBOR-like tagged encoding, canonical by construction: dict keys are written in sorted
order (and a decoder accepts nothing else), every NaN is written as the one quiet NaN
0x7FF8000000000000, ints are zigzag varints of any size up to ``MAX_INT_BITS``, and strings are
indices into the batch's string table (each distinct string is stored once, in order of first
use, so repeated keys such as "source" cost one byte after the first).

Tags: 0 None, 1 False, 2 True, 3 int, 4 float (IEEE 754 binary64, big-endian), 5 str, 6 list,
7 dict, 8 scaled float (a float that is exactly ``mantissa / 2**k`` or ``mantissa / 10**e``, see
``classify``: uvarint class + zigzag mantissa, so 1234.0 or 0.494 take 3 bytes instead of 9).
Unlike JSON, NaN and the infinities survive, and int and float stay distinct (1 vs 1.0).
"""

from __future__ import annotations

import math
import struct
from array import array
from typing import Any

from edge_agent.wire.errors import InvalidRecord, WireError
from edge_agent.wire.varint import MAX_INT_BITS, Reader, Writer

#: Nesting deeper than this is refused on both sides (a bounded decoder recursion).
MAX_DEPTH = 32
#: Longest single string (UTF-8 bytes); larger blobs do not belong in telemetry records.
MAX_STRING_BYTES = 1 << 20

T_NONE, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_LIST, T_DICT, T_SCALED = range(9)
_CANONICAL_NAN = bytes.fromhex("7ff8000000000000")
_F64 = struct.Struct(">d")


#: Value classes of a float (sample values, floats in generic payloads), tried in this order:
#:
#: - binary, ``mantissa / 2**k`` (k = 0..MAX_BINARY): J1939 scalings such as 0.125 rpm/bit,
#:   1/256 km/h/bit or 0.03125 degC/bit with offset -273 give these, the mantissa being the raw value;
#: - decimal, ``mantissa / 10**e`` (e = 1..MAX_DECIMALS): values typed or rounded in decimal;
#: - product, ``mantissa * MULTIPLIERS[i]``: the edge decodes ``raw * scale + offset`` in binary64, and
#:   for a non-binary scale (0.4 %/bit, 0.05 V/bit) that product is usually not a short decimal
#:   (0.4 * 3 = 1.2000000000000002) but is exactly ``raw * scale`` when the offset is 0. The list
#:   holds the non-binary scales of SAE J1939-71 SPNs and our DBCs (100/255 is the OBD-II percent).
#:
#: Ints are class V_INT; anything else (NaN, infinities, -0.0, huge, long binary fractions) is V_RAW.
#: The numbering is part of format v1: append new multipliers only in a new format version.
MAX_BINARY = 24
MAX_DECIMALS = 9
MULTIPLIERS = (0.1, 0.01, 0.001, 0.0001, 0.4, 0.05, 0.005, 0.0025, 0.02, 0.2, 0.025, 0.5 / 3, 0.392156862745098,
               100 / 255, 0.00195312, 0.3, 0.6, 1.6)
_DECIMAL0 = MAX_BINARY + 1
_PRODUCT0 = _DECIMAL0 + MAX_DECIMALS
V_INT = _PRODUCT0 + len(MULTIPLIERS)
V_RAW = V_INT + 1
#: Floats at or above this magnitude are sent raw (mantissas would pass 2**53 and lose the point).
_SCALED_LIMIT = 2.0**40
_DIVISORS = tuple([2.0**k for k in range(MAX_BINARY + 1)] + [10.0**e for e in range(1, MAX_DECIMALS + 1)])


#: ``restore`` as a table for the sample-value kernel, indexed by class (every class up to V_RAW):
#: ``m / RESTORE_FACTORS[c]`` where ``RESTORE_DIVIDE[c]``, else ``m * RESTORE_FACTORS[c]``.
RESTORE_FACTORS = array("d", [*_DIVISORS, *MULTIPLIERS, 1.0, 1.0])
RESTORE_DIVIDE = bytes([1] * len(_DIVISORS) + [0] * (len(MULTIPLIERS) + 2))


def restore(c: int, m: int) -> float:
    """The float of class ``c`` (< V_INT) and mantissa ``m``; OverflowError if ``m`` is absurd."""
    return m / _DIVISORS[c] if c < _PRODUCT0 else m * MULTIPLIERS[c - _PRODUCT0]


def _exact(value: float, c: int) -> int | None:
    if c < _PRODUCT0:
        d = _DIVISORS[c]
        m = round(value * d)
        return m if m / d == value else None
    s = MULTIPLIERS[c - _PRODUCT0]
    m = round(value / s)
    return m if m * s == value else None


def classify(value: float | int, hint: int = -1) -> tuple[int, int]:
    """``(class, mantissa)`` of a number (``mantissa`` 0 for raw floats).

    ``hint`` is the class of the previous sample of the same signal: kept if it is still exact, so
    a signal's mantissas stay on one scale and their deltas small; otherwise the first exact class
    in class order. Both sides of the rule depend only on the batch, so the encoding is canonical.
    """
    if type(value) is int:
        return V_INT, value
    assert isinstance(value, float)
    if not math.isfinite(value) or abs(value) >= _SCALED_LIMIT or (value == 0 and math.copysign(1, value) < 0):
        return V_RAW, 0
    if 0 <= hint < V_INT:
        m = _exact(value, hint)
        if m is not None:
            return hint, m
    for c in range(V_INT):
        m = _exact(value, c)
        if m is not None:
            return c, m
    return V_RAW, 0


class StringTable:
    """Encoder side: assigns each distinct string an index in order of first use."""

    __slots__ = ("index", "strings")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.strings: list[str] = []

    def ref(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.strings)
            self.strings.append(s)
        return i

    def write(self, w: Writer) -> None:
        w.uvarint(len(self.strings))
        for s in self.strings:
            data = s.encode("utf-8", "surrogatepass")
            if len(data) > MAX_STRING_BYTES:
                raise InvalidRecord(f"a string of {len(data)} bytes exceeds MAX_STRING_BYTES={MAX_STRING_BYTES}")
            w.blob(data)


def read_string_table(r: Reader) -> list[str]:
    n = r.count(r.remaining(), "string count")  # every string costs at least its length byte
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(n):
        try:
            s = r.blob(MAX_STRING_BYTES).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise WireError("malformed", f"string table: {exc}") from None
        if s in seen:
            raise WireError("malformed", "string table repeats a string")
        seen.add(s)
        out.append(s)
    return out


def string_at(strings: list[str], i: int) -> str:
    if i >= len(strings):
        raise WireError("malformed", f"string index {i} outside a table of {len(strings)}")
    return strings[i]


def write_value(w: Writer, table: StringTable, value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise InvalidRecord(f"payload nesting deeper than MAX_DEPTH={MAX_DEPTH}")
    if value is None:
        w.uvarint(T_NONE)
    elif value is True or value is False:
        w.uvarint(T_TRUE if value else T_FALSE)
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise InvalidRecord(f"an int of {value.bit_length()} bits exceeds MAX_INT_BITS={MAX_INT_BITS}")
        w.uvarint(T_INT)
        w.svarint(int(value))
    elif isinstance(value, float):
        c, m = classify(value)
        if c == V_RAW:
            w.uvarint(T_FLOAT)
            w.raw(_CANONICAL_NAN if math.isnan(value) else _F64.pack(value))
        else:
            w.uvarint(T_SCALED)
            w.uvarint(c)
            w.svarint(m)
    elif isinstance(value, str):
        w.uvarint(T_STR)
        w.uvarint(table.ref(value))
    elif isinstance(value, list | tuple):
        w.uvarint(T_LIST)
        w.uvarint(len(value))
        for item in value:
            write_value(w, table, item, depth + 1)
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise InvalidRecord(f"dict key {key!r} is not a str")
        w.uvarint(T_DICT)
        w.uvarint(len(value))
        for key in sorted(value):
            w.uvarint(table.ref(key))
            write_value(w, table, value[key], depth + 1)
    else:
        raise InvalidRecord(f"a {type(value).__name__} is not JSON-like")


def read_value(r: Reader, strings: list[str], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("malformed", f"nesting deeper than MAX_DEPTH={MAX_DEPTH}")
    tag = r.uvarint()
    if tag == T_NONE:
        return None
    if tag == T_FALSE:
        return False
    if tag == T_TRUE:
        return True
    if tag == T_INT:
        n = r.svarint()
        if n.bit_length() > MAX_INT_BITS:
            raise WireError("malformed", f"an int of {n.bit_length()} bits")
        return n
    if tag == T_FLOAT:
        return r.f64()
    if tag == T_SCALED:
        c = r.uvarint()
        if c >= V_INT:
            raise WireError("malformed", f"float class {c}")
        return restore(c, r.svarint())
    if tag == T_STR:
        return string_at(strings, r.uvarint())
    if tag == T_LIST:
        n = r.count(r.remaining(), "list length")
        return [read_value(r, strings, depth + 1) for _ in range(n)]
    if tag == T_DICT:
        n = r.count(r.remaining(), "dict size")
        out: dict[str, Any] = {}
        last: str | None = None
        for _ in range(n):
            key = string_at(strings, r.uvarint())
            if last is not None and key <= last:
                raise WireError("malformed", "dict keys not in strictly sorted order")
            last = key
            out[key] = read_value(r, strings, depth + 1)
        return out
    raise WireError("malformed", f"unknown value tag {tag}")
