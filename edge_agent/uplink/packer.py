"""Claiming outbox rows and sealing them into one batch that fits the packet limit.

The claim's byte budget is the packet limit over the learned ratio of sealed bytes to outbox bytes
(``wire_ratio``, pessimistic at first: no compression). A batch that still comes out too big (or whose
body exceeds the wire's ``MAX_BODY_BYTES``) is halved, the other half released, and sealed again; a
single record too big on its own, or one the outbox took but the wire cannot carry, is counted and
removed so it cannot block the queue forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.counters import Counters
from edge_agent.outbox import Outbox, StoredRecord
from edge_agent.wire import Batch, InvalidRecord, WireRecord, seal

log = logging.getLogger(__name__)

#: Claim this fraction of the estimated byte budget, so the first seal nearly always fits.
BUDGET_MARGIN = 0.9

#: Builds the ``Batch`` of these records (the chain position and device come from the uplink).
BatchOf = Callable[[Sequence[WireRecord]], Batch]


class Packer:
    """Claims and seals one batch at a time; learns how much the wire compresses outbox bytes."""

    def __init__(self, outbox: Outbox, counters: Counters) -> None:
        self.outbox = outbox
        self.counters = counters
        self.wire_ratio = 1.0  # sealed bytes per outbox byte; starts pessimistic (no compression)

    def build(self, batch_of: BatchOf, key: Ed25519PrivateKey, limit: int, max_records: int
              ) -> tuple[bytes, list[int]] | None:
        """Claim up to ``max_records`` rows and seal them with ``key`` into at most ``limit`` bytes:
        ``(blob, row ids)``, or None if nothing is sendable."""
        budget = max(int(limit * BUDGET_MARGIN / self.wire_ratio), 1)
        rows = self.outbox.claim(max_records, max_bytes=budget)
        if not rows:
            return None
        records = self._to_wire(rows)
        sizes = {r.id: r.size for r in rows}
        while records:
            try:
                blob: bytes | None = seal(batch_of(records), key)
            except InvalidRecord:
                blob = None  # the body exceeds the wire's MAX_BODY_BYTES: split as for a big packet
            if blob is not None and len(blob) <= limit:
                outbox_bytes = sum(sizes[r.id] for r in records)
                observed = len(blob) / max(outbox_bytes, 1)
                # Move slowly towards smaller ratios and at once towards larger ones (splits are costly).
                self.wire_ratio = max(observed, 0.8 * self.wire_ratio + 0.2 * observed)
                return blob, [r.id for r in records]
            if len(records) == 1:
                self._drop_unsendable(records[0], blob, limit)
                return None
            if blob is not None:
                self.wire_ratio = max(self.wire_ratio, len(blob) / max(sum(sizes[r.id] for r in records), 1))
            keep = len(records) // 2
            self.outbox.release([r.id for r in records[keep:]])
            records = records[:keep]
            self.counters.inc("batches_split")
        return None

    def _to_wire(self, rows: list[StoredRecord]) -> list[WireRecord]:
        out: list[WireRecord] = []
        bad: list[int] = []
        for r in rows:
            try:
                out.append(WireRecord(r.id, r.kind, r.priority, r.timestamp, r.received_at, r.payload))
            except InvalidRecord as exc:
                # The outbox accepted it but the wire cannot carry it (a time beyond year 5138, a
                # 65-char kind): it would block the queue forever, so it is counted and removed.
                self.counters.decode_error("uplink_invalid_record")
                log.error("uplink: outbox row %d (%s) cannot be sent and is removed: %s", r.id, r.kind, exc)
                bad.append(r.id)
        if bad:
            self.outbox.delete(bad)
        return out

    def _drop_unsendable(self, record: WireRecord, blob: bytes | None, limit: int) -> None:
        size = "over MAX_BODY_BYTES" if blob is None else f"{len(blob)} bytes sealed"
        self.counters.decode_error("uplink_record_too_large")
        log.error("uplink: outbox row %d (%s) alone exceeds the packet limit %d (%s); removed",
                  record.id, record.kind, limit, size)
        self.outbox.delete([record.id])
