"""Request and response models of the HTTP API (pydantic stops here: routes convert store dataclasses).

Named as in the FastAPI full-stack template: ``XCreate`` for input, ``XPublic`` for output. Times are
float seconds since the Unix epoch (UTC), as everywhere in the product.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from edge_agent.wire.model import DEVICE_ID_RE


class AckPublic(BaseModel):
    """The cloud's answer to a batch (``edge_agent.wire.Ack``); ``reason`` is set when rejected."""

    device_id: str
    boot_epoch: int
    seq: int
    status: str = Field(description="committed | duplicate | rejected")
    reason: str = ""
    stored: int = Field(0, description="records of the batch now stored (0 unless committed)")
    batch_hash: str | None = Field(None, description="SHA-256 (hex) of the body this ack answers; null only when "
                                                     "the body was not read (415, or 413 before reading)")


class DeviceCreate(BaseModel):
    id: str = Field(pattern=f"^{DEVICE_ID_RE.pattern}$", description="device id as in its batches and MQTT topic")
    public_key_pem: str = Field(min_length=1, max_length=4096, description="Ed25519 SubjectPublicKeyInfo PEM")
    vin: str | None = Field(None, min_length=1, max_length=17, description="ISO 3779 VIN of the vehicle")
    profile: str | None = Field(None, max_length=64)
    depot: str | None = Field(None, max_length=128)


class DevicePublic(BaseModel):
    id: str
    vin: str | None
    profile: str | None
    depot: str | None
    revoked_at: float | None
    created_at: float


class PositionPublic(BaseModel):
    record_id: int
    device_time: float
    lat: float
    lon: float
    speed_mps: float | None
    course_deg: float | None


class VehiclePublic(BaseModel):
    device: DevicePublic
    status: str = Field(description="online | offline | never_seen | revoked")
    last_batch_received_at: float | None
    last_position: PositionPublic | None


class VehiclesPublic(BaseModel):
    data: list[VehiclePublic]
    count: int


class PositionsPage(BaseModel):
    data: list[PositionPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class EventPublic(BaseModel):
    record_id: int
    kind: str
    priority: int
    device_time: float
    payload: Any = Field(description="as the device sent it; NaN/infinities appear as {\"$float\": \"nan\"}")


class EventsPage(BaseModel):
    data: list[EventPublic]
    next_cursor: str | None


class GapPublic(BaseModel):
    boot_epoch: int
    seq_from: int
    seq_to: int
    detected_at: float
    filled_at: float | None = Field(description="when the gap stopped being open (filled by data, or explained)")
    explanation: str | None = Field(
        None, description="null: filled by the missing batches; else why they are not missing data: refused by "
                          "the cloud (with the reason) or abandoned by the device, its rows re-sent in later batches")


class RefusedBatchPublic(BaseModel):
    """A batch that is not in the chain though its records are not missing (see ``store.refusals``)."""

    boot_epoch: int
    seq_from: int
    seq_to: int | None = Field(description="null: to the end of the epoch (a device's notice after a restart)")
    hash: str | None = Field(description="hex SHA-256 of the refused or abandoned blob, when known")
    prev_hash: str | None = Field(description="hex hash the refused batch chained to (cloud refusals)")
    source: str = Field(description="'cloud': refused at ingest; 'device': the device's abandoned-batches notice")
    reason: str
    detail: str
    recorded_at: float


class HealthPublic(BaseModel):
    device_id: str
    last_boot_epoch: int | None
    last_seq: int | None
    last_batch_created_at: float | None = Field(description="device clock of the newest batch")
    last_batch_received_at: float | None = Field(description="cloud clock when it arrived")
    clock_skew_s: float | None = Field(description="cloud received_at - device created_at of that batch")
    backlog_records: int | None = Field(description="outbox backlog the device last reported")
    backlog_reported_at: float | None
    batches_committed: int
    records_received: int
    records_by_kind: dict[str, int]
    dropped_by_kind: dict[str, int] = Field(description="records the device's outbox evicted (its drop reports)")
    open_gaps: list[GapPublic] = Field(description="batches missing and not accounted for: data not yet seen")
    filled_gaps: list[GapPublic]
    refused_batches: list[RefusedBatchPublic] = Field(
        default_factory=list, description="batches refused by the cloud (authentic, for their content or chain "
                                          "position) or abandoned by the device, newest first; not gaps")
    quarantined_by_kind: dict[str, int] = Field(
        default_factory=dict, description="records the device set aside because the cloud refused their content "
                                          "(its quarantine reports; kept on the device, not sent again)")
    config_applied_version: int | None = Field(
        None, description="signed config version the device last reported running (0: its agent.toml alone; "
                          "null: no report yet); details in GET .../config")
    config_reported_at: float | None = Field(None, description="device time of that report")
    config_desired_version: int | None = Field(None, description="newest config version issued for the device")


class Message(BaseModel):
    detail: str
