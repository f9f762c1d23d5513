"""What the uplink does with each reason the cloud gives for rejecting a batch: one table, one line each.

A rejected batch falls in one of four classes (``RejectClass``):

- ``CONTENT``: the records themselves cannot be stored or read, so sending them again would be refused
  again, forever. The uplink narrows the batch down (halves it until the refused rows stand alone),
  moves the refused rows to the outbox's quarantine and reports them to the cloud; the next batches flow.
- ``TRUST``: the cloud does not trust this device (unknown, revoked, wrong key). The records are fine and
  the device may be re-enrolled or its key rotated: keep every row, back off, log loudly.
- ``CHAIN``: the cloud and the device disagree about the batch numbering (a restored outbox, a reset
  cloud): keep the rows, start a fresh boot epoch and send them again.
- ``TRANSIENT``: a passing condition (the store is down) or one that is not the records' fault (the
  envelope did not arrive as sealed, a cloud too old for our format): keep the rows, back off, retry.

A reason missing from the table (a newer cloud) is ``TRANSIENT``: rows are never quarantined on a reason
we do not understand. ``tests/edge_agent/uplink/test_rejects.py`` checks that every reason the cloud
documents (``cloud_sync.metrics.REJECT_REASONS``) is classified here.
"""

from __future__ import annotations

import enum


class RejectClass(enum.Enum):
    CONTENT = "content"
    TRUST = "trust"
    CHAIN = "chain"
    TRANSIENT = "transient"


C, T, H, X = RejectClass.CONTENT, RejectClass.TRUST, RejectClass.CHAIN, RejectClass.TRANSIENT

#: Reason (``edge_agent.wire.REASONS`` and ``cloud_sync.metrics.REJECT_REASONS``) -> class, and why.
REJECT_CLASSES: dict[str, RejectClass] = {
    # The body was verified as ours, then refused for what it holds: the same records fail again.
    "malformed": C,  # signed body that does not parse: our encoder wrote these records wrongly
    "invalid_record": C,  # a record the format cannot carry (a time or value out of range)
    "undecodable": C,  # decoding these bytes raised: a wire bug tied to these records
    "unstorable": C,  # the database refuses a value (PostgreSQL: NUL in text): deterministic
    "decompression_bomb": C,  # the body inflates past the cloud's limit: too much in one batch (halving helps)
    "too_large": C,  # the sealed batch exceeds the cloud's size limit: too much in one batch (halving helps)
    # Who sent it, not what it says: a re-enrolment or key rotation fixes these; the records are kept.
    "unknown_device": T,  # not registered (yet): provisioning may catch up
    "revoked": T,  # revoked: staff may re-enrol the vehicle; its data stays on board until then
    "bad_signature": T,  # signed with a key the cloud does not hold for us (rotated on one side only)
    "bad_key": T,  # the cloud's registry holds an unusable key for us: fixed in the cloud
    # Numbering: the cloud has seen this (epoch, seq) or its neighbours differently; a new epoch fixes it.
    "seq_reused": H,  # another batch under our (epoch, seq): an outbox restored from a backup
    "chain_broken": H,  # prev_hash differs from what the cloud stored: same cause
    "replay": H,  # seq far behind the cloud's newest of the epoch: a reset on one side
    # Not about the records: the same rows in a fresh envelope, later, will do.
    "store_unavailable": X,  # the cloud's store raised (down, failing over)
    "bad_magic": X,  # our encoder writes the magic from a constant: the bytes changed on the way
    "truncated": X,  # our encoder writes whole envelopes: the bytes were cut on the way
    "unknown_version": X,  # the cloud predates our format version: it will be upgraded, keep the data
    "wrong_media_type": X,  # HTTP only (a client header), never the MQTT uplink's answer
    "bad_ack": X,  # an ack reason, never a batch's; listed so the table covers every wire reason
}


def classify(reason: str) -> RejectClass:
    """The class of a rejection reason; unknown reasons are ``TRANSIENT`` (never quarantine blindly)."""
    return REJECT_CLASSES.get(reason, RejectClass.TRANSIENT)
