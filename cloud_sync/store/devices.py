"""Device registry: who may send batches, with which public key, and whether they are revoked."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from cloud_sync.store.schema import devices


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    public_key_pem: str
    vin: str | None
    profile: str | None
    depot: str | None
    revoked_at: float | None
    created_at: float


class DeviceExists(Exception):
    """``add_device`` was asked to register an id that is already registered."""


def _device(row: object) -> Device:
    m = row._mapping  # type: ignore[attr-defined]
    return Device(m["id"], m["public_key_pem"], m["vin"], m["profile"], m["depot"], m["revoked_at"],
                  m["created_at"])


def get_device(conn: Connection, device_id: str, *, for_update: bool = False) -> Device | None:
    """The device, or None. ``for_update`` locks it so one device's batches commit in turn: a row lock on
    PostgreSQL; on SQLite a no-op write as the transaction's first statement, which takes the database's
    write lock before anything is read (a deferred transaction that read first could not upgrade)."""
    query = select(devices).where(devices.c.id == device_id)
    if for_update:
        if conn.dialect.name == "sqlite":
            conn.execute(update(devices).where(devices.c.id == device_id).values(id=devices.c.id))
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _device(row)


def list_devices(conn: Connection) -> list[Device]:
    return [_device(r) for r in conn.execute(select(devices).order_by(devices.c.id))]


def add_device(conn: Connection, device_id: str, public_key_pem: str, *, vin: str | None = None,
               profile: str | None = None, depot: str | None = None, now: float | None = None) -> Device:
    """Register a device; raises ``DeviceExists`` if the id is taken (keys are never silently replaced)."""
    if get_device(conn, device_id) is not None:
        raise DeviceExists(device_id)
    created = time.time() if now is None else now
    conn.execute(insert(devices).values(id=device_id, public_key_pem=public_key_pem, vin=vin, profile=profile,
                                        depot=depot, revoked_at=None, created_at=created))
    return Device(device_id, public_key_pem, vin, profile, depot, None, created)


def revoke_device(conn: Connection, device_id: str, now: float | None = None) -> bool:
    """Mark the device revoked (its batches are rejected from now on); False if it is unknown."""
    result = conn.execute(update(devices).where(devices.c.id == device_id)
                          .values(revoked_at=time.time() if now is None else now))
    return result.rowcount > 0
