"""``UplinkSettings``: every limit and timing of the MQTT uplink, with its documented default.

Parsed from the ``[uplink]`` section of ``agent.toml`` by ``edge_agent.config``; tests build it
directly. Nothing here imports paho, so the config loader stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: MQTT keepalive (s): the broker drops a silent client after 1.5x this (MQTT v5 3.1.2.10).
DEFAULT_KEEPALIVE_S = 30
#: Session Expiry Interval (s) sent in CONNECT (MQTT v5 3.1.2.11.2): the broker keeps our
#: subscription and queued acks this long while we are offline. A week covers a long garage stay.
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
#: Batches published and not yet acked by the cloud; also paho's in-flight window.
DEFAULT_MAX_INFLIGHT = 4
#: Messages paho may hold (in flight + waiting for the window); a publish beyond it is refused.
DEFAULT_MAX_QUEUED = 16
#: Records per batch at most (the wire allows 100,000; a few thousand keep a retry cheap).
DEFAULT_MAX_BATCH_RECORDS = 5000
#: Sealed batch bytes at most; the broker's CONNACK Maximum Packet Size lowers it further.
DEFAULT_MAX_BATCH_BYTES = 256 * 1024
#: Seconds to wait for the cloud's ack of a published batch before its rows go back to pending.
DEFAULT_ACK_TIMEOUT_S = 60.0
#: A batch that would not be full waits this long after the previous one (fewer, larger batches).
DEFAULT_LINGER_S = 1.0
#: Reconnect backoff: exponential from the minimum, capped at the maximum, plus up to ``jitter``.
DEFAULT_RECONNECT_MIN_S = 0.5
DEFAULT_RECONNECT_MAX_S = 60.0
DEFAULT_RECONNECT_JITTER_S = 1.0
#: After a rejected batch, wait this long before sending again (a rejection is rarely transient).
DEFAULT_REJECT_BACKOFF_S = 30.0
#: How often the uplink appends a ``backlog_report`` record (records waiting in the outbox), which the
#: cloud keeps as the device's backlog in its data-health view; 0 turns the reports off.
DEFAULT_BACKLOG_REPORT_S = 300.0
#: Seconds to wait for CONNACK after the TCP (and TLS) connection is up.
DEFAULT_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Where the broker is, how to authenticate, and the uplink's bounds (see the DEFAULT_* above)."""

    host: str
    port: int = 1883
    #: Ed25519 private key (PEM, PKCS#8) that signs every batch.
    signing_key: Path | None = None
    #: TLS: a CA file turns TLS on; cert and key authenticate the device to the broker.
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keepalive_s: int = DEFAULT_KEEPALIVE_S
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    max_queued: int = DEFAULT_MAX_QUEUED
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S
    linger_s: float = DEFAULT_LINGER_S
    reconnect_min_s: float = DEFAULT_RECONNECT_MIN_S
    reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S
    reconnect_jitter_s: float = DEFAULT_RECONNECT_JITTER_S
    reject_backoff_s: float = DEFAULT_REJECT_BACKOFF_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    backlog_report_s: float = DEFAULT_BACKLOG_REPORT_S


def batch_topic(device_id: str) -> str:
    return f"fleet/v1/{device_id}/batch"


def ack_topic(device_id: str) -> str:
    return f"fleet/v1/{device_id}/ack"
