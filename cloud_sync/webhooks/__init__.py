"""Webhooks: staff subscribe an HTTPS endpoint to event types; the cloud delivers signed JSON, in order per
vehicle, retried with backoff, and keeps what never got through in a dead-letter list staff can replay.

- ``tables``: subscriptions and deliveries (the deliveries table is the durable queue).
- ``signing``: ``Fleet-Signature`` (HMAC-SHA256 over timestamp and body) and its verification.
- ``queue``: enqueue inside the caller's transaction, idempotent per (subscription, event key); the
  ingest hook that turns vehicles' events into webhook events atomically with storing them.
- ``dispatcher``: delivers due deliveries (one in flight per subscription and vehicle), backoff, dead letters.
- ``receiver``: a small HTTP receiver that verifies signatures, for integrators' tests and ours.
"""

from cloud_sync.webhooks.queue import EVENT_TYPES, IngestWebhooks, enqueue
from cloud_sync.webhooks.signing import SIGNATURE_HEADER, sign, verify

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "IngestWebhooks", "enqueue", "sign", "verify"]
