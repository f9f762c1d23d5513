"""``Uplink``: claims outbox rows, seals them into chained batches, publishes them, and deletes rows on ack.

Driven by the daemon thread (``tick``); it never blocks and is the only place the uplink touches
SQLite. Each tick:

1. handles the transport's events: a PUBACK with a failure reason code (>= 0x80, say 0x87 "not
   authorised") puts the batch's rows back to pending, counted and logged; a successful PUBACK only
   notes that the broker has the batch. The cloud's ``Ack`` decides, and only an ack whose
   ``batch_hash`` is the hash of the batch sent under its (epoch, seq): any other (an ack from an
   older cloud without a hash, an ack for other bytes) is counted, logged and ignored, and the rows
   leave again after the ack timeout. ``committed`` or ``duplicate`` deletes the rows; ``rejected``
   is handled by the reason's class (``rejects``): refused content is narrowed down by halving the
   batch until the refused rows stand alone, which go to the outbox's quarantine (reported to the
   cloud, counted) while the next batches flow; a chain refusal puts the rows back and starts a new
   boot epoch (the cloud recorded both refusals, ``cloud_sync.store.refusals``); a passing or trust
   refusal keeps the rows claimed and publishes the same sealed blob again after a pause. The pause
   is ``reject_backoff_s``, doubling on each further rejection up to ``REJECT_BACKOFF_MAX_FACTOR``
   times it (a rejection for trust, such as a revoked device, is logged as an error);
2. publishes again, unchanged, the batches whose ack has not come within ``ack_timeout_s``, refused by
   the broker (PUBACK) or by paho's full queue (if the first copy did arrive, the ack says "duplicate");
3. while connected and fewer than ``max_inflight`` batches await an ack, claims and publishes another.

Same bytes under the same (epoch, seq) is no seq reuse, and it keeps the cloud's chain whole. Where the
rows of a published batch do go out under a later seq without the cloud having refused it (a batch sealed
with a replaced key, ``close``, a restart that finds rows in flight), a signed notice naming the abandoned
batches goes first (``notices``), so the cloud's chain gaps are only data nobody accounted for.

Order and size. ``Outbox.claim`` returns the highest priority first, then the oldest, so after a
long outage the backlog drains oldest-first while each batch first takes whatever faults, events or
drop reports arrived since the last one. A batch holds up to ``max_batch_records``: with a backlog
every batch is full, live traffic leaves in small batches at most every ``linger_s``. Its sealed size
stays within ``max_batch_bytes`` and the broker's Maximum Packet Size (from CONNACK); ``packer`` claims
and seals it within that limit.

Signing. Each batch is sealed with ``signing.SigningKey``'s key for that batch: after ``fleet-provision
rotate-key`` it switches to the new key at the next batch boundary, without a restart (sealing waits while
the rotation is under way). A ``bad_signature`` rejection of a batch sealed with a key since replaced is
expected (an old-key batch the cloud could not place before the rotation): its rows leave again at once
with the new key, without the trust pause.

Every ``backlog_report_s`` the uplink appends a ``backlog_report`` record (``Priority.EVENT``, so it
overtakes a backlog of positions) whose ``backlog_records`` the cloud shows as the device's backlog.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.counters import Counters
from edge_agent.errors import OutboxError
from edge_agent.model import Priority, Record
from edge_agent.outbox import Outbox
from edge_agent.uplink import notices
from edge_agent.uplink.identity import STATE_KEY, ChainState
from edge_agent.uplink.packer import Packer
from edge_agent.uplink.rejects import RejectClass, classify
from edge_agent.uplink.settings import UplinkSettings, batch_topic
from edge_agent.uplink.signing import SigningKey
from edge_agent.uplink.transport import AckMessage, Connected, Disconnected, Event, PubAck, Transport
from edge_agent.wire import Batch, WireError, WireRecord, batch_hash, decode_ack

log = logging.getLogger(__name__)

#: MQTT v5 reason codes from 0x80 up are failures (OASIS MQTT 5.0, 2.4 "Reason Code").
REASON_FAILURE = 0x80
#: Bytes of a PUBLISH packet besides topic and payload: fixed header (up to 5), topic length (2),
#: packet id (2), property length (1+), with room to spare for the properties paho may add.
PUBLISH_OVERHEAD = 32
#: Kind of the backlog reports; ``backlog_records`` is the key the cloud reads (cloud_sync.store.batches).
BACKLOG_REPORT_KIND = "backlog_report"
#: Consecutive rejections (other than for content) double the pause up to this many reject_backoff_s.
REJECT_BACKOFF_MAX_FACTOR = 32


@dataclass(slots=True)
class InFlight:
    """A published batch waiting for the cloud's ack."""

    key: tuple[int, int]  # (boot_epoch, seq)
    ids: list[int]
    mid: int
    sent_at: float
    hash: bytes  # batch_hash of the sealed blob: the ack must name it
    narrowed: bool = False  # sent at a narrowed size after a content rejection
    pubacked: bool = False
    key_generation: int = 0  # SigningKey.generation of the key that sealed it
    blob: bytes = b""  # the sealed bytes: a passing refusal sends them again unchanged
    resend_at: float | None = None  # refused for a passing reason: publish ``blob`` again at this time


