"""Acquire: where frames and lines come from (CAN buses, serial GNSS, capture files).

Each source kind is a small ``Protocol``; concrete backends are listed in ``SOURCES`` and imported
lazily, so python-can and pyserial types never leave this package.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge_agent.model import RawFrame, TimedLine


class FrameSource(Protocol):
    """A source of CAN frames (a live bus or a capture file)."""

    def read_batch(self, max_frames: int = 256, timeout: float = 0.1) -> list[RawFrame] | None:
        """Frames available within ``timeout`` seconds, at most ``max_frames``.

        Returns ``[]`` when nothing arrived in time and ``None`` once a finite source (a capture)
        has ended. Transient errors are counted and retried inside; only permanent ones raise
        ``SourceError``.
        """
        ...

    def close(self) -> None:
        """Release the bus or file. Safe to call twice."""
        ...


class LineSource(Protocol):
    """A source of NMEA text lines (a serial receiver or a capture file)."""

    def read_lines(self, timeout: float = 0.1) -> list[TimedLine] | None:
        """Complete lines available within ``timeout``; ``[]`` if none, ``None`` at end of a capture."""
        ...

    def close(self) -> None:
        """Release the port or file. Safe to call twice."""
        ...


@runtime_checkable
class FrameSink(Protocol):
    """Something that can transmit CAN frames (used by the OBD-II poller for requests)."""

    def send(self, frame: RawFrame) -> None:
        """Transmit one frame; raises ``SourceError`` if the bus refuses it permanently."""
        ...


SOURCES: dict[str, str] = {
    "can": "edge_agent.sources.can_bus:CanBusSource",
    "can-replay": "edge_agent.sources.can_replay:CanReplaySource",
    "gnss-serial": "edge_agent.sources.gnss_serial:SerialGnssSource",
    "nmea-replay": "edge_agent.sources.nmea_replay:NmeaReplaySource",
}
