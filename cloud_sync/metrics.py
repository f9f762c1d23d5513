"""Ingest metrics: counters by documented name, rendered as Prometheus text or JSON at ``GET /metrics``.

Like the edge's ``Counters``, every name is documented (``METRIC_DOCS``), rejections are counted per
reason (``REJECT_REASONS``, which extends the wire's ``REASONS`` with the cloud's own), and an
undocumented reason is still counted under its own label so a new failure mode is never lost.
"""

from __future__ import annotations

import threading
from collections import Counter

from edge_agent.wire import REASONS

METRIC_DOCS: dict[str, str] = {
    "batches_received": "Blobs handed to the ingest (MQTT or HTTP), whatever became of them.",
    "batches_committed": "Batches verified and stored in one transaction.",
    "batches_duplicate": "Batches already committed (same identity and hash); nothing changed, acked again.",
    "batches_rejected": "Batches rejected before anything was stored; by reason in fleet_cloud_rejected_total.",
    "records_stored": "Records of committed batches (a record re-sent in a later batch is counted again).",
    "gaps_opened": "Chain gaps recorded: a batch arrived whose predecessor had not (see store.batches).",
    "bytes_received": "Bytes of blobs handed to the ingest.",
}

REJECT_REASONS: dict[str, str] = {
    **REASONS,
    "revoked": "The device is registered but revoked: its batches are refused from the revocation on.",
    "replay": "A seq further than SEQ_WINDOW behind the newest of its boot epoch and in no open gap.",
    "seq_reused": "A different batch under an identity (device, boot_epoch, seq) already committed.",
    "chain_broken": "prev_hash does not match the stored predecessor (or the stored successor does not match us).",
    "bad_key": "The public key PEM registered for the device does not load (fix the registry, not the device).",
    "undecodable": "Decoding raised something other than a WireError: a wire bug, logged with its traceback.",
    "unstorable": "The database refused a verified batch's values (PostgreSQL: NUL in a text/jsonb value).",
    "wrong_media_type": "An HTTP body not sent as application/octet-stream (not read).",
    "too_large": "The HTTP body exceeds the configured batch size limit.",
    "store_unavailable": "The store raised while ingesting (down, unreachable); the device sends the rows again.",
}

PREFIX = "fleet_cloud_"


class Metrics:
    """Thread-safe counters (the HTTP server and an MQTT worker may share one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._counts["batches_rejected"] += 1
            self._rejected[reason] += 1

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def rejections(self) -> dict[str, int]:
        with self._lock:
            return dict(self._rejected)

    def snapshot(self) -> dict[str, object]:
        """Every documented counter (zeros included) plus rejections by reason, as plain JSON."""
        with self._lock:
            counts: dict[str, object] = {name: self._counts[name] for name in METRIC_DOCS}
            counts.update({k: v for k, v in self._counts.items() if k not in METRIC_DOCS})
            counts["rejected"] = dict(sorted(self._rejected.items()))
        return counts

    def prometheus(self) -> str:
        """Prometheus text exposition format 0.0.4: HELP/TYPE lines, counters ending in ``_total``."""
        with self._lock:
            lines: list[str] = []
            for name, doc in METRIC_DOCS.items():
                metric = f"{PREFIX}{name}_total"
                lines += [f"# HELP {metric} {doc}", f"# TYPE {metric} counter", f"{metric} {self._counts[name]}"]
            metric = f"{PREFIX}rejected_total"
            lines += [f"# HELP {metric} Batches rejected, by reason (documented in cloud_sync.metrics).",
                      f"# TYPE {metric} counter"]
            for reason, n in sorted(self._rejected.items()):
                label = reason.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{metric}{{reason="{label}"}} {n}')
        return "\n".join(lines) + "\n"
