"""Deriving maintenance facts from stored vehicle events: meter readings and fault issues.

Runs without a manual step: every ingest path (``POST /v1/batches`` and the MQTT worker) runs
``MaintenanceHook`` in each batch's commit transaction (``cloud_sync.ingest.default_commit_hooks``),
inside savepoints, so the derived facts commit with the batch and a failure here rolls back only
itself and never rejects a verified batch. A batch with no event of ``DERIVED_KINDS`` costs a scan of
its record kinds and nothing else.

The job is idempotent: it handles events not yet in ``maintenance_processed``, in device-time order, and
marks each one in the same transaction. The ingest hook looks only at the events of the batch it commits
(late and out-of-order batches carry their own); ``derive_all`` (``POST /v1/maintenance/derive``) works
off every unmarked event of every vehicle (an anti-join, not a cursor), for a store filled before the
hook existed or events a failed run left unmarked. A duplicate batch adds no event. The device's row lock
(the one ingest takes) keeps two workers from deriving one vehicle at once.

=================  =============================================================================
event kind         becomes
=================  =============================================================================
meter              odometer and engine-hours readings (``meters.add_vehicle``)
idle_ended         an idle period added to the idle-hours meter (``meters.add_idle``)
dtc_appeared,      an occurrence of a fault issue, opening, counting or reopening it
fault_raised       (``faults.record_appearance``)
dtc_cleared,       the fault no longer active (``faults.record_clear``)
fault_cleared
=================  =============================================================================

An event whose payload does not say what is needed is marked ``skipped`` (logged, counted in the
report) rather than retried forever; one that makes the code raise is marked ``failed`` (logged with
its traceback) by a second, event-by-event pass, so an odd event never blocks the vehicle's later ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select
from sqlalchemy.exc import SQLAlchemyError

from cloud_sync.maintenance import faults, meters
from cloud_sync.maintenance.config import get_config
from cloud_sync.maintenance.errors import Invalid
from cloud_sync.maintenance.tables import maintenance_processed
from cloud_sync.store.devices import get_device, list_devices
from cloud_sync.store.schema import events

log = logging.getLogger(__name__)

METER_KIND, IDLE_KIND = "meter", "idle_ended"
DERIVED_KINDS = frozenset({METER_KIND, IDLE_KIND}) | faults.APPEARED_KINDS | faults.CLEARED_KINDS
#: Events handled per transaction; a larger backlog is worked off in several passes.
MAX_EVENTS_PER_PASS = 2_000
#: Bound on passes per call, so one vehicle's huge backlog cannot hold an ingest thread for long.
MAX_PASSES = 50
#: Longest idle period accepted from one event (a week): longer is a clock or detector fault.
MAX_IDLE_S = 7 * 86_400.0
_METER_FIELDS = ((meters.ODOMETER, "odometer_km", "odometer_source"),
                 (meters.ENGINE_HOURS, "engine_hours", "engine_hours_source"))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _meter(conn: Connection, device: str, rid: int, t: float, payload: dict[str, Any], now: float) -> str:
    outcomes = []
    for meter, key, source_key in _METER_FIELDS:
        value = _number(payload.get(key))
        if value is None:
            continue
        origin = payload.get(source_key) if isinstance(payload.get(source_key), str) else None
        reading = meters.add_vehicle(conn, device, meter, value, t, rid, origin, now)
        outcomes.append("reading_void" if reading.void else "reading")
    if not outcomes:
        return "skipped"
    return "reading_void" if "reading_void" in outcomes else "reading"


def _idle(conn: Connection, device: str, rid: int, t: float, payload: dict[str, Any], now: float) -> str:
    duration = _number(payload.get("duration_s"))
    if duration is None or not 0 <= duration <= MAX_IDLE_S:
        return "skipped"
    meters.add_idle(conn, device, duration / 3600.0, t, rid, now)
    return "idle"


def _usable(row: Any) -> bool:
    """Whether the event's payload carries what its kind needs (checked before any write)."""
    payload = row.payload
    if not isinstance(payload, dict):
        return False
    if row.kind == METER_KIND:
        return any(_number(payload.get(key)) is not None for _, key, _ in _METER_FIELDS)
    if row.kind == IDLE_KIND:
        duration = _number(payload.get("duration_s"))
        return duration is not None and 0 <= duration <= MAX_IDLE_S
    return faults.identity(row.kind, payload) is not None


def _one(conn: Connection, device: str, row: Any, reopen_within: int, now: float) -> str:
    payload = row.payload
    if row.kind == METER_KIND:
        return _meter(conn, device, row.record_id, row.device_time, payload, now)
    if row.kind == IDLE_KIND:
        return _idle(conn, device, row.record_id, row.device_time, payload, now)
    ident = faults.identity(row.kind, payload)
    if ident is None:
        return "skipped"
    if row.kind in faults.APPEARED_KINDS:
        return faults.record_appearance(conn, device, row.record_id, row.kind, row.device_time, payload, ident,
                                        reopen_within, now)
    return faults.record_clear(conn, device, row.device_time, payload, ident, now)


