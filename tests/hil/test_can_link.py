"""The rig's CAN link: a simulated ECU answers on the link's own thread, as soon as a request arrives.

This is the fix for the van scenario's flake under load: answers used to wait for the rig's loop, and
a loop turn delayed past P2 (50 ms) made the agent's poller time out and fall back to 5 s probes.
"""

from __future__ import annotations

import os
import select
import time
import tty

from edge_agent.model import RawFrame
from firmware_profiles import load_profile
from hil.can_link import SlcanLink
from hil.obd_ecu import ObdEcu, ObdVehicleState
from hil.player import DUE_ROUNDING_S

REQUEST = b"t7DF802010C0000000000\r"  # slcan: 0x7DF, 8 bytes, single frame "01 0C" (engine speed)


def _read_until(fd: int, marker: bytes, timeout: float = 5.0) -> bytes:
    got = b""
    end = time.monotonic() + timeout
    while marker not in got and time.monotonic() < end:
        if select.select([fd], [], [], 0.05)[0]:
            got += os.read(fd, 4096)
    return got


def test_an_obd_request_is_answered_without_any_rig_loop_turn() -> None:
    link = SlcanLink()
    ecu = ObdEcu(load_profile("light_obd2"), 0, state=ObdVehicleState(values={"engine_speed": 800.0}),
                 response_delay_s=0.0)
    seen: list[RawFrame] = []

    def answer(frame: RawFrame) -> list[RawFrame]:
        seen.append(frame)
        ecu.on_frame(frame)
        return ecu.tick(frame.timestamp + DUE_ROUNDING_S)

    link.serve(answer)
    host = os.open(link.channel, os.O_RDWR | os.O_NOCTTY)  # the agent's side of the adapter
    try:
        tty.setraw(host)
        os.write(host, REQUEST)
        # Nothing else runs here: only the link's own thread can have answered.
        reply = _read_until(host, b"t7E8")
        line = reply[reply.index(b"t7E8"):].split(b"\r")[0].decode()
        data = bytes.fromhex(line[5:])
        assert data[1:3] == bytes([0x41, 0x0C])
        assert int.from_bytes(data[3:5], "big") / 4 == 800.0  # J1979 PID 0C: rpm = raw / 4
        assert [f.arbitration_id for f in seen] == [0x7DF]
        assert link.received() == []  # what the responder took is not handed out twice

        link.serve(None)  # no responder: frames wait for the rig's loop again
        os.write(host, REQUEST)
        got: list[RawFrame] = []
        end = time.monotonic() + 5.0
        while not got and time.monotonic() < end:
            got = link.received()
            time.sleep(0.005)
        assert len(seen) == 1 and [f.arbitration_id for f in got] == [0x7DF]
    finally:
        os.close(host)
        link.close()
