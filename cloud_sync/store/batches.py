"""Committing one verified batch: sequence window, hash chain, gaps, and the idempotent inserts.

``commit_batch`` runs inside the caller's transaction (one per batch) after the signature has been
verified, so everything here may trust the batch. Its decisions, in order:

1. The identity ``(device, boot_epoch, seq)`` is committed already: same hash -> ``duplicate``
   (nothing changes); another hash -> rejected ``seq_reused`` (a device bug or a stolen key).
2. Replay window: a seq whose predecessor is not stored, more than ``SEQ_WINDOW`` behind the newest
   committed one of its boot epoch, and not inside an open gap, is rejected ``replay`` (no legitimate
   sender is that far behind without the cloud having recorded the hole).
3. Chain, within a boot epoch: if batch ``seq - 1`` is stored its hash must equal ``prev_hash``, and if
   ``seq + 1`` is stored its ``prev_hash`` must equal this hash; otherwise rejected ``chain_broken``.
   Both directions are checked so that the outcome does not depend on arrival order.
4. Store the batch, its records (``records``, plus ``positions`` or ``events``) and device health.
5. Gaps. A missing predecessor opens a gap ``[lo, seq - 1]``, ``lo`` being one past the highest stored
   seq below in the epoch (just ``seq - 1`` if none: the epoch's start is unknown), unless ``prev_hash``
   is ``GENESIS_HASH`` or names a stored batch of another epoch (a new boot epoch continues the chain of
   the last one), or an open gap already covers ``seq - 1``. A gap is filled when every seq in it is
   stored, or, for an epoch-start gap, when the batch its successor names arrives from another epoch.
   It is closed as explained when every seq in it is stored or accounted for by a refusal the cloud
   recorded or a device's notice of abandoned batches (``store.refusals``); a batch carrying such notices
   records them.

With every batch of a valid stream delivered, in any order and any number of times, this ends in the
same records, batches and no open gap (tests/cloud_sync/test_ingest_properties.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, String, and_, bindparam, case, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError

from cloud_sync.store import refusals
from cloud_sync.store.bulk import store_batch_rows
from cloud_sync.store.rows import batch_rows, latest_backlog
from cloud_sync.store.schema import batches, chain_gaps, device_health, records
from edge_agent.wire import GENESIS_HASH, Batch, BatchColumns

#: How far (in batches) behind the newest committed seq of its epoch a batch may arrive. A device
#: sends about one batch per 5-300 s, so 100,000 batches is weeks of backlog reordered by retries.
SEQ_WINDOW = 100_000


try:  # the driver's own data errors escape SQLAlchemy's wrapping on the COPY path
    from psycopg import DataError as _PsycopgDataError

    _DATA_ERRORS: tuple[type[Exception], ...] = (DataError, _PsycopgDataError)
except ImportError:  # a SQLite-only install
    _DATA_ERRORS = (DataError,)


class UnstorableBatch(Exception):
    """The database refused a verified batch's values (PostgreSQL: a NUL character in a text or jsonb
    value). The caller's transaction must be rolled back; the batch is rejected ``unstorable``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """``status`` is an ``Ack`` status; ``reason`` says why a batch was rejected; ``stored`` counts records."""

    status: str
    reason: str = ""
    stored: int = 0
    gap_opened: bool = False


def _batch_row(conn: Connection, device: str, epoch: int, seq: int) -> Any:
    return conn.execute(select(batches.c.hash, batches.c.prev_hash).where(
        batches.c.device_id == device, batches.c.boot_epoch == epoch, batches.c.seq == seq)).first()


def stored_hash(conn: Connection, device: str, epoch: int, seq: int) -> bytes | None:
    """The hash of the committed batch with this identity, or None."""
    row = _batch_row(conn, device, epoch, seq)
    return None if row is None else bytes(row.hash)


def _open_gap_covering(conn: Connection, device: str, epoch: int, seq: int) -> Any:
    return conn.execute(select(chain_gaps.c.id, chain_gaps.c.seq_from, chain_gaps.c.seq_to).where(
        chain_gaps.c.device_id == device, chain_gaps.c.boot_epoch == epoch, chain_gaps.c.filled_at.is_(None),
        chain_gaps.c.seq_from <= seq, chain_gaps.c.seq_to >= seq)).first()


