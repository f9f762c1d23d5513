"""The device's signed notices of abandoned batches: so the cloud's chain gaps are only missing data.

Every published batch spends a sequence number that is never used again. The uplink mostly keeps the
chain whole by sending a batch again unchanged (no ack in time, refused by the broker, refused by the cloud
for a passing reason or for trust), and the cloud records the authentic batches it refuses for their
content or chain position. What is left: the rows of a published batch go out again under a later seq
without the cloud having refused it (a batch sealed with a key a rotation replaced, ``Uplink.close``, a
restart that finds rows in flight). The cloud would see a hole in the chain where nothing is missing; the
uplink says so instead: it appends a record of kind ``NOTICE_KIND`` to the outbox before it puts the
rows back (a power cut in between leaves the rows claimed, which the next start handles), so the notice
itself is stored, signed and sent like any record. There are at most a few per start or key rotation.
Its payload: ``{NOTICE_KEY: [item, ...]}``, an item being

- ``{"boot_epoch": e, "seq": s, "hash": "<hex>", "why": "ack_timeout"}``: that one batch, or
- ``{"boot_epoch": e, "seq_from": 0, "why": "restart"}``: after a restart that found rows in flight, every
  batch of the last run's epochs that the cloud lacks (the device no longer knows which it had sent).

The cloud records them (``cloud_sync.store.refusals``) and closes the gaps they explain.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.model import Priority, Record

#: Record kind of the notices (an event for the cloud, like drop and quarantine reports).
NOTICE_KIND = "abandoned_batches"
#: Payload key the cloud looks for (``cloud_sync.store.refusals.NOTICE_KEY``).
NOTICE_KEY = "abandoned_batches"
#: Epochs of one run named in the notice after a restart (a run draws a new epoch only on a chain refusal).
MAX_RUN_EPOCHS = 8


def abandoned(batches: Iterable[tuple[int, int, bytes]], why: str, now: float) -> Record:
    """A notice naming ``(boot_epoch, seq, hash)`` batches whose rows go out again in later batches."""
    return Record(NOTICE_KIND, Priority.EVENT, now, {NOTICE_KEY: [
        {"boot_epoch": epoch, "seq": seq, "hash": digest.hex(), "why": why} for epoch, seq, digest in batches]})


def epochs_abandoned(epochs: Iterable[int], now: float) -> Record:
    """After a restart: every batch of ``epochs`` the cloud lacks was abandoned (its rows were in flight)."""
    return Record(NOTICE_KIND, Priority.EVENT, now, {NOTICE_KEY: [
        {"boot_epoch": epoch, "seq_from": 0, "why": "restart"} for epoch in epochs]})
