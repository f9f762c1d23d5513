"""Staff reads: vehicles with their latest position and status, positions and events by time range
(cursor pagination), and per-vehicle data health (with the config version the device reports running)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from cloud_sync.api.deps import CallerDep, ConnDep, StaffDep
from cloud_sync.api.devices import device_public
from cloud_sync.api.schemas import (
    EventPublic,
    EventsPage,
    GapPublic,
    HealthPublic,
    Message,
    PositionPublic,
    PositionsPage,
    RefusedBatchPublic,
    VehiclePublic,
    VehiclesPublic,
)
from cloud_sync.governance.roles import SEES_LOCATION
from cloud_sync.store import queries
from cloud_sync.store.configs import latest_config, reported_status
from cloud_sync.store.devices import get_device
from cloud_sync.store.refusals import Refusal
from edge_agent.wire.model import DEVICE_ID_RE, MAX_KIND_CHARS

router = APIRouter(prefix="/v1/vehicles", tags=["vehicles"])

DeviceParam = Annotated[str, Path(pattern=f"^{DEVICE_ID_RE.pattern}$", description="device id")]
FromParam = Annotated[float | None, Query(alias="from", allow_inf_nan=False,
                                          description="device time >= this (Unix seconds)")]
ToParam = Annotated[float | None, Query(alias="to", allow_inf_nan=False, description="device time < this")]
CursorParam = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
LimitParam = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
_errors: dict[int | str, dict[str, object]] = {
    400: {"model": Message, "description": "bad cursor or range"}, 401: {"model": Message},
    404: {"model": Message, "description": "no such device"},
}


def encode_cursor(c: queries.Cursor | None) -> str | None:
    if c is None:
        return None
    raw = json.dumps([repr(c.device_time), c.record_id]).encode()  # repr: the float round-trips exactly
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> queries.Cursor | None:
    if text is None:
        return None
    try:
        t, rid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = queries.Cursor(float(t), int(rid))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "cursor is not one this API issued") from None
    if cursor.device_time != cursor.device_time or isinstance(rid, bool) or not isinstance(rid, int):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "cursor is not one this API issued")
    return cursor


def _known(conn: ConnDep, device: str) -> None:
    if get_device(conn, device) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device!r}")


def _range(start: float | None, end: float | None) -> None:
    if start is not None and end is not None and end < start:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "'to' is before 'from'")


def _position(p: queries.Position) -> PositionPublic:
    return PositionPublic(record_id=p.record_id, device_time=p.device_time, lat=p.lat, lon=p.lon,
                          speed_mps=p.speed_mps, course_deg=p.course_deg)


@router.get("", summary="Vehicles with their latest position and status", response_model=VehiclesPublic,
            responses={401: {"model": Message}})
def list_vehicles(conn: ConnDep, caller: CallerDep) -> VehiclesPublic:
    # Depot-scoped (access.ACCESS: scope=ROUTE); positions only for roles that may see location.
    located = caller.role in SEES_LOCATION
    items = [VehiclePublic(device=device_public(v.device), status=v.status,
                           last_batch_received_at=v.last_batch_received_at,
                           last_position=None if v.last_position is None or not located
                           else _position(v.last_position))
             for v in queries.vehicles(conn, time.time()) if caller.sees_depot(v.device.depot)]
    return VehiclesPublic(data=items, count=len(items))


@router.get("/{device}/positions", summary="Positions of a vehicle by device time", response_model=PositionsPage,
            responses=_errors)
def get_positions(conn: ConnDep, _staff: StaffDep, device: DeviceParam, start: FromParam = None,
                  end: ToParam = None, cursor: CursorParam = None, limit: LimitParam = 100) -> PositionsPage:
    _range(start, end)
    after = decode_cursor(cursor)
    _known(conn, device)
    items, nxt = queries.position_page(conn, device, start, end, after, limit)
    return PositionsPage(data=[_position(p) for p in items], next_cursor=encode_cursor(nxt))


@router.get("/{device}/events", summary="Events of a vehicle by device time, optionally of one kind",
            response_model=EventsPage, responses=_errors)
def get_events(conn: ConnDep, _staff: StaffDep, device: DeviceParam,
               kind: Annotated[str | None, Query(min_length=1, max_length=MAX_KIND_CHARS)] = None,
               start: FromParam = None, end: ToParam = None, cursor: CursorParam = None,
               limit: LimitParam = 100) -> EventsPage:
    _range(start, end)
    after = decode_cursor(cursor)
    _known(conn, device)
    items, nxt = queries.event_page(conn, device, kind, start, end, after, limit)
    return EventsPage(data=[EventPublic(record_id=e.record_id, kind=e.kind, priority=e.priority,
                                        device_time=e.device_time, payload=e.payload) for e in items],
                      next_cursor=encode_cursor(nxt))


def _gap(g: queries.Gap) -> GapPublic:
    return GapPublic(boot_epoch=g.boot_epoch, seq_from=g.seq_from, seq_to=g.seq_to, detected_at=g.detected_at,
                     filled_at=g.filled_at, explanation=g.explanation)


def _refused(r: Refusal) -> RefusedBatchPublic:
    return RefusedBatchPublic(boot_epoch=r.boot_epoch, seq_from=r.seq_from, seq_to=r.seq_to,
                              hash=None if r.hash is None else r.hash.hex(),
                              prev_hash=None if r.prev_hash is None else r.prev_hash.hex(), source=r.source,
                              reason=r.reason, detail=r.detail, recorded_at=r.recorded_at)


@router.get("/{device}/health", summary="Data health: last batch, backlog, gaps, clock skew, records by kind",
            response_model=HealthPublic, responses=_errors)
def get_health(conn: ConnDep, _staff: StaffDep, device: DeviceParam) -> HealthPublic:
    _known(conn, device)
    h = queries.health(conn, device)
    reported, desired = reported_status(conn, device), latest_config(conn, device)
    return HealthPublic(
        device_id=h.device_id, last_boot_epoch=h.last_boot_epoch, last_seq=h.last_seq,
        last_batch_created_at=h.last_batch_created_at, last_batch_received_at=h.last_batch_received_at,
        clock_skew_s=h.clock_skew_s, backlog_records=h.backlog_records, backlog_reported_at=h.backlog_reported_at,
        batches_committed=h.batches_committed, records_received=h.records_received,
        records_by_kind=h.records_by_kind, dropped_by_kind=h.dropped_by_kind, open_gaps=[_gap(g) for g in h.open_gaps],
        filled_gaps=[_gap(g) for g in h.filled_gaps], quarantined_by_kind=h.quarantined_by_kind,
        refused_batches=[_refused(r) for r in h.refused_batches],
        config_applied_version=reported.applied_version if reported else None,
        config_reported_at=reported.device_time if reported else None,
        config_desired_version=desired.version if desired else None)
