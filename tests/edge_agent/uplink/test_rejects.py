"""Every reason the cloud may give for a rejection has a class on the device (one table, rejects.py)."""

from __future__ import annotations

from cloud_sync.ingest import STORE_UNAVAILABLE
from cloud_sync.metrics import REJECT_REASONS
from edge_agent.uplink.rejects import REJECT_CLASSES, RejectClass, classify
from edge_agent.wire import REASONS


def test_every_documented_reason_is_classified() -> None:
    assert set(REASONS) | set(REJECT_REASONS) | {STORE_UNAVAILABLE} <= set(REJECT_CLASSES)


def test_classes_of_the_reasons_that_matter() -> None:
    assert {r for r, c in REJECT_CLASSES.items() if c is RejectClass.TRUST} == {
        "unknown_device", "revoked", "bad_signature", "bad_key"}
    assert {r for r, c in REJECT_CLASSES.items() if c is RejectClass.CHAIN} == {"seq_reused", "chain_broken", "replay"}
    assert classify("unstorable") is classify("malformed") is RejectClass.CONTENT
    assert classify(STORE_UNAVAILABLE) is RejectClass.TRANSIENT
    # A reason from a newer cloud is never taken as refused content (rows would leave the queue).
    assert classify("reason_from_the_future") is RejectClass.TRANSIENT
