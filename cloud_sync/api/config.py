"""A vehicle's signed configuration: ``PUT`` a new version, ``GET`` what is desired and what the device runs,
``POST .../publish`` to send it again; ``GET /v1/config-signing-key`` is the public key devices pin.

The work is ``cloud_sync.config_push.ConfigPush`` (sign, store, publish); this module is the HTTP shape.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud_sync.api.deps import CallerDep, ConnDep
from cloud_sync.api.schemas import Message
from cloud_sync.config_push import ConfigPush, ConfigRefused
from cloud_sync.config_push.service import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S
from cloud_sync.store.configs import latest_config, reported_status
from cloud_sync.store.devices import get_device
from edge_agent.wire.config import MAX_THRESHOLD_NAME_CHARS, MAX_THRESHOLDS, PROFILE_NAME_RE
from edge_agent.wire.model import DEVICE_ID_RE

router = APIRouter(prefix="/v1", tags=["config"])
DeviceParam = Annotated[str, Path(pattern=f"^{DEVICE_ID_RE.pattern}$", description="device id")]
_errors: dict[int | str, dict[str, Any]] = {401: {"model": Message}, 404: {"model": Message}}


class ConfigUpdate(BaseModel):
    """A new configuration; each field left out keeps the device's own ``agent.toml`` value."""

    model_config = ConfigDict(extra="forbid")
    profile: str | None = Field(None, pattern=f"^{PROFILE_NAME_RE.pattern}$",
                                description="a firmware profile bundled with the agent")
    thresholds: dict[Annotated[str, Field(min_length=1, max_length=MAX_THRESHOLD_NAME_CHARS)], float] = Field(
        default_factory=dict, max_length=MAX_THRESHOLDS, description="overrides on top of the profile's")
    geofences: dict[str, Any] | None = Field(None, description="a GeoJSON FeatureCollection (RFC 7946)")
    ttl_s: float = Field(DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S,
                         description="seconds the device will accept this config after it is issued")


class ConfigVersionPublic(BaseModel):
    version: int
    issued_at: float
    expires_at: float
    profile: str | None
    thresholds: dict[str, float]
    geofences: dict[str, Any] | None
    created_by: str
    published_at: float | None = Field(description="when the broker took it; null: waiting for a broker")


class AppliedConfigPublic(BaseModel):
    """The device's newest ``config_status`` report."""

    applied_version: int | None = Field(description="what the device runs; 0: its agent.toml alone")
    result: str | None = Field(description="running | applied | rejected | fallback")
    offered_version: int | None
    reason: str | None
    reported_at: float = Field(description="device time of the report")


class ConfigStatusPublic(BaseModel):
    device_id: str
    desired: ConfigVersionPublic | None
    applied: AppliedConfigPublic | None
    in_sync: bool = Field(description="the device reports running the newest version")


class SigningKeyPublic(BaseModel):
    public_key_pem: str


def _push(request: Request) -> ConfigPush:
    push: ConfigPush = request.app.state.config_push
    return push


def _refused(exc: ConfigRefused) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _status(push: ConfigPush, conn: ConnDep, device: str) -> ConfigStatusPublic:
    if get_device(conn, device) is None:
        raise HTTPException(404, f"no device {device!r}")
    stored = latest_config(conn, device)
    reported = reported_status(conn, device)
    desired = None
    if stored is not None:
        c = push.decode(stored)
        desired = ConfigVersionPublic(version=c.version, issued_at=c.issued_at, expires_at=c.expires_at,
                                      profile=c.profile, thresholds=dict(c.thresholds),
                                      geofences=None if c.geofences is None else dict(c.geofences),
                                      created_by=stored.created_by, published_at=stored.published_at)
    applied = None if reported is None else AppliedConfigPublic(
        applied_version=reported.applied_version, result=reported.result, offered_version=reported.offered_version,
        reason=reported.reason, reported_at=reported.device_time)
    in_sync = (applied.applied_version if applied else 0) == (desired.version if desired else 0)
    return ConfigStatusPublic(device_id=device, desired=desired, applied=applied, in_sync=in_sync)


@router.put("/vehicles/{device}/config", summary="Sign, store and publish a new config version",
            response_model=ConfigStatusPublic,
            responses={**_errors, 409: {"model": Message, "description": "device revoked"},
                       413: {"model": Message, "description": "sealed config over MAX_CONFIG_BYTES"},
                       422: {"description": "a field out of range"}})
def put_config(request: Request, conn: ConnDep, caller: CallerDep, device: DeviceParam,
               body: ConfigUpdate) -> ConfigStatusPublic:
    if not all(math.isfinite(v) for v in body.thresholds.values()):
        raise HTTPException(422, "thresholds must be finite numbers")
    push = _push(request)
    try:
        push.save(device, actor=caller.actor, profile=body.profile, thresholds=body.thresholds,
                  geofences=body.geofences, ttl_s=body.ttl_s)
    except ConfigRefused as exc:
        raise _refused(exc) from None
    conn.rollback()  # a fresh snapshot: the save committed on its own connection
    return _status(push, conn, device)


@router.get("/vehicles/{device}/config", summary="Desired config and the version the device reports running",
            response_model=ConfigStatusPublic, responses=_errors)
def get_config(request: Request, conn: ConnDep, device: DeviceParam) -> ConfigStatusPublic:
    return _status(_push(request), conn, device)


@router.post("/vehicles/{device}/config/publish", summary="Publish the newest config again",
             response_model=ConfigStatusPublic,
             responses={**_errors, 503: {"model": Message, "description": "no broker, or it did not take it"}})
def publish_config(request: Request, conn: ConnDep, caller: CallerDep, device: DeviceParam) -> ConfigStatusPublic:
    push = _push(request)
    try:
        push.republish(device, actor=caller.actor)
    except ConfigRefused as exc:
        raise _refused(exc) from None
    conn.rollback()
    return _status(push, conn, device)


@router.get("/config-signing-key", summary="The fleet's config-signing public key (devices pin it)",
            response_model=SigningKeyPublic, responses={404: {"model": Message, "description": "no key yet"}})
def get_signing_key(request: Request) -> SigningKeyPublic:
    try:
        return SigningKeyPublic(public_key_pem=_push(request).public_key_pem(create=False))
    except ConfigRefused as exc:
        raise _refused(exc) from None
