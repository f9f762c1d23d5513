"""J1939 frame builders for simulators and tests: DM1/DM2 payloads and transport-protocol transfers.

``encode_dm`` is the inverse of ``edge_agent.decoding.j1939.dm.parse_dm``; ``bam_frames`` and
``rts_cts_frames`` cut a payload into SAE J1939-21 TP.CM / TP.DT frames exactly as ECUs put them
on the bus (both sides of an RTS/CTS exchange), so the agent's passive reassembler can be tested
against every legal shape, including a receiver asking for packets again.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.decoding.j1939.tp import (
    BYTES_PER_PACKET,
    CM_BAM,
    CM_CTS,
    CM_EOMA,
    CM_RTS,
    GLOBAL_ADDRESS,
    MAX_MESSAGE_SIZE,
    MIN_MESSAGE_SIZE,
    PGN_TP_CM,
    PGN_TP_DT,
)
from edge_agent.model import J1939Dtc, Lamps, RawFrame

# SAE J1939-73 5.7.1 / 5.7.2.
PGN_DM1 = 65226
PGN_DM2 = 65227
#: J1939-21 5.10: a BAM sender leaves 50 to 200 ms between packets; we use the shortest.
BAM_PACKET_GAP_S = 0.05
#: J1939-21 5.10: TP.CM and TP.DT default to priority 7.
TP_PRIORITY = 7
#: RTS byte 5 value meaning "no limit on packets per CTS" (J1939-21 5.10).
NO_CTS_LIMIT = 0xFF
PAD = 0xFF
#: Flash status byte: every lamp "unavailable / do not flash" (J1939-73 5.7.1, byte 2).
FLASH_NOT_AVAILABLE = 0xFF


def can_id(priority: int, pgn: int, source: int, destination: int = GLOBAL_ADDRESS) -> int:
    """The 29-bit identifier of ``pgn`` (J1939-21 5.2): PDU1 carries the destination in PS."""
    pf = (pgn >> 8) & 0xFF
    ps = destination if pf < 240 else pgn & 0xFF
    return (priority & 0x7) << 26 | ((pgn >> 16) & 0x3) << 24 | pf << 16 | ps << 8 | (source & 0xFF)


def encode_dtc(dtc: J1939Dtc) -> bytes:
    """One 4-byte DTC, SPN conversion method version 4 (the layout ``parse_dtc`` reads)."""
    if not (0 <= dtc.spn < 1 << 19 and 0 <= dtc.fmi < 32 and 0 <= dtc.oc < 128 and dtc.cm in (0, 1)):
        raise ValueError(f"DTC field out of range: {dtc}")
    if dtc.spn == 0 and dtc.fmi == 0:
        raise ValueError("SPN 0 / FMI 0 is J1939-73's 'no active DTC' marker, not a DTC")
    return bytes((dtc.spn & 0xFF, (dtc.spn >> 8) & 0xFF, (dtc.spn >> 11) & 0xE0 | dtc.fmi, dtc.cm << 7 | dtc.oc))


def encode_dm(lamps: Lamps, dtcs: Sequence[J1939Dtc]) -> bytes:
    """A DM1/DM2 payload: lamp byte, flash byte, then each DTC (SPN 0 / FMI 0 when there is none)."""
    lamp = lamps.mil << 6 | lamps.red_stop << 4 | lamps.amber_warning << 2 | lamps.protect
    body = b"".join(encode_dtc(d) for d in dtcs) if dtcs else bytes(4)
    return bytes((lamp, FLASH_NOT_AVAILABLE)) + body


def _check_size(payload: bytes) -> int:
    if not MIN_MESSAGE_SIZE <= len(payload) <= MAX_MESSAGE_SIZE:
        raise ValueError(f"J1939 TP carries {MIN_MESSAGE_SIZE}-{MAX_MESSAGE_SIZE} bytes, not {len(payload)}")
    return -(-len(payload) // BYTES_PER_PACKET)


def _pgn_bytes(pgn: int) -> bytes:
    return bytes((pgn & 0xFF, (pgn >> 8) & 0xFF, (pgn >> 16) & 0xFF))


def data_packet(sequence: int, payload: bytes) -> bytes:
    """TP.DT data for packet ``sequence`` (1-based), the last one padded with 0xFF."""
    chunk = payload[(sequence - 1) * BYTES_PER_PACKET:sequence * BYTES_PER_PACKET]
    return bytes((sequence,)) + chunk + bytes((PAD,)) * (BYTES_PER_PACKET - len(chunk))


def bam_frames(ts: float, source: int, pgn: int, payload: bytes, priority: int = 6) -> list[RawFrame]:
    """TP.CM_BAM at ``ts``, then every TP.DT packet 50 ms after the one before."""
    packets = _check_size(payload)
    size = len(payload)
    cm = bytes((CM_BAM, size & 0xFF, size >> 8, packets, PAD)) + _pgn_bytes(pgn)
    frames = [RawFrame(ts, can_id(priority, PGN_TP_CM, source), cm, True, "can0")]
    dt_id = can_id(priority, PGN_TP_DT, source)
    for seq in range(1, packets + 1):
        frames.append(RawFrame(round(ts + seq * BAM_PACKET_GAP_S, 6), dt_id, data_packet(seq, payload), True, "can0"))
    return frames


def rts_cts_frames(
    ts: float, source: int, destination: int, pgn: int, payload: bytes, *,
    packets_per_cts: int = NO_CTS_LIMIT, retransmit: int | None = None,
    gap_s: float = 0.01, priority: int = TP_PRIORITY,
) -> list[RawFrame]:
    """A whole connection-mode transfer as both nodes send it: RTS, CTS, data blocks, EndOfMsgAck.

    The receiver clears at most ``packets_per_cts`` packets per CTS. With ``retransmit`` = N, once
    the block holding packet N has arrived the receiver asks for packets again from N (as it would
    after a bad packet), and the originator resends from there. Frames are ``gap_s`` apart.
    """
    packets = _check_size(payload)
    if not 1 <= packets_per_cts <= 255:
        raise ValueError(f"packets_per_cts must be 1-255, not {packets_per_cts}")
    if retransmit is not None and not 1 <= retransmit <= packets:
        raise ValueError(f"retransmit must name one of packets 1-{packets}, not {retransmit}")
    size = len(payload)
    pgn3 = _pgn_bytes(pgn)
    cm_out = can_id(priority, PGN_TP_CM, source, destination)
    cm_back = can_id(priority, PGN_TP_CM, destination, source)
    dt_id = can_id(priority, PGN_TP_DT, source, destination)
    frames: list[RawFrame] = []

    def emit(can: int, data: bytes) -> None:
        frames.append(RawFrame(round(ts + len(frames) * gap_s, 6), can, data, True, "can0"))

    emit(cm_out, bytes((CM_RTS, size & 0xFF, size >> 8, packets, packets_per_cts)) + pgn3)
    next_packet = 1
    pending_retransmit = retransmit
    while next_packet <= packets:
        count = min(packets_per_cts, packets - next_packet + 1)
        emit(cm_back, bytes((CM_CTS, count, next_packet, PAD, PAD)) + pgn3)
        last = next_packet + count - 1
        for seq in range(next_packet, last + 1):
            emit(dt_id, data_packet(seq, payload))
        if pending_retransmit is not None and next_packet <= pending_retransmit <= last:
            next_packet, pending_retransmit = pending_retransmit, None
        else:
            next_packet = last + 1
    emit(cm_back, bytes((CM_EOMA, size & 0xFF, size >> 8, packets, PAD)) + pgn3)
    return frames


def dm1_frames(
    ts: float, source: int, lamps: Lamps, dtcs: Sequence[J1939Dtc], priority: int = 6, pgn: int = PGN_DM1,
) -> list[RawFrame]:
    """A DM1 broadcast: one 8-byte frame for 0 or 1 DTC (0xFF padded), otherwise a BAM.

    ``pgn`` = ``PGN_DM2`` builds the same shape for a DM2.
    """
    payload = encode_dm(lamps, dtcs)
    if len(payload) <= 8:
        data = payload + bytes((PAD,)) * (8 - len(payload))
        return [RawFrame(ts, can_id(priority, pgn, source), data, True, "can0")]
    return bam_frames(ts, source, pgn, payload, priority)