class Uplink:
    """Store-and-forward from an ``Outbox`` to the cloud over a ``Transport`` (``MqttTransport``)."""

    def __init__(self, outbox: Outbox, transport: Transport, private_key: Ed25519PrivateKey | SigningKey,
                 device_id: str, settings: UplinkSettings, counters: Counters | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.transport = transport
        self.device_id = device_id
        self.settings = settings
        self.counters = counters if counters is not None else Counters()
        #: A bare key is fixed; a ``SigningKey`` with a path follows the key file (rotation).
        self.signer = private_key if isinstance(private_key, SigningKey) else SigningKey(private_key, None,
                                                                                          self.counters)
        self.wall_clock = wall_clock
        self.topic = batch_topic(device_id)
        last_run = self.outbox.get_state(STATE_KEY) or {}
        # (a state written before the notices existed names only its last epoch)
        previous = last_run.get("run_epochs", [last_run["boot_epoch"]] if "boot_epoch" in last_run else None)
        self._run_epochs: list[int] = []  # epochs drawn by this process (named after a crash: ``notices``)
        self.chain = self._new_epoch()
        if getattr(outbox, "reset_on_open", 0) and isinstance(previous, list) and previous:
            # The last run died with batches in flight: the cloud may lack some; their rows go out again.
            self.outbox.append([notices.epochs_abandoned([e for e in previous if isinstance(e, int)],
                                                         self.wall_clock())])
        self._inflight: dict[tuple[int, int], InFlight] = {}
        self._by_mid: dict[int, tuple[int, int]] = {}
        self._broker_max_packet: int | None = None
        self.packer = Packer(outbox, self.counters)
        self._last_sent = -math.inf
        self._hold_until = -math.inf
        self._next_report: float | None = None  # set on the first tick: the first report one interval in
        self._rejections = 0  # consecutive rejections other than for content (the pause doubles)
        #: Records per batch while narrowing down refused content (None: ``max_batch_records``).
        self._narrow_to: int | None = None

    def _new_epoch(self) -> ChainState:
        """Draw a boot epoch and persist it before any batch of it leaves (see ``identity``)."""
        state = self.outbox.get_state(STATE_KEY) or {}
        last = state.get("boot_epoch")
        chain = ChainState.fresh(last if isinstance(last, int) else None, self.wall_clock())
        self._run_epochs = [*self._run_epochs, chain.boot_epoch][-notices.MAX_RUN_EPOCHS:]
        self.outbox.put_state(STATE_KEY, {"boot_epoch": chain.boot_epoch, "started_at": self.wall_clock(),
                                          "run_epochs": self._run_epochs})
        log.info("uplink %s: boot epoch %d", self.device_id, chain.boot_epoch)
        return chain

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.transport.start()

    def close(self) -> None:
        """Stop the transport and put unacked rows back to pending (a restart would do it too)."""
        self.transport.close()
        pending = list(self._inflight.values())
        self._inflight.clear()
        self._by_mid.clear()
        if pending:
            try:
                self._give_up(pending, "shutdown")
            except OutboxError as exc:
                log.warning("uplink: releasing %d rows at close failed (the next start resets them): %s",
                            sum(len(b.ids) for b in pending), exc)

    @property
    def packet_limit(self) -> int:
        """Largest sealed batch we may publish now."""
        limit = self.settings.max_batch_bytes
        if self._broker_max_packet is not None:
            limit = min(limit, self._broker_max_packet - PUBLISH_OVERHEAD - len(self.topic.encode()))
        return max(limit, 1)

    @property
    def batch_records(self) -> int:
        """Records per batch now: ``max_batch_records``, or less while narrowing down refused content."""
        return self.settings.max_batch_records if self._narrow_to is None else self._narrow_to

    def status(self) -> dict[str, object]:
        quarantined = self.outbox.quarantined()
        return {"connected": self.transport.connected, "boot_epoch": self.chain.boot_epoch,
                "next_seq": self.chain.seq, "in_flight_batches": len(self._inflight),
                "awaiting_resend": sum(b.resend_at is not None for b in self._inflight.values()),
                "in_flight_records": sum(len(b.ids) for b in self._inflight.values()),
                "packet_limit": self.packet_limit, "batch_records": self.batch_records,
                "quarantined_records": quarantined.rows, "quarantined_bytes": quarantined.bytes,
                "signing_key": self.signer.fingerprint[:16]}

    # -- the tick ----------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """One round of events, timeouts and sends. ``now`` is ``time.monotonic()`` seconds."""
        t = time.monotonic() if now is None else now
        try:
            for event in self.transport.poll():
                self._handle(event, t)
            self._expire(t)
            self._resend(t)
            self._report_backlog(t)
            self._send(t)
        except OutboxError as exc:
            # The daemon keeps recording; the rows stay where they are and the next tick tries again.
            self.counters.inc("uplink_outbox_errors")
            log.error("uplink: outbox error, will retry: %s", exc)

    def _handle(self, event: Event, now: float) -> None:
        if isinstance(event, AckMessage):
            self._on_ack(event.payload, now)
        elif isinstance(event, PubAck):
            self._on_puback(event)
        elif isinstance(event, Connected):
            self._broker_max_packet = event.max_packet_size
        elif isinstance(event, Disconnected):
            log.debug("uplink: disconnected (%s); %d batches await acks", event.reason, len(self._inflight))

    def _on_puback(self, event: PubAck) -> None:
        key = self._by_mid.pop(event.mid, None)
        batch = self._inflight.get(key) if key is not None else None
        if batch is None:
            return  # a batch already given up on (ack timeout) finally reached the broker
        if event.reason_code < REASON_FAILURE:
            batch.pubacked = True
            return
        batch.resend_at = -math.inf  # the broker did not take it: the same blob goes again on the next tick
        self.counters.inc("puback_failures")
        log.warning("uplink: broker refused batch %d/%d (%d records): PUBACK 0x%02X %s; rows kept, sending it again",
                    *batch.key, len(batch.ids), event.reason_code, event.reason)

    def _on_ack(self, payload: bytes, now: float) -> None:
        try:
            ack = decode_ack(payload)
        except WireError as exc:
            self.counters.decode_error("uplink_bad_ack")
            log.warning("uplink: unreadable ack (%s)", exc)
            return
        batch = self._inflight.get((ack.boot_epoch, ack.seq)) if ack.device_id == self.device_id else None
        if batch is None:
            # Stale (an earlier boot epoch, a batch given up on) or repeated: its rows are handled elsewhere.
            self.counters.inc("acks_unmatched")
            return
        if ack.batch_hash != batch.hash:
            # Not an answer about the rows we sent under this number: acting on it could delete or
            # quarantine rows the cloud never saw. The batch waits for its own ack or its timeout.
            self.counters.inc("acks_without_hash" if ack.batch_hash is None else "acks_hash_mismatch")
            log.warning("uplink: %s ack for batch %d/%d names %s, not the batch sent (%s); ignored, rows kept",
                        ack.status, *batch.key,
                        "no hash (a cloud older than ack v2)" if ack.batch_hash is None else ack.batch_hash.hex()[:16],
                        batch.hash.hex()[:16])
            return
        del self._inflight[batch.key]
        self._by_mid.pop(batch.mid, None)
        if ack.releases_rows:
            self.outbox.delete(batch.ids)
            self.counters.inc("batches_committed")
            self.counters.inc("records_uplinked", len(batch.ids))
            self._rejections = 0
            if batch.narrowed and self._narrow_to is not None:
                # Past the refused rows (or they went into quarantine): widen again step by step.
                self._narrow_to *= 2
                if self._narrow_to >= self.settings.max_batch_records:
                    self._narrow_to = None
            return
        self.counters.inc("batches_rejected")
        reject_class = classify(ack.reason)
        if reject_class is RejectClass.CONTENT:
            self._on_refused_content(batch, ack.reason)
            return
        if ack.reason == "bad_signature":
            self.signer.refresh()  # the refusal may be the first sign of a rotation that just finished
        if ack.reason == "bad_signature" and batch.key_generation != self.signer.generation:
            # Sealed with the key a rotation replaced, after the rotation time: the rows go again now,
            # in a new batch sealed with the new key (nothing is signed twice with different keys).
            self._give_up([batch], "refused: bad_signature (replaced key)")
            self.counters.inc("rejects_old_key")
            log.info("uplink: batch %d/%d was sealed with the replaced signing key; its %d records go again "
                     "with the new one", *batch.key, len(batch.ids))
            return
        self._rejections += 1
        pause = self.settings.reject_backoff_s * min(2 ** min(self._rejections - 1, 30), REJECT_BACKOFF_MAX_FACTOR)
        self._hold_until = now + pause
        if reject_class is not RejectClass.CHAIN:
            # Transient or trust: nothing of it was stored and the records are fine, so the same sealed blob
            # goes again after the pause (same epoch, seq and bytes: no hole in the chain, and a refusal
            # that lasts adds nothing to the outbox); its rows stay claimed meanwhile.
            batch.resend_at = self._hold_until
            self._inflight[batch.key] = batch
            if reject_class is RejectClass.TRUST:
                self.counters.inc("rejects_not_trusted")
                log.error("uplink: THE CLOUD DOES NOT TRUST THIS DEVICE (%s): batch %d/%d (%d records) refused. "
                          "Re-enrol the device or register its current signing key; rows kept, sending again in "
                          "%.0f s", ack.reason, *batch.key, len(batch.ids), pause)
                return
            log.error("uplink: cloud refused batch %d/%d (%d records) for now: %s; sending the same batch again "
                      "in %.0f s", *batch.key, len(batch.ids), ack.reason, pause)
            return
        self.outbox.release(batch.ids)  # the cloud recorded the refusal (store.refusals): no notice needed
        log.error("uplink: cloud rejected batch %d/%d (%d records): %s; rows kept, sending again in %.0f s",
                  *batch.key, len(batch.ids), ack.reason, pause)
        if reject_class is RejectClass.CHAIN and batch.key[0] == self.chain.boot_epoch:
            self.chain = self._new_epoch()

    def _on_refused_content(self, batch: InFlight, reason: str) -> None:
        """The cloud will never take these rows as they are: find the refused ones, quarantine them."""
        if len(batch.ids) > 1:
            # Which rows? Send them again in halves (they are the oldest of their priority, so the next
            # claims take them first); a half the cloud takes widens the batches again. The cloud recorded
            # the refusal of this authentic batch (store.refusals), so its seq is no hole.
            self.outbox.release(batch.ids)
            half = len(batch.ids) // 2
            self._narrow_to = half if self._narrow_to is None else min(self._narrow_to, half)
            self.counters.inc("batches_narrowed")
            log.warning("uplink: cloud refused batch %d/%d (%d records) for its content (%s); "
                        "sending them again %d per batch to find the refused ones",
                        *batch.key, len(batch.ids), reason, self._narrow_to)
            return
        moved = self.outbox.quarantine(batch.ids, reason, *batch.key)
        self.counters.inc("batches_quarantined")
        log.error("uplink: cloud refused outbox row %d for its content (%s, batch %d/%d): %d row(s) quarantined "
                  "and reported to the cloud", batch.ids[0], reason, *batch.key, moved)

    def _give_up(self, spent: list[InFlight], why: str) -> None:
        """These batches' rows go out again in later batches: the notice first (``notices``), then the rows."""
        if not spent:
            return
        self.outbox.append([notices.abandoned([(*b.key, b.hash) for b in spent], why, self.wall_clock())])
        self.outbox.release([i for b in spent for i in b.ids])
        self.counters.inc("batches_abandoned", len(spent))

    def _resend(self, now: float) -> None:
        """Publish again, unchanged, the batches refused for a passing reason whose pause is over."""
        for b in [b for b in self._inflight.values() if b.resend_at is not None and now >= b.resend_at]:
            if not self.transport.connected:
                return
            mid = self.transport.publish(self.topic, b.blob)
            if mid is None:
                b.resend_at = now + self.settings.reject_backoff_s
                self.counters.inc("publish_refused")
                return
            b.mid, b.sent_at, b.resend_at, b.pubacked = mid, now, None, False
            self._by_mid[mid] = b.key
            self.counters.inc("batches_resent")

    def _report_backlog(self, now: float) -> None:
        interval = self.settings.backlog_report_s
        if interval <= 0:
            return
        if self._next_report is None:
            self._next_report = now + interval
        if now < self._next_report:
            return
        self._next_report = now + interval
        in_flight = sum(len(b.ids) for b in self._inflight.values())
        self.outbox.append([Record(BACKLOG_REPORT_KIND, Priority.EVENT, self.wall_clock(), {
            "backlog_records": self.outbox.depth(), "in_flight_records": in_flight,
            "boot_epoch": self.chain.boot_epoch, "next_seq": self.chain.seq})])

    def _expire(self, now: float) -> None:
        late = [b for b in self._inflight.values()
                if b.resend_at is None and now - b.sent_at >= self.settings.ack_timeout_s]
        for b in late:
            self._by_mid.pop(b.mid, None)
            b.resend_at = now  # the same blob again: if the first one did arrive, the cloud answers "duplicate"
            self.counters.inc("ack_timeouts")
            log.warning("uplink: no ack for batch %d/%d within %.0f s (broker had it: %s); sending it again",
                        *b.key, self.settings.ack_timeout_s, b.pubacked)

    def _send(self, now: float) -> None:
        s = self.settings
        while self.transport.connected and len(self._inflight) < s.max_inflight and now >= self._hold_until:
            pending = self.outbox.depth() - sum(len(b.ids) for b in self._inflight.values())
            if pending <= 0:
                return
            if pending < self.batch_records and now - self._last_sent < s.linger_s:
                return  # not a full batch yet: let it grow a little
            created = self.wall_clock()  # before the key check: see signing.SigningKey
            key = self.signer.for_batch(now)
            if key is None:
                return  # a signing key rotation is under way
            built = self.packer.build(partial(self._batch, created=created), key, self.packet_limit,
                                      self.batch_records)
            if built is None:
                return
            blob, ids = built
            ident = (self.chain.boot_epoch, self.chain.seq)
            blob_hash = batch_hash(blob)
            mid = self.transport.publish(self.topic, blob)
            # The sequence number is spent even when the publish is refused: MQTT clients may still
            # deliver a message they reported as failed. Its ack then names a number no rows travel
            # under (and a hash no batch has), never the rows of another batch.
            self.chain.advance(blob_hash)
            sent = InFlight(ident, ids, mid or 0, now, blob_hash, narrowed=self._narrow_to is not None,
                            key_generation=self.signer.generation, blob=blob)
            self._inflight[ident] = sent
            if mid is None:  # paho's queue is full: the same blob goes again after a pause
                sent.resend_at = now + s.reject_backoff_s
                self.counters.inc("publish_refused")
                return
            self._by_mid[mid] = ident
            self._last_sent = now
            self.counters.inc("batches_sent")

    def _batch(self, records: Sequence[WireRecord], created: float) -> Batch:
        """The next batch of the chain, holding ``records``."""
        return Batch(self.device_id, self.chain.boot_epoch, self.chain.seq, self.chain.prev_hash, created,
                     tuple(records))
