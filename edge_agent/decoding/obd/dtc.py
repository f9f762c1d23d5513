"""OBD-II diagnostic trouble codes: two bytes each, as Services 03, 07 and 0A return them.

SAE J2012 / J1979 (public summary https://en.wikipedia.org/wiki/OBD-II_PIDs#Service_03): the top two
bits of the first byte pick the system (00 P powertrain, 01 C chassis, 10 B body, 11 U network),
the next two bits are the first digit (0-3), and the remaining 12 bits are three hex digits.
``0x01 0x03`` is ``P0103``; ``0x00 0x00`` is padding, not a code. On CAN (ISO 15765-4) the positive
response carries a DTC count byte after the service id: ``43 02 03 01 04 20``.
"""

from __future__ import annotations

from edge_agent.errors import DecodeError
from edge_agent.model import ObdDtc

_SYSTEMS = "PCBU"
#: Response service id -> ObdDtc.status.
DTC_SERVICES = {0x43: "stored", 0x47: "pending", 0x4A: "permanent"}


def dtc_code(hi: int, lo: int) -> str:
    """The five-character code for two DTC bytes, e.g. (0x01, 0x03) -> ``"P0103"``."""
    return f"{_SYSTEMS[hi >> 6]}{(hi >> 4) & 0x3}{hi & 0xF:X}{lo >> 4:X}{lo & 0xF:X}"


def dtc_bytes(code: str) -> bytes:
    """The two bytes for a code such as ``"U0100"`` (the inverse of ``dtc_code``)."""
    if len(code) != 5 or code[0] not in _SYSTEMS or code[1] not in "0123":
        raise ValueError(f"not an OBD-II DTC: {code!r}")
    value = (_SYSTEMS.index(code[0]) << 14) | (int(code[1]) << 12) | int(code[2:], 16)
    return value.to_bytes(2, "big")


def parse_dtcs(payload: bytes, status: str, source: str) -> tuple[ObdDtc, ...]:
    """DTCs of one positive 0x43/0x47/0x4A response payload (service id included).

    The count byte tells how many pairs follow; pairs beyond the payload or a payload shorter than
    the count promises are ``obd_malformed``. Zero pairs (padding) are skipped.
    """
    if len(payload) < 2:
        raise DecodeError("obd_malformed", f"DTC response of {len(payload)} bytes")
    count = payload[1]
    body = payload[2:]
    if len(body) < 2 * count:
        raise DecodeError("obd_malformed", f"DTC count {count} but {len(body)} data bytes")
    codes: list[ObdDtc] = []
    for i in range(count):
        hi, lo = body[2 * i], body[2 * i + 1]
        if hi == 0 and lo == 0:
            continue
        codes.append(ObdDtc(dtc_code(hi, lo), status, source))
    return tuple(codes)
