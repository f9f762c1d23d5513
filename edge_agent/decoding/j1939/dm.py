"""J1939 diagnostic messages DM1/DM2 (SAE J1939-73) and the vehicle identification VI (J1939-71).

Both take a whole payload: one frame, or a message the transport reassembler put together. A
payload that cannot be read raises ``DecodeError`` with a documented reason; the decoder counts it.

DM1 / DM2 layout (J1939-73 5.7.1 / 5.7.2):

* byte 1, lamp status, two bits per lamp: bits 8-7 MIL, 6-5 red stop, 4-3 amber warning,
  2-1 protect (00 off, 01 on, 10 error, 11 not available);
* byte 2, lamp flash status (same layout); it says how a lamp blinks, not whether it is on, so
  it does not change the lamp state and is not kept;
* then one 4-byte DTC per fault: SPN low byte, SPN second byte, SPN high 3 bits in bits 8-6 of
  byte 5 with the FMI in its low 5 bits, then CM in bit 8 of byte 6 and the occurrence count in
  its low 7 bits (SPN conversion method version 4, CM = 0).

A single-frame DM1 is 8 bytes (two lamp bytes, one DTC, two 0xFF pad bytes); a multi-packet one
is 2 + 4 * n bytes, and trailing pad bytes are tolerated. With no fault active, the ECU sends
SPN 0 / FMI 0, which yields no DTC, as do 4-byte groups of 0xFF padding.

Old SPN conversion methods (CM = 1, J1939-73 5.7.1, versions 1-3) lay the SPN bits out in other
orders, and the message does not say which of the three was used. They are rare on current ECUs;
we decode every DTC with the version 4 layout and keep ``cm = 1`` on the ``J1939Dtc`` so that a
consumer who knows the ECU can re-map the SPN.
"""

from __future__ import annotations

from edge_agent.errors import DecodeError
from edge_agent.model import DiagnosticMessage, J1939Dtc, Lamps, LampState

DM_KINDS = ("DM1", "DM2")
#: Lamp bytes plus one DTC: the shortest DM1/DM2 payload that holds a DTC slot.
MIN_DM_LENGTH = 6
DTC_BYTES = 4
#: Bytes ECUs put after the last DTC: 0xFF per J1939-21 padding rules, 0x00 seen from some ECUs.
_PAD_BYTES = frozenset((0x00, 0xFF))
_ALL_PAD = b"\xff\xff\xff\xff"


def parse_lamps(byte: int) -> Lamps:
    """The lamp status byte of a DM1/DM2 (J1939-73 5.7.1)."""
    return Lamps(
        protect=LampState(byte & 0x3),
        amber_warning=LampState((byte >> 2) & 0x3),
        red_stop=LampState((byte >> 4) & 0x3),
        mil=LampState((byte >> 6) & 0x3),
    )


def parse_dtc(group: bytes) -> J1939Dtc | None:
    """One 4-byte DTC (conversion method version 4); ``None`` for "no DTC" and for padding."""
    if group == _ALL_PAD:
        return None
    spn = group[0] | group[1] << 8 | (group[2] & 0xE0) << 11
    fmi = group[2] & 0x1F
    if spn == 0 and fmi == 0:  # J1939-73 5.7.1: "no active DTCs" is sent as SPN 0, FMI 0
        return None
    return J1939Dtc(spn=spn, fmi=fmi, oc=group[3] & 0x7F, cm=group[3] >> 7)


def parse_dm(kind: str, ts: float, sa: int, data: bytes) -> DiagnosticMessage:
    """A DM1 (active) or DM2 (previously active) payload from source address ``sa``."""
    if kind not in DM_KINDS:
        raise ValueError(f"kind must be one of {DM_KINDS}, not {kind!r}")
    if len(data) < MIN_DM_LENGTH:
        raise DecodeError("j1939_dm_malformed", f"{kind} from 0x{sa:02X}: {len(data)} bytes, at least 6 needed")
    whole = len(data) - (len(data) - 2) % DTC_BYTES
    if any(b not in _PAD_BYTES for b in data[whole:]):
        raise DecodeError("j1939_dm_malformed", f"{kind} from 0x{sa:02X}: {len(data)} bytes is not 2 + 4 * n")
    dtcs = []
    for i in range(2, whole, DTC_BYTES):
        dtc = parse_dtc(data[i:i + DTC_BYTES])
        if dtc is not None:
            dtcs.append(dtc)
    return DiagnosticMessage(ts, kind, sa, parse_lamps(data[0]), tuple(dtcs))


def parse_vin(data: bytes) -> str:
    """The VIN of a J1939-71 VI message (PGN 65260): ASCII, ended by '*' or by 0x00/0xFF padding."""
    text, star, _ = data.partition(b"*")
    if not star:
        text = text.rstrip(b"\x00\xff")
    text = text.strip(b" ")
    if not text or any(not 0x20 <= b < 0x7F for b in text):
        raise DecodeError("j1939_vin_malformed", f"VIN field {data[:40]!r}")
    return text.decode("ascii")
