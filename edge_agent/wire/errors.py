"""Errors of the wire format: one class, a machine-readable ``reason`` per failure mode.

The cloud's ingest counts rejected batches by ``reason`` (the same way the edge counts decode errors),
so every reason here is documented in ``REASONS``.
"""

from __future__ import annotations

from edge_agent.errors import FleetError

REASONS: dict[str, str] = {
    "bad_magic": "The blob does not start with the wire magic (not a batch, or not ours).",
    "unknown_version": "The envelope's format version has no registered decoder.",
    "truncated": "The blob ends before its header, body or signature does.",
    "unknown_device": "No public key is known for the device id named in the header.",
    "bad_signature": "The Ed25519 signature does not verify over the envelope (tampered, or wrong key).",
    "decompression_bomb": "The body declares or inflates to more than MAX_BODY_BYTES, or more than it declared.",
    "malformed": "A signed envelope whose header or body does not parse (an encoder bug, never silent).",
    "invalid_record": "A record or batch the encoder refuses (non-finite time, non-JSON-like payload, ...).",
    "bad_ack": "An ack document that is not valid JSON of the ack schema.",
}


class WireError(FleetError):
    """A batch or ack could not be sealed, opened or decoded; ``reason`` is a key of ``REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class VerificationError(WireError):
    """A received blob was rejected before its records were trusted (magic, version, signature, size)."""


class InvalidRecord(WireError):
    """The sender handed the encoder something the format cannot carry; nothing was sealed."""

    def __init__(self, detail: str) -> None:
        super().__init__("invalid_record", detail)
