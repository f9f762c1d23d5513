"""Pure-Python twin of ``native/_j1939_gather.pyx``: per decoded value, its frame's time and sender.

``gather(value_frame 'I', frame_ts 'd', frame_ids 'I') -> (ts 'd', source 'H')``: for each value the
timestamp of the frame it came from and that frame's J1939 source address (the identifier's low
byte, SAE J1939-21 5.2), so decoded values become ``SampleColumns`` without a Python loop.
"""

from __future__ import annotations

from array import array


def gather(value_frame: array, frame_ts: array, frame_ids: array) -> tuple[array, array]:
    return (array("d", [frame_ts[i] for i in value_frame]),
            array("H", [frame_ids[i] & 0xFF for i in value_frame]))
