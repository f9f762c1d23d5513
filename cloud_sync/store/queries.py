"""Read side of the store for the staff API: vehicles, positions and events by time range, health.

Pages are ordered by ``(device_time, record_id)``, a total and stable order (record ids are unique
per device), and continue from a ``Cursor`` holding the last item's key, so rows that arrive late
(with an old device time) never shift a page the client has already read past.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, func, select, tuple_

from cloud_sync.store import refusals
from cloud_sync.store.devices import Device, list_devices
from cloud_sync.store.refusals import Refusal
from cloud_sync.store.schema import chain_gaps, device_health, events, positions, records

#: A device whose newest batch reached the cloud within this many seconds is "online".
ONLINE_WITHIN_S = 15 * 60
MAX_PAGE = 1000
MAX_GAPS_LISTED = 100


@dataclass(frozen=True, slots=True)
class Cursor:
    device_time: float
    record_id: int


@dataclass(frozen=True, slots=True)
class Position:
    record_id: int
    device_time: float
    lat: float
    lon: float
    speed_mps: float | None
    course_deg: float | None


@dataclass(frozen=True, slots=True)
class EventRow:
    record_id: int
    kind: str
    priority: int
    device_time: float
    payload: Any


@dataclass(frozen=True, slots=True)
class Vehicle:
    device: Device
    status: str  # "online" | "offline" | "never_seen" | "revoked"
    last_batch_received_at: float | None
    last_position: Position | None


@dataclass(frozen=True, slots=True)
class Gap:
    boot_epoch: int
    seq_from: int
    seq_to: int
    detected_at: float
    filled_at: float | None
    #: None when filled by data; else why its batches are not missing data (``store.refusals``).
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    device_id: str
    last_boot_epoch: int | None
    last_seq: int | None
    last_batch_created_at: float | None
    last_batch_received_at: float | None
    clock_skew_s: float | None
    backlog_records: int | None
    backlog_reported_at: float | None
    batches_committed: int
    records_received: int
    records_by_kind: dict[str, int]
    dropped_by_kind: dict[str, int]  # what the device's outbox evicted, from its drop reports
    open_gaps: list[Gap]
    filled_gaps: list[Gap]
    #: What the device set aside because the cloud refused it for its content, from its quarantine reports.
    quarantined_by_kind: dict[str, int] = field(default_factory=dict)
    #: Batches the cloud refused (authentic) or the device abandoned, newest first (``store.refusals``).
    refused_batches: list[Refusal] = field(default_factory=list)


def _position(row: Any) -> Position:
    return Position(row.record_id, row.device_time, row.lat, row.lon, row.speed_mps, row.course_deg)


def latest_position(conn: Connection, device_id: str) -> Position | None:
    p = positions.c
    row = conn.execute(select(positions).where(p.device_id == device_id)
                       .order_by(p.device_time.desc(), p.record_id.desc()).limit(1)).first()
    return None if row is None else _position(row)


def vehicles(conn: Connection, now: float) -> list[Vehicle]:
    last = dict(conn.execute(select(device_health.c.device_id, device_health.c.last_batch_received_at)).all())
    out = []
    for dev in list_devices(conn):
        seen = last.get(dev.id)
        if dev.revoked_at is not None:
            status = "revoked"
        elif seen is None:
            status = "never_seen"
        else:
            status = "online" if now - seen <= ONLINE_WITHIN_S else "offline"
        out.append(Vehicle(dev, status, seen, latest_position(conn, dev.id)))
    return out


def _page(query: Select[Any], table: Any, device_id: str, start: float | None, end: float | None,
          cursor: Cursor | None, limit: int) -> Select[Any]:
    c = table.c
    query = query.where(c.device_id == device_id)
    if start is not None:
        query = query.where(c.device_time >= start)
    if end is not None:
        query = query.where(c.device_time < end)
    if cursor is not None:
        query = query.where(tuple_(c.device_time, c.record_id) > tuple_(cursor.device_time, cursor.record_id))
    return query.order_by(c.device_time, c.record_id).limit(min(limit, MAX_PAGE) + 1)


def _split(items: list[Any], limit: int) -> tuple[list[Any], Cursor | None]:
    limit = min(limit, MAX_PAGE)
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, Cursor(items[-1].device_time, items[-1].record_id)


def position_page(conn: Connection, device_id: str, start: float | None, end: float | None,
                  cursor: Cursor | None, limit: int) -> tuple[list[Position], Cursor | None]:
    """Positions with ``start <= device_time < end`` after ``cursor``; the next cursor, or None at the end."""
    rows = conn.execute(_page(select(positions), positions, device_id, start, end, cursor, limit)).all()
    return _split([_position(r) for r in rows], limit)


def event_page(conn: Connection, device_id: str, kind: str | None, start: float | None, end: float | None,
               cursor: Cursor | None, limit: int) -> tuple[list[EventRow], Cursor | None]:
    query = select(events)
    if kind is not None:
        query = query.where(events.c.kind == kind)
    rows = conn.execute(_page(query, events, device_id, start, end, cursor, limit)).all()
    return _split([EventRow(r.record_id, r.kind, r.priority, r.device_time, r.payload) for r in rows], limit)


def _gaps(conn: Connection, device_id: str, filled: bool) -> list[Gap]:
    g = chain_gaps.c
    cond = g.filled_at.is_not(None) if filled else g.filled_at.is_(None)
    rows = conn.execute(select(chain_gaps).where(g.device_id == device_id, cond)
                        .order_by(g.detected_at.desc(), g.id.desc()).limit(MAX_GAPS_LISTED)).all()
    return [Gap(r.boot_epoch, r.seq_from, r.seq_to, r.detected_at, r.filled_at, r.explanation) for r in rows]


#: Kind of the edge outbox's eviction reports (``edge_agent.outbox.quota``): payload ``{"dropped": {kind: n}, ...}``.
DROP_REPORT_KIND = "drop_report"
#: Kind of its quarantine reports (``edge_agent.outbox.quarantine``): payload ``{"quarantined": {kind: n}, ...}``.
QUARANTINE_REPORT_KIND = "quarantine_report"


def _dropped(conn: Connection, device_id: str, kind: str = DROP_REPORT_KIND, key: str = "dropped") -> dict[str, int]:
    totals: dict[str, int] = {}
    for payload in conn.execute(select(events.c.payload).where(
            events.c.device_id == device_id, events.c.kind == kind)).scalars():
        dropped = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(dropped, dict):
            continue  # a report of another shape: still an event, just not summed
        for kind, n in dropped.items():
            if type(n) is int:
                totals[str(kind)] = totals.get(str(kind), 0) + n
    return dict(sorted(totals.items()))


def health(conn: Connection, device_id: str) -> Health:
    """Data health of one registered device (empty figures if it never sent a batch)."""
    row = conn.execute(select(device_health).where(device_health.c.device_id == device_id)).first()
    by_kind: dict[str, int] = {kind: int(n) for kind, n in conn.execute(
        select(records.c.kind, func.count()).where(records.c.device_id == device_id)
        .group_by(records.c.kind).order_by(records.c.kind))}
    open_gaps, filled_gaps = _gaps(conn, device_id, False), _gaps(conn, device_id, True)
    dropped = _dropped(conn, device_id)
    quarantined = _dropped(conn, device_id, QUARANTINE_REPORT_KIND, "quarantined")
    refused = refusals.listed(conn, device_id)
    if row is None:
        return Health(device_id, None, None, None, None, None, None, None, 0, 0, by_kind, dropped, open_gaps,
                      filled_gaps, quarantined, refused)
    return Health(device_id, row.last_boot_epoch, row.last_seq, row.last_batch_created_at,
                  row.last_batch_received_at, row.clock_skew_s, row.backlog_records, row.backlog_reported_at,
                  row.batches_committed, row.records_received, by_kind, dropped, open_gaps, filled_gaps, quarantined,
                  refused)
