"""Batches that never became part of the stored chain, and why: so a chain gap is only missing data.

A device spends a sequence number on every batch it publishes. Some of those batches never reach the
``batches`` table though their records are not missing:

- the cloud refused an authentic batch (signature verified) for its content or its place in the chain
  (``unstorable``, ``malformed``, ``chain_broken``...): ``cloud_sync.ingest`` records it here with
  ``source = 'cloud'`` (identity, hash, prev_hash, reason, time) in a transaction of its own;
- the device gave up on a batch and sent its rows again under a later seq (no ack in time, the broker
  or the cloud refused it for trust, a restart while it was in flight): the device says so in a signed
  notice, a record whose payload carries ``NOTICE_KEY`` (``edge_agent.uplink.notices``), recorded here
  with ``source = 'device'``. A notice may name one batch (``seq``, ``hash``) or, after a restart, every
  batch of an epoch from ``seq_from`` on that the cloud lacks (``seq_to`` NULL: the epoch's end).

``explain_gaps`` closes an open chain gap when every seq in it is stored or covered here: ``filled_at``
is set (the gap is no longer open, for every query that counts open gaps) and ``explanation`` says why
(``"refused: unstorable"``, ``"abandoned by the device: ack_timeout"``). A gap no row here covers stays
open: that is data the cloud has not seen and nobody has accounted for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    update,
)

from cloud_sync.store.schema import DeviceId, batches, chain_gaps, metadata
from edge_agent.wire import BatchColumns

log = logging.getLogger(__name__)

#: Payload key of the device's abandoned-batches notices (``edge_agent.uplink.notices.NOTICE_KEY``).
NOTICE_KEY = "abandoned_batches"
#: Items one notice may name; more are ignored (a device names a handful per notice).
MAX_NOTICE_ITEMS = 1_000
#: Longest reason or detail kept (a device's ``why`` is free text).
MAX_REASON = 64
MAX_DETAIL = 500
#: Refused and abandoned batches listed per device in the health API (newest first).
MAX_LISTED = 100

batch_refusals = Table(
    "batch_refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("boot_epoch", BigInteger, nullable=False),
    Column("seq_from", BigInteger, nullable=False),
    Column("seq_to", BigInteger),  # NULL: to the end of the epoch (a device's notice after a restart)
    Column("hash", LargeBinary(32)),  # of the refused or abandoned blob, when known
    Column("prev_hash", LargeBinary(32)),  # what the refused batch chained to (cloud refusals)
    Column("source", String(8), nullable=False),  # 'cloud' (refused at ingest) or 'device' (its notice)
    Column("reason", String(MAX_REASON), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("recorded_at", Double, nullable=False),
)
Index("batch_refusals_by_epoch", batch_refusals.c.device_id, batch_refusals.c.boot_epoch, batch_refusals.c.seq_from)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused (``source='cloud'``) or abandoned (``source='device'``) batch, or an epoch's tail."""

    boot_epoch: int
    seq_from: int
    seq_to: int | None
    hash: bytes | None
    prev_hash: bytes | None
    source: str
    reason: str
    detail: str
    recorded_at: float


def record(conn: Connection, device: str, refusal: Refusal) -> bool:
    """Store ``refusal`` unless the same one is stored (a redelivered batch is refused again); True if new.
    Then closes the gaps of its epoch it explains. Caller owns the transaction."""
    r = batch_refusals.c
    same = conn.execute(select(r.id).where(
        r.device_id == device, r.boot_epoch == refusal.boot_epoch, r.seq_from == refusal.seq_from,
        r.source == refusal.source,
        r.hash.is_(None) if refusal.hash is None else r.hash == refusal.hash,
        r.seq_to.is_(None) if refusal.seq_to is None else r.seq_to == refusal.seq_to).limit(1)).first()
    if same is not None:
        return False
    conn.execute(batch_refusals.insert().values(
        device_id=device, boot_epoch=refusal.boot_epoch, seq_from=refusal.seq_from, seq_to=refusal.seq_to,
        hash=refusal.hash, prev_hash=refusal.prev_hash, source=refusal.source, reason=refusal.reason[:MAX_REASON],
        detail=refusal.detail[:MAX_DETAIL], recorded_at=refusal.recorded_at))
    explain_gaps(conn, device, refusal.boot_epoch, refusal.recorded_at)
    return True


def _label(source: str, reason: str) -> str:
    return f"refused: {reason}" if source == "cloud" else f"abandoned by the device: {reason}"


