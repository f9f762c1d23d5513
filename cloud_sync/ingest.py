"""The ingest pipeline: one sealed blob in, one ``Ack`` out; used by ``POST /v1/batches`` and the MQTT worker.

Checks run cheapest and least trusting first, and nothing is stored unless all pass:

1. read the header (``edge_agent.wire.read_header``): bad magic, unknown version, truncated, malformed;
2. the header's device is registered (``unknown_device``) and not revoked (``revoked``);
3. a blob whose SHA-256 equals the committed batch of its identity is a ``duplicate`` at once (the same
   bytes were verified when first committed; re-sends after a lost ack are common, decoding them is not);
4. the Ed25519 signature verifies with that device's key (``bad_signature``), then the body decodes;
5. in one write transaction holding the device's row lock: duplicate, replay window, chain
   (``cloud_sync.store.batches.commit_batch``), then every insert.

An authentic batch (signature verified) refused for its content or its place in the chain is recorded
(``store.refusals``): the chain gap its absence leaves is then explained, not open.

Each rejection is logged with its reason and counted in ``Metrics`` (``fleet_cloud_rejected_total``).
A blob whose header cannot be read has no trustworthy device id; its ack names ``UNREADABLE_DEVICE``
(a caller that knows the sender, such as the MQTT worker from its topic, may substitute it).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine

from cloud_sync.metrics import Metrics
from cloud_sync.store import refusals
from cloud_sync.store.batches import SEQ_WINDOW, UnstorableBatch, commit_batch, stored_hash
from cloud_sync.store.devices import get_device, retired_keys
from edge_agent.wire import Ack, BatchColumns, WireError, batch_hash, open_columns, read_header
from edge_agent.wire.sign import load_public_key_pem

log = logging.getLogger(__name__)

#: A commit hook: ``(conn, batch, received_at)``, run inside the batch's commit transaction.
CommitHook = Callable[[Connection, BatchColumns, float], None]
#: Ack device id for blobs whose header does not parse (matches ``wire.model.DEVICE_ID_RE``).
UNREADABLE_DEVICE = "-"
#: Rejection reason a caller answers when ``Ingestor.ingest`` raised (the store is down or unreachable).
STORE_UNAVAILABLE = "store_unavailable"


class Ingestor:
    """Verifies and stores sealed batches. Thread-safe; one per process is enough (share its ``metrics``)."""

    def __init__(self, engine: Engine, metrics: Metrics | None = None, seq_window: int = SEQ_WINDOW) -> None:
        self.engine = engine
        self.metrics = metrics if metrics is not None else Metrics()
        self.seq_window = seq_window
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}  # (device, PEM) -> parsed key
        self._keys_lock = threading.Lock()
        # The checks before decoding only read: on PostgreSQL, autocommit spares them a BEGIN and a
        # ROLLBACK, two of a batch's dozen round trips (round trips are what a loaded machine makes slow).
        self._read_options = {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}
        #: Called inside the transaction that commits a batch, after its rows are stored: what a hook
        #: writes commits or rolls back with the batch (``cloud_sync.webhooks.IngestWebhooks``).
        self.commit_hooks: list[CommitHook] = default_commit_hooks()

    def ingest(self, blob: bytes, received_at: float | None = None) -> Ack:
        """Verify and store one blob; never raises for bad input (the ack says what happened).

        Every ack carries the blob's SHA-256 (``Ack.batch_hash``): the device acts only on an ack for
        the very bytes it sent under that (epoch, seq), whatever the header says.
        """
        blob_hash = batch_hash(blob)
        return dataclasses.replace(self._ingest(blob, blob_hash, received_at), batch_hash=blob_hash)

    def _ingest(self, blob: bytes, blob_hash: bytes, received_at: float | None) -> Ack:
        now = time.time() if received_at is None else received_at
        self.metrics.inc("batches_received")
        self.metrics.inc("bytes_received", len(blob))
        try:
            header, _ = read_header(blob)
        except WireError as exc:
            return self._reject(UNREADABLE_DEVICE, 0, 0, exc.reason, exc.detail)
        except Exception as exc:  # bad input must never crash a worker; a wire bug is logged in full
            log.exception("reading a batch header failed")
            return self._reject(UNREADABLE_DEVICE, 0, 0, "undecodable", repr(exc))
        ident = (header.device_id, header.boot_epoch, header.seq)
        with self.engine.connect().execution_options(**self._read_options) as conn:
            device = get_device(conn, header.device_id)
            committed = None if device is None else stored_hash(conn, *ident)
        if device is None:
            return self._reject(*ident, "unknown_device", "not registered")
        if device.revoked_at is not None:
            return self._reject(*ident, "revoked", f"since {device.revoked_at}")
        if committed == blob_hash:
            return self._duplicate(ident)
        try:
            key = self._public_key(device.id, device.public_key_pem)
        except (ValueError, UnicodeEncodeError) as exc:  # the registry is wrong, not the device
            return self._reject(*ident, "bad_key", str(exc))
        try:
            batch = open_columns(blob, lambda _device_id: key)  # records stay columns down to the store
        except WireError as exc:
            if exc.reason == "bad_signature":  # sealed before the device rotated its key? (store.devices)
                return self._open_with_retired_key(blob, blob_hash, header.created_at, ident, exc, now)
            return self._refused(ident, header.prev_hash, blob_hash, exc.reason, exc.detail, now)
        except Exception as exc:  # bad input must never crash a worker; a wire bug is logged in full
            log.exception("opening batch %s/%d/%d failed", *ident)
            return self._refused(ident, header.prev_hash, blob_hash, "undecodable", repr(exc), now)
        return self._commit(batch, blob_hash, now)

    def _open_with_retired_key(self, blob: bytes, blob_hash: bytes, created_at: float, ident: tuple[str, int, int],
                               refusal: WireError, now: float) -> Ack:
        """A batch the current key does not verify, sealed (device clock) no later than a key rotation: tried
        with the keys retired by it, so batches in the outbox or in flight during the change are not lost."""
        with self.engine.connect() as conn:
            keys = retired_keys(conn, ident[0], created_at)
        for retired in keys:
            try:
                key = self._public_key(ident[0], retired.public_key_pem)
                batch = open_columns(blob, lambda _device_id, k=key: k)  # type: ignore[misc]
            except WireError as exc:
                if exc.reason == "bad_signature":
                    continue
                return self._refused(ident, None, blob_hash, exc.reason, exc.detail, now)
            except Exception as exc:  # bad input must never crash a worker
                log.exception("opening batch %s/%d/%d failed", *ident)
                return self._refused(ident, None, blob_hash, "undecodable", repr(exc), now)
            return self._commit(batch, blob_hash, now)
        return self._reject(*ident, refusal.reason, refusal.detail)

    def _commit(self, batch: BatchColumns, blob_hash: bytes, now: float) -> Ack:
        try:
            return self._commit_once(batch, blob_hash, now)
        except UnstorableBatch as exc:  # rolled back: deterministic, so a retry would fail the same way
            return self._refused(batch.key, batch.prev_hash, blob_hash, "unstorable", str(exc), now)

    def _commit_once(self, batch: BatchColumns, blob_hash: bytes, now: float) -> Ack:
        with self.engine.begin() as conn:
            # Row lock: one device's batches commit in turn across workers (the chain checks read then write).
            device = get_device(conn, batch.device_id, for_update=True)
            if device is None or device.revoked_at is not None:  # revoked between the checks above and now
                outcome_reason = "unknown_device" if device is None else "revoked"
                conn.rollback()
                return self._reject(*batch.key, outcome_reason, "changed during ingest")
            outcome = commit_batch(conn, batch, blob_hash, now, self.seq_window)
            if outcome.status == "rejected":
                conn.rollback()
            elif outcome.status == "committed":
                for hook in self.commit_hooks:
                    hook(conn, batch, now)
        if outcome.status == "rejected":  # the chain checks (seq_reused, replay, chain_broken)
            return self._refused(batch.key, batch.prev_hash, blob_hash, outcome.reason, "", now)
        if outcome.status == "duplicate":
            return self._duplicate(batch.key)
        self.metrics.inc("batches_committed")
        self.metrics.inc("records_stored", outcome.stored)
        if outcome.gap_opened:
            self.metrics.inc("gaps_opened")
            log.warning("chain gap before batch %s/%d/%d", *batch.key)
        return Ack(*batch.key, "committed", stored=outcome.stored)

    def invalidate_hooks(self) -> None:
        """Configuration the commit hooks cache changed (a webhook subscription was added or stopped)."""
        for hook in self.commit_hooks:
            invalidate = getattr(hook, "invalidate", None)
            if invalidate is not None:
                invalidate()

    def _duplicate(self, ident: tuple[str, int, int]) -> Ack:
        self.metrics.inc("batches_duplicate")
        log.info("duplicate batch %s/%d/%d", *ident)
        return Ack(*ident, "duplicate")

    def _public_key(self, device_id: str, pem: str) -> Ed25519PublicKey:
        with self._keys_lock:
            key = self._keys.get((device_id, pem))
            if key is None:
                key = self._keys[(device_id, pem)] = load_public_key_pem(pem.encode("ascii"))
            return key

    def _refused(self, ident: tuple[str, int, int], prev_hash: bytes | None, blob_hash: bytes, reason: str,
                 detail: str, now: float) -> Ack:
        """Reject an authentic batch (its signature verified) and record the refusal (``store.refusals``), so
        a chain gap its absence causes reads as explained. Recording is best effort: the ack goes out anyway."""
        try:
            with self.engine.begin() as conn:
                get_device(conn, ident[0], for_update=True)  # one device's chain changes in turn
                refusals.record(conn, ident[0], refusals.Refusal(ident[1], ident[2], ident[2], blob_hash, prev_hash,
                                                                 "cloud", reason, detail, now))
        except Exception:  # the store is failing: the refusal still stands, only its record is missing
            log.exception("recording the refusal of batch %s/%d/%d failed", *ident)
        return self._reject(*ident, reason, detail)

    def _reject(self, device_id: str, boot_epoch: int, seq: int, reason: str, detail: str) -> Ack:
        self.metrics.rejected(reason)
        log.warning("rejected batch %s/%d/%d: %s %s", device_id, boot_epoch, seq, reason, detail)
        return Ack(device_id, boot_epoch, seq, "rejected", reason=reason)


def default_commit_hooks() -> list[CommitHook]:
    """What every ingest path runs in its commit transaction: queue the batch's webhook events; derive
    meter readings and fault issues (``cloud_sync.maintenance.derive``, in a savepoint of its own)."""
    from cloud_sync.maintenance.derive import MaintenanceHook
    from cloud_sync.webhooks import IngestWebhooks

    return [IngestWebhooks(), MaintenanceHook()]


def unavailable_ack(blob: bytes) -> Ack:
    """The ``store_unavailable`` rejection of ``blob``, for callers whose ``ingest`` raised: the device
    keeps the rows and sends them again after its backoff instead of waiting out its ack timeout."""
    try:
        header, _ = read_header(blob)
        ident = (header.device_id, header.boot_epoch, header.seq)
    except Exception:  # an unreadable header is answered under UNREADABLE_DEVICE
        ident = (UNREADABLE_DEVICE, 0, 0)
    return Ack(*ident, "rejected", reason=STORE_UNAVAILABLE, batch_hash=batch_hash(blob))
