"""Live CAN bus source and sink: the one place where python-can's ``Bus`` and ``Message`` live.

Any python-can interface named in config works (``socketcan`` for can0/vcan0, ``slcan`` for USB
serial adapters and ptys, ``virtual`` for tests, ``kvaser``, ``pcan``, ...). Frames leave this module
as our own ``RawFrame``; python-can types never do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_agent.counters import Counters
from edge_agent.errors import SourceError
from edge_agent.model import RawFrame

if TYPE_CHECKING:
    import can

log = logging.getLogger(__name__)

#: Largest 29-bit identifier; anything wider is a config mistake, not a filter.
MAX_EXTENDED_ID = 0x1FFFFFFF
#: Largest 11-bit identifier.
MAX_STANDARD_ID = 0x7FF
#: Read errors in a row (no good frame between them) after which the bus counts as failed for good:
#: an unplugged USB adapter or a deleted can0 never recovers by retrying, and the app should know.
MAX_CONSECUTIVE_ERRORS = 20
#: Pause after a read error so a failing bus does not turn the acquire loop into a busy spin.
ERROR_BACKOFF_S = 0.05


@dataclass(frozen=True, slots=True)
class CanFilter:
    """Accept frames whose ``id & can_mask == can_id & can_mask`` (SocketCAN semantics).

    ``extended`` selects 29-bit (True) or 11-bit (False) frames; python-can passes the filter to the
    kernel for socketcan and matches in software for interfaces without hardware filtering.
    """

    can_id: int
    can_mask: int
    extended: bool = True

    def to_python_can(self) -> dict[str, Any]:
        limit = MAX_EXTENDED_ID if self.extended else MAX_STANDARD_ID
        if not 0 <= self.can_id <= limit or not 0 <= self.can_mask <= limit:
            width = 29 if self.extended else 11
            raise SourceError(
                f"CAN filter id=0x{self.can_id:X} mask=0x{self.can_mask:X} does not fit {width} bits"
            )
        return {"can_id": self.can_id, "can_mask": self.can_mask, "extended": self.extended}


class CanBusSource:
    """Reads frames from (and sends frames to) one python-can bus.

    Implements both ``FrameSource`` and ``FrameSink``. Error frames and remote frames are counted
    (``can_error_frames`` / ``can_remote_frames``) and skipped; CAN-FD payloads are kept as-is.
    """

    def __init__(
        self,
        interface: str,
        channel: str,
        *,
        bitrate: int | None = None,
        filters: Sequence[CanFilter] = (),
        receive_own_messages: bool = False,
        counters: Counters | None = None,
        **bus_kwargs: Any,
    ) -> None:
        import can  # lazy: an image that only replays captures need not load every backend

        self._can = can
        self.interface = interface
        self.channel = channel
        self.counters = counters if counters is not None else Counters()
        self._consecutive_errors = 0
        kwargs: dict[str, Any] = dict(bus_kwargs)
        if bitrate is not None:
            kwargs["bitrate"] = bitrate
        can_filters = [f.to_python_can() for f in filters] or None
        try:
            self._bus: can.BusABC | None = can.Bus(
                interface=interface,
                channel=channel,
                can_filters=can_filters,
                receive_own_messages=receive_own_messages,
                **kwargs,
            )
        except (can.CanError, OSError, ValueError, ImportError, TypeError) as exc:
            # python-can raises a zoo here (CanInterfaceNotImplementedError for unknown names,
            # OSError for a missing can0, ValueError for a bad bitrate); one clear message for all.
            raise SourceError(
                f"cannot open CAN interface {interface!r} channel {channel!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def read_batch(self, max_frames: int = 256, timeout: float = 0.1) -> list[RawFrame] | None:
        """Block up to ``timeout`` for the first frame, then drain what is already queued.

        Draining with ``recv(0)`` means one call returns a whole burst without waiting per frame,
        which is what keeps a 1 Mbit/s bus from costing one Python round trip per frame.
        """
        bus = self._require_open()
        out: list[RawFrame] = []
        wait: float = timeout
        # Bound the loop by attempts too, so a bus spewing only error frames cannot pin us here.
        for _ in range(max_frames * 2):
            try:
                msg = bus.recv(wait)
            except self._can.CanOperationError as exc:
                self._read_error(exc)
                time.sleep(min(timeout, ERROR_BACKOFF_S))
                break
            except ValueError as exc:
                # slcan and friends parse adapter ASCII themselves; a garbled line is transient.
                self._read_error(exc)
                continue
            if msg is None:
                break
            self._consecutive_errors = 0
            wait = 0.0
            frame = self._convert(msg)
            if frame is not None:
                out.append(frame)
                if len(out) >= max_frames:
                    break
        if out:
            self.counters.inc("frames", len(out))
        return out

    def _read_error(self, exc: Exception) -> None:
        self.counters.inc("source_errors")
        self._consecutive_errors += 1
        log.warning("CAN %s/%s read error %d (retrying): %s",
                    self.interface, self.channel, self._consecutive_errors, exc)
        if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
            raise SourceError(
                f"CAN {self.interface}/{self.channel} failed {self._consecutive_errors} reads in a "
                f"row (adapter unplugged or interface down?): {exc}"
            ) from exc

    def _convert(self, msg: can.Message) -> RawFrame | None:
        if msg.is_error_frame:
            self.counters.inc("can_error_frames")
            return None
        if msg.is_remote_frame:
            self.counters.inc("can_remote_frames")
            return None
        return RawFrame(
            timestamp=msg.timestamp,
            arbitration_id=msg.arbitration_id,
            data=bytes(msg.data),
            is_extended=msg.is_extended_id,
            channel=str(msg.channel) if msg.channel is not None else self.channel,
        )

    def send(self, frame: RawFrame) -> None:
        """Transmit one frame. A full TX queue is retried once; a refusal after that raises."""
        bus = self._require_open()
        msg = self._can.Message(
            arbitration_id=frame.arbitration_id,
            data=frame.data,
            is_extended_id=frame.is_extended,
            is_fd=len(frame.data) > 8,
        )
        for attempt in (1, 2):
            try:
                bus.send(msg, timeout=0.1)
                return
            except self._can.CanOperationError as exc:
                self.counters.inc("source_errors")
                if attempt == 2:
                    raise SourceError(
                        f"CAN {self.interface}/{self.channel} refused frame "
                        f"0x{frame.arbitration_id:X}: {exc}"
                    ) from exc

    def bus_state(self) -> str:
        """``"active"``, ``"passive"`` or ``"error"`` (bus-off); ``"unknown"`` where unsupported."""
        bus = self._require_open()
        try:
            state = bus.state
        except (NotImplementedError, self._can.CanError):
            return "unknown"
        return {
            self._can.BusState.ACTIVE: "active",
            self._can.BusState.PASSIVE: "passive",
            self._can.BusState.ERROR: "error",
        }.get(state, "unknown")

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.shutdown()

    def _require_open(self) -> can.BusABC:
        if self._bus is None:
            raise SourceError(f"CAN {self.interface}/{self.channel} is closed")
        return self._bus

    def __enter__(self) -> CanBusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
