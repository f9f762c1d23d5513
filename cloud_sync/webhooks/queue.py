"""Enqueueing webhook events, inside the transaction that makes them true.

``enqueue`` adds one delivery per active subscription to the event's type, ignoring one already queued
under the same ``event_key`` (so an event seen twice is delivered once). ``IngestWebhooks`` is the
ingest commit hook (``cloud_sync.ingest.Ingestor.commit_hooks``): the vehicle events of a committed batch
are queued in the same transaction that stores them, so a crash cannot keep one without the other.
Workflow modules (maintenance, compliance, reports) call ``enqueue`` for their own event types.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from cloud_sync.webhooks.tables import webhook_deliveries, webhook_subscriptions
from edge_agent.wire import BatchColumns

#: Event types staff can subscribe to, and what each means.
EVENT_TYPES: Mapping[str, str] = {
    "fault.opened": "a vehicle reported a new fault (DTC appeared) or a maintenance issue opened",
    "fault.closed": "a vehicle's fault cleared or a maintenance issue was resolved",
    "geofence.entered": "a vehicle entered a geofence",
    "geofence.exited": "a vehicle left a geofence",
    "idle": "an idle period ended (duration, fuel)",
    "inspection.failed": "a DVIR reported a defect affecting safe operation",
    "violation": "a driving-hours rule was violated",
    "report.ready": "a scheduled report is ready",
    "ping": "a test event sent on request",
}
#: Record kinds the edge sends (edge_agent.detection) that become webhook events.
RECORD_EVENTS: Mapping[str, str] = {
    "dtc_appeared": "fault.opened",
    "dtc_cleared": "fault.closed",
    "geofence_entered": "geofence.entered",
    "geofence_exited": "geofence.exited",
    "idle_ended": "idle",
}
#: How long the ingest hook trusts its list of subscriptions; a new subscription sees events within this.
SUBSCRIPTION_CACHE_S = 5.0


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> int:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(webhook_deliveries).on_conflict_do_nothing(
            constraint="webhook_deliveries_once")
    elif dialect == "sqlite":
        stmt = sqlite.insert(webhook_deliveries).on_conflict_do_nothing()
    else:  # pragma: no cover - the store runs on SQLite and PostgreSQL only
        raise NotImplementedError(dialect)
    # RETURNING lists only the rows inserted (a conflict returns nothing); executemany's rowcount is -1
    # on psycopg, so it cannot say how many were new.
    return len(conn.execute(stmt.returning(webhook_deliveries.c.id), rows).all())


def subscribers(conn: Connection) -> dict[str, list[int]]:
    """Active subscription ids by event type."""
    out: dict[str, list[int]] = {}
    s = webhook_subscriptions.c
    for sub_id, types in conn.execute(select(s.id, s.event_types).where(s.active.is_(True))):
        for event_type in types or []:
            out.setdefault(str(event_type), []).append(int(sub_id))
    return out


def enqueue(conn: Connection, event_type: str, device_id: str, event_key: str, occurred_at: float,
            payload: Mapping[str, object], *, now: float | None = None,
            subscriptions: Mapping[str, list[int]] | None = None) -> int:
    """Queue ``event_type`` for every active subscriber; returns the deliveries added (0 if already queued)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    subs = (subscriptions if subscriptions is not None else subscribers(conn)).get(event_type, [])
    if not subs:
        return 0
    at = time.time() if now is None else now
    rows = [{"subscription_id": sub, "event_type": event_type, "event_key": event_key, "device_id": device_id,
             "occurred_at": occurred_at, "payload": dict(payload), "state": "pending", "attempts": 0,
             "next_attempt_at": at, "created_at": at} for sub in subs]
    return _insert_ignoring_duplicates(conn, rows)


class IngestWebhooks:
    """Commit hook: queue the webhook events a committed batch carries (thread-safe)."""

    def __init__(self, cache_s: float = SUBSCRIPTION_CACHE_S) -> None:
        self.cache_s = cache_s
        self._subs: dict[str, list[int]] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = -float("inf")

    def __call__(self, conn: Connection, batch: BatchColumns, received_at: float) -> None:
        # Events are generic records; almost every batch has few or none: decide that without a query.
        body = batch.body
        hits = [(i, p) for i, p in zip(body.generic_index, body.generic, strict=True) if body.kinds[i] in RECORD_EVENTS]
        if not hits:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at > self.cache_s:
                self._subs, self._loaded_at = subscribers(conn), time.monotonic()
            subs = self._subs
        for i, payload in hits:
            kind, record_id = body.kinds[i], body.ids[i]
            data = {"kind": kind, "record_id": record_id, **payload}
            enqueue(conn, RECORD_EVENTS[kind], batch.device_id, f"record:{batch.device_id}:{record_id}",
                    body.timestamps[i], data, now=received_at, subscriptions=subs)
