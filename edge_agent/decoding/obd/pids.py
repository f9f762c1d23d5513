"""SAE J1979 Service 01 PIDs: data lengths and supported-PID bitmaps.

A multi-PID response (``41 0C A B 0D A 05 A``) carries no lengths, so splitting it needs the length
of every PID in it. The table is SAE J1979 Annex B "data bytes returned", as tabulated publicly at
https://en.wikipedia.org/wiki/OBD-II_PIDs (Service 01). Scaling is not here: the profile's DBC owns it.
"""

from __future__ import annotations

from types import MappingProxyType

#: PIDs 0x00, 0x20, ... 0xE0 are bitmaps of which of the next 32 PIDs the responder supports.
BITMAP_PIDS: tuple[int, ...] = tuple(range(0x00, 0x100, 0x20))


def _lengths() -> dict[int, int]:
    table: dict[int, int] = {pid: 4 for pid in BITMAP_PIDS}
    ranges: list[tuple[int, int, int]] = [
        # (first, last, data bytes)
        (0x01, 0x01, 4), (0x02, 0x03, 2), (0x04, 0x0B, 1), (0x0C, 0x0C, 2), (0x0D, 0x0F, 1),
        (0x10, 0x10, 2), (0x11, 0x13, 1), (0x14, 0x1B, 2), (0x1C, 0x1E, 1), (0x1F, 0x1F, 2),
        (0x21, 0x23, 2), (0x24, 0x2B, 4), (0x2C, 0x30, 1), (0x31, 0x32, 2), (0x33, 0x33, 1),
        (0x34, 0x3B, 4), (0x3C, 0x3F, 2), (0x41, 0x41, 4), (0x42, 0x44, 2), (0x45, 0x4C, 1),
        (0x4D, 0x4E, 2), (0x4F, 0x50, 4), (0x51, 0x52, 1), (0x53, 0x54, 2), (0x55, 0x58, 2),
        (0x59, 0x59, 2), (0x5A, 0x5C, 1), (0x5D, 0x5E, 2), (0x5F, 0x5F, 1), (0x61, 0x62, 1),
        (0x63, 0x63, 2), (0x64, 0x64, 5), (0x65, 0x65, 2), (0x66, 0x66, 5),
        (0xA6, 0xA6, 4),  # odometer, added to J1979 in 2017
    ]
    for first, last, n in ranges:
        for pid in range(first, last + 1):
            table[pid] = n
    return table


#: PID -> number of data bytes (A, B, ...) in a Service 01 response.
PID_LENGTHS = MappingProxyType(_lengths())


def parse_bitmap(base: int, data: bytes) -> frozenset[int]:
    """PIDs marked supported in the 4-byte bitmap answering PID ``base`` (0x00, 0x20, ...).

    Bit A7 is PID base+1 and bit D0 is PID base+0x20 (J1979 Annex A); bit D0 set also means the
    next bitmap PID is worth asking for.
    """
    word = int.from_bytes(data[:4], "big")
    return frozenset(base + i + 1 for i in range(32) if word & (1 << (31 - i)))


def bitmap_bytes(base: int, pids: frozenset[int] | set[int]) -> bytes:
    """The 4-byte bitmap for PID ``base`` claiming ``pids`` (the inverse of ``parse_bitmap``)."""
    word = 0
    for pid in pids:
        if base < pid <= base + 32:
            word |= 1 << (31 - (pid - base - 1))
    return word.to_bytes(4, "big")
