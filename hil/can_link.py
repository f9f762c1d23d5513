"""The rig's side of the CAN bus: where simulated ECU frames go in and the agent's requests come out.

* ``slcan`` (default): an ``SlcanEmulator`` on a real pty; the agent opens it with python-can's
  ``slcan`` interface. Cross-process and needs nothing from the kernel.
* ``socketcan``: a python-can SocketCAN bus on ``can0``/``vcan0`` shared with the agent (a real rig,
  or a kernel with the vcan module). ``RigSkip`` with the reason when the interface does not exist.
* ``virtual``: python-can's virtual bus lives inside one process, so it cannot reach a ``fleet-agent``
  subprocess; the rig refuses it (``RigError``) and says to use slcan. In-process agents (tests that
  build ``edge_agent.app.build_agent`` themselves) can use ``hil.obd_ecu.VirtualBusEcus`` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import can

from edge_agent.model import RawFrame
from hil.slcan_adapter import SlcanEmulator

INTERFACES = ("slcan", "socketcan", "virtual")
#: A simulated ECU's handler: a frame the agent sent in, the answers to put on the bus at once out.
Responder = Callable[[RawFrame], list[RawFrame]]


class RigError(RuntimeError):
    """The rig cannot run this scenario here (bad transport, agent failed to start, ...)."""


class RigSkip(RigError):
    """The scenario cannot run on this machine for a stated reason (no such CAN interface)."""


class CanLink(Protocol):
    #: what goes into the agent's [can] section
    interface: str
    channel: str
    options: dict[str, object]

    def inject(self, frames: list[RawFrame]) -> None: ...

    def received(self) -> list[RawFrame]: ...

    def serve(self, responder: Responder | None) -> None:
        """Hand every frame the agent sends to ``responder`` on the link's receiving thread, and send
        its answers straight away (an ECU answers within P2 = 50 ms; a rig's loop turn must not be on
        that path). Frames so handled are not returned by ``received``. None stops it."""

    def ready(self) -> bool: ...

    def reset_ready(self) -> None: ...

    def close(self) -> None: ...


class SlcanLink:
    """An slcan adapter emulator; frames the agent sends are stamped with our receive time."""

    interface = "slcan"

    def __init__(self) -> None:
        self.emulator = SlcanEmulator()
        self.channel = self.emulator.port
        # python-can's slcan waits 2 s after opening for an Arduino-style reset; our emulator needs none.
        self.options: dict[str, object] = {"sleep_after_open": 0}
        self._seen = 0

    def inject(self, frames: list[RawFrame]) -> None:
        if frames:
            self.emulator.inject(*frames)

    def received(self) -> list[RawFrame]:
        sent = self.emulator.sent_frames()
        new, self._seen = sent[self._seen :], len(sent)
        now = time.time()
        return [RawFrame(now, f.arbitration_id, f.data, f.is_extended, "can0") for f in new]

    def serve(self, responder: Responder | None) -> None:
        if responder is None:
            self.emulator.on_frame = None
            return
        self._seen = len(self.emulator.sent_frames())  # from now on the responder sees them

        def on_frame(frame: RawFrame) -> None:
            self._seen += 1
            self.inject(responder(frame))

        self.emulator.on_frame = on_frame

    def ready(self) -> bool:
        return self.emulator.is_open

    def reset_ready(self) -> None:
        """Forget that the channel was opened (before restarting a killed agent, which never closed it)."""
        self.emulator.is_open = False

    def close(self) -> None:
        self.emulator.close()


class SocketCanLink:
    """A SocketCAN interface the agent shares; the kernel delivers our frames to it and its to us."""

    interface = "socketcan"

    def __init__(self, channel: str) -> None:
        if not Path("/sys/class/net", channel).exists():
            raise RigSkip(f"socketcan: no network interface {channel!r} here (create it with "
                          f"`ip link add dev {channel} type vcan && ip link set up {channel}`; this needs the "
                          f"vcan kernel module, which some kernels and containers lack); use --can-interface slcan")
        self.channel = channel
        self.options: dict[str, object] = {}
        self._notifier: can.Notifier | None = None
        try:
            self._bus = can.Bus(interface="socketcan", channel=channel, receive_own_messages=False)
        except (OSError, can.CanError) as exc:
            raise RigSkip(f"socketcan: cannot open {channel!r}: {exc}") from exc

    def inject(self, frames: list[RawFrame]) -> None:
        for f in frames:
            self._bus.send(can.Message(arbitration_id=f.arbitration_id, data=f.data, is_extended_id=f.is_extended))

    def received(self) -> list[RawFrame]:
        if self._notifier is not None:
            return []  # the responder takes them
        out = []
        while (msg := self._bus.recv(timeout=0.0)) is not None:
            if not msg.is_error_frame:
                out.append(RawFrame(msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id, "can0"))
        return out

    def serve(self, responder: Responder | None) -> None:
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None
        if responder is None:
            return

        def on_message(msg: can.Message) -> None:
            if not msg.is_error_frame:
                frame = RawFrame(time.time(), msg.arbitration_id, bytes(msg.data), msg.is_extended_id, "can0")
                self.inject(responder(frame))

        self._notifier = can.Notifier(self._bus, [on_message])

    def ready(self) -> bool:
        return True  # the kernel holds the bus; there is no adapter handshake to wait for

    def reset_ready(self) -> None:
        return None

    def close(self) -> None:
        self.serve(None)
        self._bus.shutdown()


def open_link(interface: str, channel: str | None) -> CanLink:
    if interface == "slcan":
        if channel is not None:
            raise RigError("slcan: the rig emulates the adapter on its own pty; --can-channel is not used with it")
        return SlcanLink()
    if interface == "socketcan":
        return SocketCanLink(channel or "vcan0")
    if interface == "virtual":
        raise RigError("virtual: python-can's virtual bus exists only inside one process, and the rig runs "
                       "fleet-agent as a separate process; use --can-interface slcan (default) or socketcan")
    raise RigError(f"can interface must be one of {', '.join(INTERFACES)}, got {interface!r}")
