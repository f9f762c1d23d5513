"""Pure-Python twin of ``native/_j1939_decode.pyx``: decode a batch of J1939 frames against a catalog.

Inputs are flat arrays so the compiled kernel never touches Python objects:

* frames: ``ids`` ('I', 29-bit identifiers with bit 31 set for extended frames), ``data`` (bytes,
  8 per frame, zero-padded), ``dlc`` ('B', real lengths);
* the catalog, compiled once (see ``edge_agent.decoding.fast``): ``pgns`` ('I', sorted), ``first``
  ('I', len(pgns)+1 offsets into the field arrays), and per field ``start`` ('H'), ``length`` ('B'),
  ``is_signed`` ('B'), ``scale`` ('d'), ``offset`` ('d'), ``missing_from`` ('Q', 0 = no special range),
  ``error_value`` ('Q');
* ``special`` ('I', sorted): PGNs the caller wants to see itself (transport protocol, DM1, VIN).

Returns ``(value_frame 'I', value_field 'H', value 'd', special_frames 'I', stats 'Q')`` where stats is
[frames matched, frames ignored, values not available, values error, values short, standard-id frames].
Field decoding follows J1939-71 5.1.4 exactly as ``edge_agent.decoding.catalog.extract`` does.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

STAT_MATCHED, STAT_IGNORED, STAT_NA, STAT_ERROR, STAT_SHORT, STAT_STANDARD = range(6)
EXTENDED_FLAG = 0x80000000


def _find(keys: array, key: int) -> int:
    i = bisect_left(keys, key)
    return i if i < len(keys) and keys[i] == key else -1


def decode_frames(
    ids: array, data: bytes, dlc: array,
    pgns: array, first: array, start: array, length: array, is_signed: array,
    scale: array, offset: array, missing_from: array, error_value: array,
    special: array,
) -> tuple[array, array, array, array, array]:
    value_frame = array("I")
    value_field = array("H")
    values = array("d")
    special_frames = array("I")
    stats = array("Q", [0] * 6)
    for i in range(len(ids)):
        can_id = ids[i]
        if not can_id & EXTENDED_FLAG:
            stats[STAT_STANDARD] += 1
            continue
        pf = (can_id >> 16) & 0xFF
        pgn = ((can_id >> 8) & 0x3FF00) if pf < 240 else ((can_id >> 8) & 0x3FFFF)
        m = _find(pgns, pgn)
        if m < 0:
            if _find(special, pgn) >= 0:
                special_frames.append(i)
            else:
                stats[STAT_IGNORED] += 1
            continue
        stats[STAT_MATCHED] += 1
        word = int.from_bytes(data[8 * i: 8 * i + 8], "little")
        have = dlc[i]
        for f in range(first[m], first[m + 1]):
            bits = length[f]
            if (start[f] + bits + 7) // 8 > have:
                stats[STAT_SHORT] += 1
                continue
            raw = (word >> start[f]) & ((1 << bits) - 1)
            limit = missing_from[f]
            if limit and raw >= limit:
                if raw == error_value[f] or (bits >= 8 and raw >> (bits - 8) == 0xFE):
                    stats[STAT_ERROR] += 1
                else:
                    stats[STAT_NA] += 1
                continue
            if is_signed[f] and raw >> (bits - 1):
                raw -= 1 << bits
            value_frame.append(i)
            value_field.append(f)
            values.append(raw * scale[f] + offset[f])
    return value_frame, value_field, values, special_frames, stats
