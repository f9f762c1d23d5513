"""Signed configs per device (every version ever issued) and what the device reports it runs.

``device_configs`` keeps each sealed config exactly as signed and published (``edge_agent.wire.config``);
versions count up from 1 per device, allocated under the device's row lock so two staff saving at once get
two versions, never one twice. ``published_at`` is NULL until the broker has taken the config (PUBACK):
with no broker configured, or the broker down, configs wait and ``unpublished`` lists the newest of each
device for the publisher to send when it connects.

The applied version is not stored here: the agent reports it in ``config_status`` records, which ingest
stores as events like any other; ``reported_status`` reads the newest one back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    and_,
    func,
    insert,
    select,
    update,
)

from cloud_sync.store import schema
from edge_agent.wire.config import CONFIG_STATUS_KIND

device_configs = Table(
    "device_configs",
    schema.metadata,
    Column("device_id", schema.DeviceId, ForeignKey("devices.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("sealed", LargeBinary, nullable=False),  # the signed envelope, as published
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("created_by", String(128), nullable=False),  # the staff actor who saved it
    Column("published_at", Double),  # broker PUBACK of the newest publish; NULL: not yet published
)


@dataclass(frozen=True, slots=True)
class StoredConfig:
    device_id: str
    version: int
    sealed: bytes
    issued_at: float
    expires_at: float
    created_by: str
    published_at: float | None


@dataclass(frozen=True, slots=True)
class ReportedStatus:
    """The newest ``config_status`` record of a device: what it runs and what it last did with a push."""

    applied_version: int | None
    result: str | None
    offered_version: int | None
    reason: str | None
    device_time: float


def _stored(row: Any) -> StoredConfig:
    m = row._mapping
    return StoredConfig(m["device_id"], m["version"], bytes(m["sealed"]), m["issued_at"], m["expires_at"],
                        m["created_by"], m["published_at"])


def next_version(conn: Connection, device_id: str) -> int:
    """The version the next config of ``device_id`` gets (call holding the device's row lock)."""
    top = conn.execute(select(func.max(device_configs.c.version)).where(device_configs.c.device_id == device_id))
    return int(top.scalar() or 0) + 1


def add_config(conn: Connection, config: StoredConfig) -> None:
    conn.execute(insert(device_configs).values(
        device_id=config.device_id, version=config.version, sealed=config.sealed, issued_at=config.issued_at,
        expires_at=config.expires_at, created_by=config.created_by, published_at=config.published_at))


def latest_config(conn: Connection, device_id: str) -> StoredConfig | None:
    row = conn.execute(select(device_configs).where(device_configs.c.device_id == device_id)
                       .order_by(device_configs.c.version.desc()).limit(1)).first()
    return None if row is None else _stored(row)


def expiring(conn: Connection, before: float) -> list[StoredConfig]:
    """The newest config of every device whose newest config expires before ``before`` (device order)."""
    c = device_configs.c
    newest = (select(c.device_id, func.max(c.version).label("version")).group_by(c.device_id).subquery())
    rows = conn.execute(select(device_configs).join(newest, and_(c.device_id == newest.c.device_id,
                                                                 c.version == newest.c.version))
                        .where(c.expires_at < before).order_by(c.device_id))
    return [_stored(r) for r in rows]


def unpublished(conn: Connection) -> list[StoredConfig]:
    """The newest config of every device whose newest config the broker has not taken yet."""
    c = device_configs.c
    newest = (select(c.device_id, func.max(c.version).label("version")).group_by(c.device_id).subquery())
    rows = conn.execute(select(device_configs).join(newest, and_(c.device_id == newest.c.device_id,
                                                                 c.version == newest.c.version))
                        .where(c.published_at.is_(None)).order_by(c.device_id))
    return [_stored(r) for r in rows]


def mark_published(conn: Connection, device_id: str, version: int, at: float) -> None:
    conn.execute(update(device_configs).where(device_configs.c.device_id == device_id,
                                              device_configs.c.version == version).values(published_at=at))


def reported_status(conn: Connection, device_id: str) -> ReportedStatus | None:
    """The newest ``config_status`` the device sent (by its clock, then record id), or None."""
    e = schema.events.c
    row = conn.execute(select(e.device_time, e.payload).where(e.device_id == device_id,
                                                              e.kind == CONFIG_STATUS_KIND)
                       .order_by(e.device_time.desc(), e.record_id.desc()).limit(1)).first()
    if row is None:
        return None
    p = row.payload if isinstance(row.payload, dict) else {}

    def _int(key: str) -> int | None:
        value = p.get(key)
        return value if type(value) is int else None

    def _str(key: str) -> str | None:
        value = p.get(key)
        return value if isinstance(value, str) else None

    return ReportedStatus(_int("applied_version"), _str("result"), _int("offered_version"), _str("reason"),
                          row.device_time)
