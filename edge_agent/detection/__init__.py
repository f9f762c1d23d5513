"""Inspect: detections that run on the vehicle (idle, faults, geofences, trips and meters).

Each detector takes a batch of what decoding produced and returns events; hot loops call kernels in
``native/`` (arrays in, arrays out). Detectors keep their state in plain dicts so the daemon can
persist it across restarts (``state()`` / ``restore()``) and never depend on the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.model import DiagnosticMessage, Event, Fix, ObdDtcReport, Sample, SampleColumns

#: Bus silence (seconds, on the daemon's own clock) after which runs in progress end at their last
#: sample: the ignition is off and the ECUs stopped talking. Beyond the detectors' 10 s ``STALE_S`` so
#: that a signal sent slowly is not taken for silence, and far below their ``MAX_GAP_S`` so a trip is
#: reported seconds after the key is turned, not when the bus wakes the next morning. A fleet may set
#: ``bus_silence_s`` in ``[detection.thresholds]``.
SILENCE_S = 15.0


@dataclass(slots=True)
class DetectionBatch:
    """Everything decoded from one read cycle, each list in time order.

    Decoded values come either as ``samples`` or, on the J1939 hot path, as ``columns`` (then
    ``samples`` is empty): detectors hand columns to ``HeldTimeline.feed_columns``.

    ``tick`` (the running daemon only, never replay) carries no values: the bus has been silent up
    to that bus time, by the agent's own clock. Run detectors (idle, trips) then end what is running
    at its last sample, as a bus silence longer than their ``MAX_GAP_S`` would when the bus wakes.
    """

    samples: list[Sample] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    diagnostics: list[DiagnosticMessage] = field(default_factory=list)
    obd_dtcs: list[ObdDtcReport] = field(default_factory=list)
    columns: SampleColumns | None = None
    tick: float | None = None

    def has_values(self) -> bool:
        return bool(self.samples) or (self.columns is not None and len(self.columns) > 0)

    def last_value_ts(self) -> float:
        """Timestamp of the last decoded value (call only when ``has_values()``)."""
        if self.samples:
            return self.samples[-1].timestamp
        assert self.columns is not None
        return self.columns.timestamps[-1]


class Detector(Protocol):
    """A detection stage. Pure with respect to its inputs and its own state."""

    def process(self, batch: DetectionBatch) -> list[Event]:
        """Events completed by this batch, in time order."""
        ...

    def state(self) -> dict[str, object]:
        """JSON-serialisable state to persist across restarts."""
        ...

    def restore(self, state: dict[str, object]) -> None:
        """Resume from a ``state()`` taken earlier (possibly by an older version: be lenient)."""
        ...


DETECTORS: dict[str, str] = {
    "idle": "edge_agent.detection.idle:IdleDetector",
    "faults": "edge_agent.detection.faults:FaultDetector",
    "geofence": "edge_agent.detection.geofence:GeofenceDetector",
    "trips": "edge_agent.detection.trips:TripDetector",
}
