"""Pure-Python twin of ``native/_candump.pyx``: parse the plain lines of a candump text capture.

``parse_lines(buf, pos, end, max_frames, channels)`` walks the ``\\n``-terminated lines of
``buf[pos:end]`` and decodes every line in the one form a recorder writes (linux-can candump ``-l``
and python-can's ``CanutilsLogWriter``, see can-utils ``lib.c`` ``sprint_canframe``)::

    (<digits>.<digits>) <channel> <1-8 hex id>#<0-8 hex byte pairs>[ T| R][\\r]\\n

It stops *before* the first line of any other shape (CAN-FD ``##``, remote ``#R``, error frames,
padded columns, malformed text, a channel not in ``channels``) so the caller parses that one line
itself with the full rules and counts it, then calls again. Blank lines are consumed silently.

* ``channels``: the known channel names, each ASCII, joined by ``\\n`` (an empty entry never matches);
  a frame's channel comes back as its index in that list.
* Timestamps: the digits as one integer ``m`` (at most 2**53, so exact) divided by ``10**k`` (at most
  10**22, so exact): one correctly rounded division, hence the same double as ``float(text)``.
  Anything longer is left to the caller.
* Identifiers: 1-3 digits is an 11-bit id (at most 0x7FF), 4-8 digits a 29-bit id; extended ones
  come back with bit 31 set (the flag ``native/j1939_decode`` expects). An 8-digit id with
  SocketCAN's ``CAN_ERR_FLAG`` (0x20000000) is an error frame and is left to the caller.

Returns ``(timestamps 'd', ids 'I', dlc 'B', data bytes (8 per frame, zero padded), channel 'I',
stop, lines)``: ``stop`` is where parsing ended (a line start), ``lines`` how many lines were consumed.
"""

from __future__ import annotations

from array import array

EXTENDED_FLAG = 0x80000000
CAN_ERR_FLAG = 0x20000000
MAX_EXTENDED_ID = 0x1FFFFFFF
MAX_STANDARD_ID = 0x7FF
#: Largest integer a double holds exactly, and the largest exact power of ten (10**22 < 2**53 * 2**22).
MAX_MANTISSA = 1 << 53
MAX_DECIMALS = 22
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_PAD = bytes(8)
#: Channel names matched per call (the compiled kernel's fixed table); later names are the caller's.
MAX_TABLE = 4096


def _timestamp(buf: bytes, i: int, end: int) -> tuple[float, int]:
    """(value, index of the ')' ) or (nan, -1) when not in the exact fast form."""
    j = i
    while j < end and buf[j] in _DIGITS:
        j += 1
    if j == i or j >= end or buf[j] != 0x2E:  # '.'
        return 0.0, -1
    k = j + 1
    while k < end and buf[k] in _DIGITS:
        k += 1
    decimals = k - j - 1
    if decimals == 0 or decimals > MAX_DECIMALS or k >= end or buf[k] != 0x29:  # ')'
        return 0.0, -1
    if (j - i) + decimals > 19:
        return 0.0, -1
    mantissa = int(buf[i:j] + buf[j + 1:k])
    if mantissa > MAX_MANTISSA:
        return 0.0, -1
    return float(mantissa) / float(10 ** decimals), k


def parse_lines(
    buf: bytes, pos: int, end: int, max_frames: int, channels: bytes,
) -> tuple[array, array, array, bytes, array, int, int]:
    table = channels.split(b"\n")[:MAX_TABLE] if channels else []
    index = {name: n for n, name in reversed(list(enumerate(table))) if name}
    timestamps, ids, dlc, chan = array("d"), array("I"), array("B"), array("I")
    data = bytearray()
    lines = 0
    end = min(end, len(buf))
    while pos < end and len(ids) < max_frames:
        nl = buf.find(b"\n", pos, end)
        if nl < 0:
            break
        stop = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl  # one '\r' before '\n' is allowed
        if nl == pos:
            pos, lines = nl + 1, lines + 1  # blank line
            continue
        if buf[pos] != 0x28:  # '('
            break
        ts, i = _timestamp(buf, pos + 1, stop)
        if i < 0 or i + 2 >= stop or buf[i + 1] != 0x20:
            break
        c0 = i + 2
        c1 = c0
        while c1 < stop and 0x21 <= buf[c1] <= 0x7E:
            c1 += 1
        if c1 == c0 or c1 >= stop or buf[c1] != 0x20:
            break
        n = index.get(buf[c0:c1])
        if n is None:
            break
        h0 = c1 + 1
        h1 = h0
        while h1 < stop and buf[h1] in _HEX:
            h1 += 1
        digits = h1 - h0
        if not 1 <= digits <= 8 or h1 >= stop or buf[h1] != 0x23:  # '#'
            break
        can_id = int(buf[h0:h1], 16)
        if digits > 3:
            if can_id > MAX_EXTENDED_ID:  # also every error frame (CAN_ERR_FLAG is above the range)
                break
            can_id |= EXTENDED_FLAG
        elif can_id > MAX_STANDARD_ID:
            break
        d0 = h1 + 1
        d1 = d0
        while d1 < stop and buf[d1] in _HEX:
            d1 += 1
        length = d1 - d0
        if length & 1 or length > 16:
            break
        if d1 != stop and not (d1 + 2 == stop and buf[d1] == 0x20 and buf[d1 + 1] in b"TR"):
            break
        payload = bytes.fromhex(buf[d0:d1].decode("ascii"))
        timestamps.append(ts)
        ids.append(can_id)
        dlc.append(len(payload))
        data += payload
        data += _PAD[len(payload):]
        chan.append(n)
        pos, lines = nl + 1, lines + 1
    return timestamps, ids, dlc, bytes(data), chan, pos, lines
