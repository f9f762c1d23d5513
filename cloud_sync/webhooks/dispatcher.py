"""Delivering queued webhooks: signed POSTs, one in flight per (subscription, vehicle), backoff, dead letters.

A delivery is due when it is ``pending``, its ``next_attempt_at`` has come, and it is the oldest pending
delivery of its subscription and vehicle: a vehicle's events arrive in the order they were queued, and
a receiver that fails one event holds back that vehicle's later ones (not other vehicles'). Before
sending, a dispatcher takes a lease on the row (a conditional UPDATE), so two dispatchers never send
the same delivery at once. A 2xx answer is success; anything else, a timeout or a refused connection
is a failed attempt, retried after ``backoff_s``; after ``max_attempts`` the delivery is ``dead`` and the
next one of that vehicle goes. ``replay`` puts a dead delivery back in the queue.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, and_, func, select, update

from cloud_sync.store.schema import devices
from cloud_sync.webhooks.signing import SIGNATURE_HEADER, sign
from cloud_sync.webhooks.tables import webhook_deliveries, webhook_subscriptions

log = logging.getLogger(__name__)

#: First retry after this many seconds, doubling per attempt up to ``BACKOFF_CAP_S``, plus up to 25 % jitter
#: (so receivers recovering from an outage are not hit by every sender at the same instant).
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
#: Attempts before a delivery is dead: 30 s doubling to the 1 h cap gives about 8.5 h of retries.
MAX_ATTEMPTS = 12
#: A receiver must answer within this (connect + read).
REQUEST_TIMEOUT_S = 10.0
#: A lease outlives the longest request, so a crashed dispatcher's rows are retried, never sent twice at once.
LEASE_S = REQUEST_TIMEOUT_S * 3
#: Queue heads fetched per round, and sends per ``run_once`` at most (the loop then sleeps ``interval_s``
#: only if nothing was delivered, so a backlog drains at full speed).
BATCH = 100
MAX_PER_PASS = 1000
#: Stored error text is cut to this.
MAX_ERROR_CHARS = 500


def backoff_s(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S,
              rng: random.Random | None = None) -> float:
    """Delay after failed attempt number ``attempt`` (1-based)."""
    delay = min(base * 2 ** (attempt - 1), cap)
    return delay * (1.0 + 0.25 * (rng or random).random())


@dataclass(frozen=True)
class PassResult:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


class Dispatcher:
    """Sends due deliveries. ``run_once`` for one pass; ``start``/``stop`` for a background thread."""

    def __init__(self, engine: Engine, *, client: httpx.Client | None = None, max_attempts: int = MAX_ATTEMPTS,
                 backoff_base_s: float = BACKOFF_BASE_S, backoff_cap_s: float = BACKOFF_CAP_S,
                 interval_s: float = 1.0) -> None:
        self.engine = engine
        self.client = client if client is not None else httpx.Client(timeout=REQUEST_TIMEOUT_S)
        self.max_attempts = max_attempts
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: float, limit: int = BATCH) -> list[Any]:
        d, s = webhook_deliveries.c, webhook_subscriptions.c
        heads = (select(func.min(d.id)).where(d.state == "pending")
                 .group_by(d.subscription_id, d.device_id).scalar_subquery())
        query = (select(d.id, d.subscription_id, d.event_type, d.event_key, d.device_id, d.occurred_at, d.payload,
                        d.attempts, s.url, s.secret, devices.c.vin)
                 .join(webhook_subscriptions, s.id == d.subscription_id)
                 .outerjoin(devices, devices.c.id == d.device_id)
                 .where(d.id.in_(heads), d.next_attempt_at <= now, s.active.is_(True),
                        (d.lease_until.is_(None)) | (d.lease_until < now))
                 .order_by(d.id).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def run_once(self, now: float | None = None) -> PassResult:
        """Deliver what is due at ``now``: rounds of queue heads until a round sends nothing (a delivered
        or dead head makes its vehicle's next delivery the head), at most ``MAX_PER_PASS`` sends."""
        at = time.time() if now is None else now
        delivered = failed = dead = sent = 0
        while sent < MAX_PER_PASS:
            progressed = False
            for row in self.due(at, min(BATCH, MAX_PER_PASS - sent)):
                if not self._lease(row.id, at):
                    continue
                sent += 1
                ok, status, error = self._send(row, at)
                if ok:
                    delivered += 1
                    progressed = True
                    self._finish(row.id, "delivered", row.attempts + 1, status, None, at, delivered_at=at)
                elif row.attempts + 1 >= self.max_attempts:
                    dead += 1
                    progressed = True
                    log.warning("webhook %d (%s to subscription %d) is dead after %d attempts: %s", row.id,
                                row.event_type, row.subscription_id, row.attempts + 1, error)
                    self._finish(row.id, "dead", row.attempts + 1, status, error, at)
                else:
                    failed += 1
                    retry = at + backoff_s(row.attempts + 1, self.backoff_base_s, self.backoff_cap_s)
                    self._finish(row.id, "pending", row.attempts + 1, status, error, retry)
            if not progressed:
                break
        return PassResult(delivered, failed, dead)

    def _lease(self, delivery_id: int, now: float) -> bool:
        d = webhook_deliveries.c
        with self.engine.begin() as conn:
            got = conn.execute(update(webhook_deliveries).where(
                and_(d.id == delivery_id, d.state == "pending",
                     (d.lease_until.is_(None)) | (d.lease_until < now))).values(lease_until=now + LEASE_S))
        return got.rowcount == 1

    def _send(self, row: Any, now: float) -> tuple[bool, int | None, str | None]:
        body = json.dumps({
            "id": row.event_key, "type": row.event_type, "occurred_at": row.occurred_at,
            "device_id": row.device_id or None, "vin": row.vin, "delivery": row.id, "attempt": row.attempts + 1,
            "data": row.payload,
        }, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(row.secret, int(now), body),
                   "Fleet-Event-Type": row.event_type, "Fleet-Event-Id": row.event_key}
        try:
            answer = self.client.post(row.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if 200 <= answer.status_code < 300:
            return True, answer.status_code, None
        return False, answer.status_code, f"HTTP {answer.status_code}: {answer.text}"[:MAX_ERROR_CHARS]

    def _finish(self, delivery_id: int, state: str, attempts: int, status: int | None, error: str | None,
                next_at: float, delivered_at: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
                state=state, attempts=attempts, last_status=status, last_error=error, next_attempt_at=next_at,
                lease_until=None, delivered_at=delivered_at))

    # -- background thread -----------------------------------------------------------------------

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_S + 5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
            except Exception:  # the store may be down; keep trying, never die silently
                log.exception("webhook dispatch pass failed")
                result = PassResult()
            if not result.delivered:
                self._stop.wait(self.interval_s)


def replay(engine: Engine, delivery_id: int, now: float | None = None) -> bool:
    """Put a dead delivery back in the queue (attempts reset); False if it is not dead."""
    d = webhook_deliveries.c
    at = time.time() if now is None else now
    with engine.begin() as conn:
        got = conn.execute(update(webhook_deliveries).where(d.id == delivery_id, d.state == "dead").values(
            state="pending", attempts=0, next_attempt_at=at, lease_until=None, last_error=None))
    return got.rowcount == 1
