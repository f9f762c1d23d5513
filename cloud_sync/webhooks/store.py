"""Subscriptions and the delivery log, as staff manage them through the API."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud_sync.webhooks.tables import webhook_deliveries, webhook_subscriptions

#: Deliveries listed per page at most.
MAX_PAGE = 500
DELIVERY_STATES = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: float
    secret: str


def _subscription(row: Any) -> Subscription:
    return Subscription(row.id, row.url, list(row.event_types), row.description, bool(row.active), row.created_at,
                        row.secret)


def create_subscription(conn: Connection, url: str, event_types: Sequence[str], description: str | None = None,
                        now: float | None = None) -> Subscription:
    """A new subscription with a fresh secret (256 bits, URL-safe), shown to staff once."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    at = time.time() if now is None else now
    new_id = conn.execute(insert(webhook_subscriptions).values(
        url=url, secret=secret, event_types=sorted(set(event_types)), description=description, active=True,
        created_at=at).returning(webhook_subscriptions.c.id)).scalar_one()
    return Subscription(int(new_id), url, sorted(set(event_types)), description, True, at, secret)


def list_subscriptions(conn: Connection) -> list[Subscription]:
    return [_subscription(r) for r in conn.execute(select(webhook_subscriptions).order_by(webhook_subscriptions.c.id))]


def get_subscription(conn: Connection, sub_id: int) -> Subscription | None:
    row = conn.execute(select(webhook_subscriptions).where(webhook_subscriptions.c.id == sub_id)).first()
    return None if row is None else _subscription(row)


def deactivate(conn: Connection, sub_id: int) -> bool:
    """Stop a subscription (its queued deliveries stay, unsent, for the record)."""
    s = webhook_subscriptions.c
    return conn.execute(update(webhook_subscriptions).where(s.id == sub_id, s.active.is_(True))
                        .values(active=False)).rowcount == 1


def deliveries(conn: Connection, sub_id: int, state: str | None, after_id: int, limit: int) -> list[Any]:
    d = webhook_deliveries.c
    query = select(webhook_deliveries).where(d.subscription_id == sub_id, d.id > after_id)
    if state is not None:
        query = query.where(d.state == state)
    return list(conn.execute(query.order_by(d.id).limit(min(limit, MAX_PAGE))))


def get_delivery(conn: Connection, delivery_id: int) -> Any | None:
    return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)).first()
