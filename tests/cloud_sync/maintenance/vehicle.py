"""A vehicle sending maintenance-relevant events through the real ingest, payloads shaped as the edge's
detectors make them (``edge_agent.detection.faults`` / ``trips`` / ``idle``; see a replay's outbox)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from cloud_sync.ingest import Ingestor
from edge_agent.wire import WireRecord
from tests.cloud_sync.helpers import T0, SimDevice

LAMPS_OFF = {"mil": "off", "red_stop": "off", "amber_warning": "off", "protect": "off"}
AMBER = {**LAMPS_OFF, "amber_warning": "on"}
RED = {**LAMPS_OFF, "red_stop": "on", "amber_warning": "on"}


def dtc(spn: int, fmi: int, lamps: dict[str, str], since: float, source: str = "j1939:0x00") -> dict[str, Any]:
    return {"protocol": "j1939", "source": source, "spn": spn, "fmi": fmi, "oc": 1, "lamps": lamps, "since": since}


def cleared(spn: int, fmi: int, since: float, at: float, source: str = "j1939:0x00") -> dict[str, Any]:
    return {**dtc(spn, fmi, AMBER, since, source), "cleared_at": at, "flaps": 0}


def meter(odometer_km: float, engine_hours: float) -> dict[str, Any]:
    return {"odometer_km": odometer_km, "odometer_source": "bus", "engine_hours": engine_hours,
            "engine_hours_source": "bus", "reason": "periodic"}


def idle(started_at: float, duration_s: float) -> dict[str, Any]:
    return {"started_at": started_at, "duration_s": duration_s, "lat": None, "lon": None, "source": "j1939:0x00",
            "fuel_l": 0.3, "fuel_source": "measured", "ended_at": started_at + duration_s}


def sample(signal: str, value: float, unit: str) -> dict[str, Any]:
    return {"signal": signal, "value": value, "unit": unit, "source": "j1939:0x00"}


@dataclass
class Vehicle:
    """One registered device; ``send`` seals its records into a chained batch and ingests it."""

    engine: Engine
    ingestor: Ingestor
    device: SimDevice
    next_id: int = 1_000
    pending: list[WireRecord] = field(default_factory=list)

    @classmethod
    def register(cls, engine: Engine, ingestor: Ingestor, device_id: str, depot: str | None = None) -> Vehicle:
        dev = SimDevice(device_id)
        dev.register(engine, depot=depot, profile="heavy_truck_j1939")
        return cls(engine, ingestor, dev)

    def add(self, kind: str, t: float, payload: dict[str, Any], priority: int = 30) -> int:
        rid = self.next_id
        self.next_id += 1
        self.pending.append(WireRecord(rid, kind, priority, t, t + 0.01, payload))
        return rid

    def seal(self) -> bytes:
        records, self.pending = self.pending, []
        return self.device.batch(records, created_at=max((r.received_at for r in records), default=T0) + 1)

    def send(self) -> bytes:
        blob = self.seal()
        ack = self.ingestor.ingest(blob)
        assert ack.status == "committed", ack
        return blob