@functools.cache
def _probe_statement() -> Any:
    """The probe as one statement with bound parameters (built and compiled once, not per batch)."""
    b, g, r = batches.c, chain_gaps.c, records.c
    device, epoch = bindparam("device", type_=String), bindparam("epoch", type_=BigInteger)

    def at(column: Any, s: str) -> Any:
        return select(column).where(b.device_id == device, b.boot_epoch == epoch,
                                    b.seq == bindparam(s, type_=BigInteger)).scalar_subquery()

    return select(
        at(b.hash, "seq").label("existing_hash"), at(b.hash, "pred").label("pred_hash"),
        at(b.prev_hash, "succ").label("succ_prev_hash"),
        select(func.max(b.seq)).where(b.device_id == device, b.boot_epoch == epoch).scalar_subquery().label("newest"),
        exists().where(g.device_id == device, g.filled_at.is_(None)).label("gaps_open"),
        exists().where(r.device_id == device, r.record_id >= bindparam("lo", type_=BigInteger),
                       r.record_id <= bindparam("hi", type_=BigInteger)).label("any_stored"),
    )


def _probe(conn: Connection, batch: BatchColumns) -> Any:
    """Everything ``commit_batch`` reads before it writes, in one round trip (round trips, not rows,
    dominate a loaded server): this identity's hash, the predecessor's hash, the successor's
    ``prev_hash``, the epoch's newest seq, whether the device has an open gap, and whether any record
    id of the batch is stored already (``store.bulk`` then takes the conflict-handling path)."""
    device, epoch, seq = batch.key
    ids = batch.body.ids
    lo, hi = (min(ids), max(ids)) if len(ids) else (1, 0)
    return conn.execute(_probe_statement(), {"device": device, "epoch": epoch, "seq": seq, "pred": seq - 1,
                                             "succ": seq + 1, "lo": lo, "hi": hi}).one()


def commit_batch(conn: Connection, batch: Batch | BatchColumns, blob_hash: bytes, received_at: float,
                 window: int = SEQ_WINDOW) -> Outcome:
    """Decide and, if accepted, store ``batch`` (see the module docstring). Caller owns the transaction.

    Ingest passes ``BatchColumns`` (``edge_agent.wire.open_columns``: no object per record); a ``Batch``
    is turned into columns first."""
    if isinstance(batch, Batch):
        batch = BatchColumns.of(batch)
    device, epoch, seq = batch.key
    probe = _probe(conn, batch)
    if probe.existing_hash is not None:
        if bytes(probe.existing_hash) == blob_hash:
            return Outcome("duplicate")
        return Outcome("rejected", "seq_reused")
    pred, succ = probe.pred_hash, probe.succ_prev_hash
    # A batch chained to a stored predecessor is inside the known sequence, never a replay.
    if pred is None:
        newest = probe.newest
        if newest is not None and seq < newest - window and _open_gap_covering(conn, device, epoch, seq) is None:
            return Outcome("rejected", "replay")
    if pred is not None and bytes(pred) != batch.prev_hash:
        return Outcome("rejected", "chain_broken")
    if succ is not None and bytes(succ) != blob_hash:
        return Outcome("rejected", "chain_broken")

    batch_row = {"device_id": device, "boot_epoch": epoch, "seq": seq, "hash": blob_hash, "prev_hash": batch.prev_hash,
                 "created_at": batch.created_at, "received_at": received_at, "record_count": len(batch),
                 "schema_version": batch.schema_version}
    try:  # the batch row, its records and the health upsert: one round trip on PostgreSQL (store.bulk)
        store_batch_rows(conn, *batch_rows(batch, received_at), fresh=not probe.any_stored,
                         with_statements=((_BATCH_INSERT, batch_row),
                                          (_health_statement(conn.dialect.name), _health_row(batch, received_at))))
    except _DATA_ERRORS as exc:
        raise UnstorableBatch(str(exc).splitlines()[0]) from exc
    gap_opened = False
    if pred is None:
        gap_opened = _maybe_open_gap(conn, batch, received_at)
    if gap_opened or probe.gaps_open:  # (only this batch's own gap can have opened since the probe)
        _extend_gap_above(conn, device, epoch, seq, succ is not None)
        _fill_gaps(conn, batch, blob_hash, received_at)
        refusals.explain_gaps(conn, device, epoch, received_at)  # a refused or abandoned batch is no hole
    if batch.body.generic:  # the device's notices of batches it abandoned (store.refusals)
        refusals.record_notices(conn, batch, received_at)
    return Outcome("committed", stored=len(batch), gap_opened=gap_opened)


_BATCH_INSERT = batches.insert()
_HEALTH_VALUES = ("device_id", "last_boot_epoch", "last_seq", "last_batch_created_at", "last_batch_received_at",
                  "clock_skew_s", "backlog_records", "backlog_reported_at", "batches_committed", "records_received")


def _health_row(batch: BatchColumns, received_at: float) -> dict[str, Any]:
    backlog = latest_backlog(batch)
    return {"device_id": batch.device_id, "last_boot_epoch": batch.boot_epoch, "last_seq": batch.seq,
            "last_batch_created_at": batch.created_at, "last_batch_received_at": received_at,
            "clock_skew_s": received_at - batch.created_at,
            "backlog_records": None if backlog is None else backlog[1],
            "backlog_reported_at": None if backlog is None else backlog[0], "batches_committed": 1,
            "records_received": len(batch)}


