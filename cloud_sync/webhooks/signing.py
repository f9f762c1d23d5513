"""``Fleet-Signature``: HMAC-SHA256 (RFC 2104, FIPS 180-4) over the timestamp and the exact body bytes.

Header: ``Fleet-Signature: t=<unix seconds>,v1=<hex digest>`` where the digest is
``HMAC-SHA256(secret, f"{t}.".encode() + body)``. Signing the timestamp with the body lets a receiver
refuse a captured request replayed later (``verify``'s ``tolerance_s``); ``v1`` names the scheme so a
future one can be sent alongside during a migration.
"""

from __future__ import annotations

import hashlib
import hmac

from edge_agent.errors import FleetError

SIGNATURE_HEADER = "Fleet-Signature"
#: A receiver accepts a signature at most this old (or this far in the future: clocks differ).
DEFAULT_TOLERANCE_S = 300.0


class SignatureError(FleetError):
    """A webhook request whose signature is missing, malformed, wrong or too old."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Fleet-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> int:
    """Check a ``Fleet-Signature`` header; returns its timestamp or raises ``SignatureError``."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER}: {header!r}")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} has no integer t=") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp {timestamp} is more than {tolerance_s:g} s from now")
    expected = _digest(secret, timestamp, body)
    # compare_digest: no timing hint about how much of a forged digest was right
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        raise SignatureError("signature does not match the body")
    return timestamp