def explain_gaps(conn: Connection, device: str, epoch: int, now: float) -> int:
    """Close the open gaps of ``(device, epoch)`` whose every seq is stored or refused/abandoned; returns
    how many were closed. Gaps are few and short, so this reads them whole."""
    g, r = chain_gaps.c, batch_refusals.c
    gaps = conn.execute(select(g.id, g.seq_from, g.seq_to).where(
        g.device_id == device, g.boot_epoch == epoch, g.filled_at.is_(None))).all()
    closed = 0
    for gap in gaps:
        notes = conn.execute(select(r.seq_from, r.seq_to, r.source, r.reason).where(
            r.device_id == device, r.boot_epoch == epoch, r.seq_from <= gap.seq_to,
            or_(r.seq_to.is_(None), r.seq_to >= gap.seq_from))).all()
        if not notes:
            continue
        stored = conn.execute(select(batches.c.seq).where(
            batches.c.device_id == device, batches.c.boot_epoch == epoch,
            and_(batches.c.seq >= gap.seq_from, batches.c.seq <= gap.seq_to))).scalars().all()
        spans = [(n.seq_from, gap.seq_to if n.seq_to is None else n.seq_to) for n in notes]
        if _covered(gap.seq_from, gap.seq_to, [*spans, *((s, s) for s in stored)]) < gap.seq_to - gap.seq_from + 1:
            continue
        explanation = "; ".join(sorted({_label(n.source, n.reason) for n in notes}))
        conn.execute(update(chain_gaps).where(g.id == gap.id).values(filled_at=now, explanation=explanation))
        closed += 1
    return closed


def _covered(lo: int, hi: int, spans: Iterable[tuple[int, int]]) -> int:
    """How many seqs of ``[lo, hi]`` the union of ``spans`` covers."""
    total, reach = 0, lo - 1
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in spans):
        if b <= reach or a > b:
            continue
        total += b - max(a, reach + 1) + 1
        reach = b
    return total


def notices_in(batch: BatchColumns) -> Iterator[Refusal]:
    """The abandoned batches a committed batch's notices name (malformed items are logged and skipped)."""
    times = batch.body.timestamps
    for i, payload in zip(batch.body.generic_index, batch.body.generic, strict=True):
        items = payload.get(NOTICE_KEY)
        if items is None:
            continue
        if not isinstance(items, list):
            log.warning("device %s: notice %r is not a list; skipped", batch.device_id, NOTICE_KEY)
            continue
        for item in items[:MAX_NOTICE_ITEMS]:
            refusal = _notice_item(item, float(times[i]))
            if refusal is None:
                log.warning("device %s: unreadable abandoned-batch item %r; skipped", batch.device_id, item)
            else:
                yield refusal


def _notice_item(item: Any, device_time: float) -> Refusal | None:
    if not isinstance(item, dict):
        return None
    epoch, seq, seq_from = item.get("boot_epoch"), item.get("seq"), item.get("seq_from")
    why = item.get("why", "abandoned")
    if type(epoch) is not int or not isinstance(why, str):
        return None
    if type(seq) is int:
        try:
            digest = bytes.fromhex(item["hash"]) if isinstance(item.get("hash"), str) else None
        except ValueError:
            return None
        return Refusal(epoch, seq, seq, digest, None, "device", why, "rows re-sent in later batches", device_time)
    if type(seq_from) is int:
        return Refusal(epoch, seq_from, None, None, None, "device", why,
                       f"every batch of the epoch from seq {seq_from} on that the cloud lacks; rows re-sent in "
                       "later batches", device_time)
    return None


def record_notices(conn: Connection, batch: BatchColumns, received_at: float) -> int:
    """Record the notices a batch being committed carries (stamped with the cloud's ``received_at``)."""
    n = 0
    for refusal in notices_in(batch):
        n += record(conn, batch.device_id, Refusal(
            refusal.boot_epoch, refusal.seq_from, refusal.seq_to, refusal.hash, None, refusal.source,
            refusal.reason, refusal.detail, received_at))
    return n


def listed(conn: Connection, device: str, limit: int = MAX_LISTED) -> list[Refusal]:
    """The device's refused and abandoned batches, newest first."""
    r = batch_refusals.c
    rows = conn.execute(select(batch_refusals).where(r.device_id == device)
                        .order_by(r.recorded_at.desc(), r.id.desc()).limit(limit)).all()
    return [Refusal(x.boot_epoch, x.seq_from, x.seq_to, None if x.hash is None else bytes(x.hash),
                    None if x.prev_hash is None else bytes(x.prev_hash), x.source, x.reason, x.detail, x.recorded_at)
            for x in rows]