@functools.cache
def _health_statement(dialect: str) -> Any:
    """One upsert: counters add up; "last batch" follows cloud arrival, backlog follows device time.
    Built once per dialect with bound parameters (``_health_row`` gives their values)."""
    h = device_health.c
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(device_health).values({name: bindparam(name, type_=h[name].type) for name in _HEALTH_VALUES})
    ex = stmt.excluded
    newer_batch = h.last_batch_received_at.is_(None) | (h.last_batch_received_at <= ex.last_batch_received_at)
    newer_backlog = ex.backlog_reported_at.is_not(None) & (
        h.backlog_reported_at.is_(None) | (h.backlog_reported_at <= ex.backlog_reported_at))
    update_set: dict[str, Any] = {
        "batches_committed": h.batches_committed + 1,
        "records_received": h.records_received + ex.records_received,
    }
    for name in ("last_boot_epoch", "last_seq", "last_batch_created_at", "last_batch_received_at", "clock_skew_s"):
        update_set[name] = case((newer_batch, getattr(ex, name)), else_=getattr(h, name))
    for name in ("backlog_records", "backlog_reported_at"):
        update_set[name] = case((newer_backlog, getattr(ex, name)), else_=getattr(h, name))
    return stmt.on_conflict_do_update(index_elements=[h.device_id], set_=update_set)


def _maybe_open_gap(conn: Connection, batch: BatchColumns, now: float) -> bool:
    device, epoch, seq = batch.key
    if seq == 0 or batch.prev_hash == GENESIS_HASH:
        return False
    linked = conn.execute(select(batches.c.boot_epoch).where(
        batches.c.device_id == device, batches.c.hash == batch.prev_hash, batches.c.boot_epoch != epoch)).first()
    if linked is not None or _open_gap_covering(conn, device, epoch, seq - 1) is not None:
        return False
    below = conn.execute(select(func.max(batches.c.seq)).where(
        batches.c.device_id == device, batches.c.boot_epoch == epoch, batches.c.seq < seq)).scalar()
    lo = seq - 1 if below is None else below + 1
    conn.execute(chain_gaps.insert().values(device_id=device, boot_epoch=epoch, seq_from=lo, seq_to=seq - 1,
                                            detected_at=now, filled_at=None))
    return True


def _extend_gap_above(conn: Connection, device: str, epoch: int, seq: int, succ_stored: bool) -> None:
    """An epoch-start gap ``[n-1, n-1]`` learns its real extent when a lower seq ``s`` arrives: ``[s+1, n-1]``."""
    if succ_stored:
        return
    above = conn.execute(select(func.min(batches.c.seq)).where(
        batches.c.device_id == device, batches.c.boot_epoch == epoch, batches.c.seq > seq)).scalar()
    if above is None:
        return
    g = chain_gaps.c
    conn.execute(update(chain_gaps).where(
        g.device_id == device, g.boot_epoch == epoch, g.filled_at.is_(None), g.seq_to == above - 1,
        g.seq_from > seq + 1).values(seq_from=seq + 1))


def _fill_gaps(conn: Connection, batch: BatchColumns, blob_hash: bytes, now: float) -> None:
    device, epoch, seq = batch.key
    g = chain_gaps.c
    candidates = conn.execute(select(g.id, g.seq_from, g.seq_to).where(
        g.device_id == device, g.boot_epoch == epoch, g.filled_at.is_(None),
        g.seq_from <= seq, g.seq_to >= seq)).all()
    for gap in candidates:
        stored = conn.execute(select(func.count()).select_from(batches).where(
            batches.c.device_id == device, batches.c.boot_epoch == epoch,
            batches.c.seq >= gap.seq_from, batches.c.seq <= gap.seq_to)).scalar()
        if stored == gap.seq_to - gap.seq_from + 1:
            conn.execute(update(chain_gaps).where(g.id == gap.id).values(filled_at=now))
    # Successors in other epochs that name this batch as their predecessor: their epoch-start gap was
    # the boot-epoch boundary, not a hole.
    successors = conn.execute(select(batches.c.boot_epoch, batches.c.seq).where(
        batches.c.device_id == device, batches.c.prev_hash == blob_hash, batches.c.boot_epoch != epoch)).all()
    for s in successors:
        conn.execute(update(chain_gaps).where(
            g.device_id == device, g.boot_epoch == s.boot_epoch, g.filled_at.is_(None),
            and_(g.seq_to == s.seq - 1, g.seq_from == s.seq - 1)).values(filled_at=now))