def _pending(conn: Connection, device: str, limit: int, record_ids: Sequence[int] | None) -> list[Any]:
    e, p = events.c, maintenance_processed.c
    query = (select(e.record_id, e.kind, e.device_time, e.payload)
             .outerjoin(maintenance_processed, and_(p.device_id == e.device_id, p.record_id == e.record_id))
             .where(e.device_id == device, e.kind.in_(sorted(DERIVED_KINDS)), p.record_id.is_(None)))
    if record_ids is not None:
        query = query.where(e.record_id.in_(record_ids))
    return list(conn.execute(query.order_by(e.device_time, e.record_id).limit(limit)).all())


def derive_pass(conn: Connection, device: str, now: float, limit: int = MAX_EVENTS_PER_PASS, *,
                locked: bool = False, record_ids: Sequence[int] | None = None) -> Counter[str]:
    """Handle up to ``limit`` unprocessed events of one vehicle in the caller's transaction; outcome counts.
    ``locked``: the caller holds the device's row lock already (ingest's commit transaction).
    ``record_ids``: only these events (the ones a batch carries), not the vehicle's whole history.

    All its writes happen in a savepoint: a failure leaves the caller's transaction as it was. The events
    are first handled together; if one of them raises, the pass is redone with a savepoint per event, so
    that only that event is marked (``skipped`` or ``failed``) and the others are derived."""
    if not locked and get_device(conn, device, for_update=True) is None:
        return Counter()
    try:
        with conn.begin_nested():
            return _pass(conn, device, now, limit, record_ids, guarded=False)
    except SQLAlchemyError:  # the store itself failed: the events stay unprocessed for the next run
        raise
    except Exception:
        with conn.begin_nested():
            return _pass(conn, device, now, limit, record_ids, guarded=True)


def _pass(conn: Connection, device: str, now: float, limit: int, record_ids: Sequence[int] | None, *,
          guarded: bool) -> Counter[str]:
    reopen_within = get_config(conn).reopen_within_trips
    report: Counter[str] = Counter()
    done: list[dict[str, Any]] = []
    for row in _pending(conn, device, limit, record_ids):
        if not _usable(row):
            log.warning("maintenance: event %s/%d (%s) does not carry what it needs; skipped", device,
                        row.record_id, row.kind)
            outcome = "skipped"
        elif guarded:
            outcome = _guarded(conn, device, row, reopen_within, now)
        else:
            outcome = _one(conn, device, row, reopen_within, now)
        report[outcome] += 1
        done.append({"device_id": device, "record_id": row.record_id, "outcome": outcome, "processed_at": now})
    if done:
        conn.execute(insert(maintenance_processed), done)
    return report


def _guarded(conn: Connection, device: str, row: Any, reopen_within: int, now: float) -> str:
    try:
        with conn.begin_nested():
            return _one(conn, device, row, reopen_within, now)
    except Invalid as exc:  # a value out of range in an otherwise well-formed payload
        log.warning("maintenance: event %s/%d (%s) skipped: %s", device, row.record_id, row.kind, exc)
        return "skipped"
    except SQLAlchemyError:
        raise
    except Exception:  # a bug on an odd payload: marked failed (the event itself stays stored), logged in full
        log.exception("maintenance: event %s/%d (%s) failed", device, row.record_id, row.kind)
        return "failed"


def derive_device(engine: Engine, device: str, now: float | None = None) -> Counter[str]:
    """Work off a vehicle's unprocessed events, one transaction per pass."""
    total: Counter[str] = Counter()
    for _ in range(MAX_PASSES):
        with engine.begin() as conn:
            report = derive_pass(conn, device, time.time() if now is None else now)
        total.update(report)
        if sum(report.values()) < MAX_EVENTS_PER_PASS:
            break
    return total


def derive_all(engine: Engine, now: float | None = None) -> dict[str, Counter[str]]:
    """Catch up every vehicle (after an outage of the hook, or on an old store); outcome counts per vehicle."""
    with engine.connect() as conn:
        ids = [d.id for d in list_devices(conn)]
    return {device: derive_device(engine, device, now) for device in ids}


class MaintenanceHook:
    """Ingest commit hook (``cloud_sync.ingest.default_commit_hooks``): derive the vehicle's new maintenance
    facts inside the batch's transaction, in a savepoint, so they commit with the batch while a failure
    here rolls back only the derivation (logged; its events stay unprocessed for the next run)."""

    def __call__(self, conn: Connection, batch: Any, received_at: float) -> None:
        body = getattr(batch, "body", None)  # wire.BatchColumns keeps kinds as a column; wire.Batch has records
        if body is not None:
            ids = [rid for rid, kind in zip(body.ids, body.kinds, strict=True) if kind in DERIVED_KINDS]
        else:
            ids = [r.id for r in batch.records if r.kind in DERIVED_KINDS]
        if not ids:
            return
        try:
            # Only this batch's events: the anti-join over the vehicle's whole history grew with every batch
            # (59 ms a batch at 2,400 stored events). Events a failed run left behind wait for derive_all.
            report = derive_pass(conn, batch.device_id, time.time(), locked=True, record_ids=ids,
                                 limit=max(len(ids), MAX_EVENTS_PER_PASS))
        except Exception:  # never fail (hence never reject) a verified batch over a maintenance bug
            log.exception("maintenance: deriving from batch %s/%d/%d failed; its events wait for the next run",
                          *batch.key)
            return
        if report:
            log.info("maintenance: batch %s/%d/%d: %s", *batch.key, dict(report))
