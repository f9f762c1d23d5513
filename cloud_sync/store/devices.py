"""Device registry: who may send batches, with which public key, and whether they are revoked.

``devices.public_key_pem`` is the device's current Ed25519 signing key. ``device_keys`` keeps the keys a
device rolled away from (``rotate_signing_key``): each with the cloud time it was retired and the device
time of the rotation statement (``sealed_before``). Ingest accepts a batch signed by a retired key only if
the batch was sealed (``created_at``, device clock, signed) no later than that, so batches waiting in the
device's outbox or in flight during the change are not lost, and the old key signs nothing newer. Both
times of a rotation are kept with the statement and the signatures that proved it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Double, ForeignKey, String, Table, Text, insert, select, update

from cloud_sync.store import schema
from cloud_sync.store.schema import devices

device_keys = Table(
    "device_keys",
    schema.metadata,
    Column("device_id", schema.DeviceId, ForeignKey("devices.id"), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),  # SHA-256 hex of the key's DER (SubjectPublicKeyInfo)
    Column("public_key_pem", Text, nullable=False),
    Column("retired_at", Double, nullable=False),  # cloud clock
    Column("sealed_before", Double, nullable=False),  # device clock: the rotation statement's issued_at
    Column("replaced_by", String(64), nullable=False),  # fingerprint of the key that took over
    Column("statement", Text, nullable=False),  # the rotation statement, as signed
    Column("old_signature", Text, nullable=False),  # base64, by this key
    Column("new_signature", Text, nullable=False),  # base64, by the new key (proof of possession)
)


@dataclass(frozen=True, slots=True)
class RetiredKey:
    fingerprint: str
    public_key_pem: str
    retired_at: float
    sealed_before: float
    replaced_by: str
    statement: str


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


def retired_keys(conn: Connection, device_id: str, sealed_at: float | None = None) -> list[RetiredKey]:
    """The device's retired signing keys, newest first; with ``sealed_at``, only those that may have sealed a
    batch created then (``sealed_before >= sealed_at``)."""
    k = device_keys.c
    query = select(device_keys).where(k.device_id == device_id)
    if sealed_at is not None:
        query = query.where(k.sealed_before >= sealed_at)
    rows = conn.execute(query.order_by(k.retired_at.desc()))
    return [RetiredKey(r.fingerprint, r.public_key_pem, r.retired_at, r.sealed_before, r.replaced_by, r.statement)
            for r in rows]


def rotate_signing_key(conn: Connection, device_id: str, old_fingerprint: str, new_pem: str, new_fingerprint: str,
                       *, statement: str, old_signature: str, new_signature: str, sealed_before: float,
                       now: float | None = None) -> None:
    """Make ``new_pem`` the device's key and keep the current one as retired (caller verified everything and
    holds the device's row lock: ``get_device(..., for_update=True)``)."""
    device = get_device(conn, device_id)
    assert device is not None
    conn.execute(insert(device_keys).values(
        device_id=device_id, fingerprint=old_fingerprint, public_key_pem=device.public_key_pem,
        retired_at=time.time() if now is None else now, sealed_before=sealed_before, replaced_by=new_fingerprint,
        statement=statement, old_signature=old_signature, new_signature=new_signature))
    conn.execute(update(devices).where(devices.c.id == device_id).values(public_key_pem=new_pem))
