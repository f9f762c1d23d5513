"""``POST /v1/devices``: register a device and its public key (admin)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import IntegrityError

from cloud_sync.api.deps import CallerDep, ServicesDep, check_depot
from cloud_sync.api.schemas import DeviceCreate, DevicePublic, Message
from cloud_sync.store.devices import Device, DeviceExists, add_device
from edge_agent.wire.sign import load_public_key_pem

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def device_public(d: Device) -> DevicePublic:
    return DevicePublic(id=d.id, vin=d.vin, profile=d.profile, depot=d.depot, revoked_at=d.revoked_at,
                        created_at=d.created_at)


@router.post("", summary="Register a device", status_code=status.HTTP_201_CREATED, response_model=DevicePublic,
             responses={401: {"model": Message}, 403: {"model": Message, "description": "not your depot"},
                        409: {"model": Message, "description": "id already registered"},
                        422: {"description": "not an Ed25519 public key PEM, or a field out of range"}})
def create_device(body: DeviceCreate, services: ServicesDep, caller: CallerDep) -> DevicePublic:
    check_depot(caller, body.depot)  # an installer registers devices of their own depot only
    try:
        load_public_key_pem(body.public_key_pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"public_key_pem: {exc}") from None
    try:
        with services.engine.begin() as conn:
            device = add_device(conn, body.id, body.public_key_pem, vin=body.vin, profile=body.profile,
                                depot=body.depot)
    except (DeviceExists, IntegrityError):  # IntegrityError: a concurrent registration of the same id won
        raise HTTPException(status.HTTP_409_CONFLICT, f"device {body.id!r} is already registered") from None
    return device_public(device)
