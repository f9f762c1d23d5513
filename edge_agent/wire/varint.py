"""Byte-level building blocks of the wire body: LEB128 varints, zigzag, and delta-coded columns.

Unsigned integers are LEB128 (7 bits per byte, low group first, high bit = more follows), as in
Protocol Buffers' "Base 128 Varints"; signed ones are zigzag-mapped first (0, -1, 1, -2 ... ->
0, 1, 2, 3 ...) so small magnitudes of either sign stay short. Python ints are unbounded, so the
reader caps a varint at ``MAX_VARINT_BYTES`` to keep a hostile body from building a huge number.

Columns are delta coded: order 1 stores differences from the previous value (slowly changing
values, e.g. altitude), order 2 stores differences of differences (values moving at a steady rate,
e.g. 1 Hz timestamps and the coordinates of a vehicle at cruise), which are mostly near zero and
compress well.

Whole columns are read by the ``wire_varint`` kernel (``native/``: Cython, or its pure-Python twin
under ``FLEET_PURE_PYTHON=1``) into int64 arrays; a column it declines (a value beyond int64, or
data ending inside it) is re-read here value by value, which handles any int and raises the
precise error, so the result never depends on which implementation ran.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from edge_agent.wire.errors import WireError
from native import kernel

_columns = kernel("wire_varint")

#: Largest integer magnitude the format carries (bits); ``model`` refuses bigger payload ints.
MAX_INT_BITS = 1024
#: A zigzag varint of a MAX_INT_BITS-bit magnitude needs ceil(1025 / 7) = 147 bytes.
MAX_VARINT_BYTES = (MAX_INT_BITS + 1 + 6) // 7

_F64 = struct.Struct(">d")


def zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


class Writer:
    """Appends varints, floats and byte strings to one growing buffer."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def uvarint(self, n: int) -> None:
        if n < 0:
            raise ValueError("uvarint of a negative number")
        buf = self.buf
        while n > 0x7F:
            buf.append((n & 0x7F) | 0x80)
            n >>= 7
        buf.append(n)

    def svarint(self, n: int) -> None:
        self.uvarint(zigzag(n))

    def f64(self, x: float) -> None:
        self.buf += _F64.pack(x)

    def blob(self, data: bytes) -> None:
        self.uvarint(len(data))
        self.buf += data

    def raw(self, data: bytes) -> None:
        self.buf += data

    def delta_column(self, values: Iterable[int], order: int) -> None:
        """Write ``values`` as zigzag varints of their order-1 or order-2 differences (start at 0)."""
        buf = self.buf
        prev = prev_d = 0
        second = order == 2
        for v in values:
            d = v - prev
            z = d - prev_d if second else d
            prev, prev_d = v, d
            # zigzag + LEB128 inlined: this loop carries every column of every batch
            z = z * 2 if z >= 0 else -z * 2 - 1
            while z > 0x7F:
                buf.append((z & 0x7F) | 0x80)
                z >>= 7
            buf.append(z)

    def getvalue(self) -> bytes:
        return bytes(self.buf)


class Reader:
    """Reads what ``Writer`` wrote. Running out of data raises ``WireError(short_reason)`` (``malformed``
    inside a body whose length is known; ``truncated`` while reading an envelope header); an
    oversized varint is always ``malformed``."""

    __slots__ = ("data", "pos", "short_reason")

    def __init__(self, data: bytes, pos: int = 0, short_reason: str = "malformed") -> None:
        self.data = data
        self.pos = pos
        self.short_reason = short_reason

    def uvarint(self) -> int:
        data, pos = self.data, self.pos
        result = shift = 0
        end = min(len(data), pos + MAX_VARINT_BYTES)
        while pos < end:
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos
                return result
            shift += 7
        if end == len(data):
            raise WireError(self.short_reason, f"varint runs past the end at {self.pos}")
        raise WireError("malformed", f"varint longer than {MAX_VARINT_BYTES} bytes at {self.pos}")

    def svarint(self) -> int:
        return unzigzag(self.uvarint())

    def count(self, limit: int, what: str) -> int:
        """A length or count that must not exceed ``limit`` (checked before anything is allocated)."""
        n = self.uvarint()
        if n > limit:
            raise WireError("malformed", f"{what} {n} exceeds {limit}")
        return n

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise WireError(self.short_reason, f"{n} bytes wanted at {self.pos}, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def f64(self) -> float:
        value: float = _F64.unpack(self.take(8))[0]
        return value

    def blob(self, limit: int) -> bytes:
        return self.take(self.count(limit, "byte string length"))

    def uvarint_column(self, n: int) -> Sequence[int]:
        """``n`` unsigned varints."""
        status, out, end = _columns.uvarints(self.data, self.pos, n)
        if status:
            return [self.uvarint() for _ in range(n)]
        self.pos = end
        return out

    def svarint_column(self, n: int) -> Sequence[int]:
        """``n`` zigzag varints."""
        status, out, end = _columns.svarints(self.data, self.pos, n)
        if status:
            return [self.svarint() for _ in range(n)]
        self.pos = end
        return out

    def delta_column(self, n: int, order: int) -> Sequence[int]:
        """``n`` values of an order-1 or order-2 delta column (see ``Writer.delta_column``)."""
        status, out, end = _columns.deltas(self.data, self.pos, n, order)
        if status:
            return self._delta_column(n, order)
        self.pos = end
        return out

    def _delta_column(self, n: int, order: int) -> list[int]:
        data, pos = self.data, self.pos
        size = len(data)
        out: list[int] = []
        append = out.append
        prev = prev_d = 0
        second = order == 2
        for _ in range(n):
            # LEB128 + zigzag inlined (see Writer.delta_column); limits as in uvarint()
            z = shift = 0
            start = pos
            while True:
                if pos >= size:
                    self.pos = start
                    raise WireError(self.short_reason, f"varint runs past the end at {start}")
                b = data[pos]
                pos += 1
                z |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
                if pos - start >= MAX_VARINT_BYTES:
                    raise WireError("malformed", f"varint longer than {MAX_VARINT_BYTES} bytes at {start}")
            z = z >> 1 if not z & 1 else -((z + 1) >> 1)
            d = prev_d + z if second else z
            prev += d
            prev_d = d
            append(prev)
        self.pos = pos
        return out

    def remaining(self) -> int:
        return len(self.data) - self.pos


def uvarint_bytes(n: int) -> bytes:
    w = Writer()
    w.uvarint(n)
    return w.getvalue()
