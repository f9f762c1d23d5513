"""Webhook tables (created by migration ``webhooks``): subscriptions and the deliveries queue.

A delivery is one event for one subscription. ``(subscription_id, event_key)`` is unique, so an event
enqueued twice (a batch re-sent after a lost ack, a re-run derivation) is delivered once. ``device_id``
is the ordering key: per subscription, a vehicle's deliveries go out one at a time in ``id`` order.
States: ``pending`` (waiting or retrying), ``delivered``, ``dead`` (gave up; staff may replay).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Double, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from cloud_sync.store.schema import DeviceId, metadata

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),  # HMAC key: must be kept in clear to sign
    Column("event_types", JSON, nullable=False),  # list of EVENT_TYPES names
    Column("description", String(200)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Double, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("event_key", String(200), nullable=False),
    Column("device_id", DeviceId, nullable=False),  # "" for fleet-wide events (reports)
    Column("occurred_at", Double, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double, nullable=False),
    Column("lease_until", Double),
    Column("last_error", Text),
    Column("last_status", Integer),
    Column("created_at", Double, nullable=False),
    Column("delivered_at", Double),
    UniqueConstraint("subscription_id", "event_key", name="webhook_deliveries_once"),
)
Index("webhook_deliveries_queue", webhook_deliveries.c.state, webhook_deliveries.c.subscription_id,
      webhook_deliveries.c.device_id, webhook_deliveries.c.id)
