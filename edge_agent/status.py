"""The daemon's status file and ``fleet-agent status``.

The daemon rewrites ``status.json`` atomically (write to a temporary file, fsync, rename) every
status interval; ``fleet-agent status`` reads it and says plainly when it is stale, which means the
daemon is stopped or stuck.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

#: A status older than this many status intervals is reported as stale.
STALE_AFTER_INTERVALS = 5


def write_status(path: Path, status: dict[str, object]) -> None:
    """Replace ``path`` with ``status`` as JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(status, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, object]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a status object")
    return data


def format_status(status: dict[str, object], now: float | None = None) -> str:
    """A person's view of a status dict, with a staleness verdict first."""
    now = time.time() if now is None else now
    written = float(status.get("written_at", 0.0))  # type: ignore[arg-type]
    interval = float(status.get("status_interval_s", 1.0))  # type: ignore[arg-type]
    age = now - written
    state = "running" if age <= STALE_AFTER_INTERVALS * interval else f"STALE ({age:.0f} s old: stopped or stuck)"
    counters = status.get("counters", {})
    assert isinstance(counters, dict)
    errors = counters.get("decode_errors", {})
    assert isinstance(errors, dict)
    outbox = status.get("outbox", {})
    assert isinstance(outbox, dict)
    lines = [
        f"agent           {status.get('device_id')} ({status.get('profile')}), pid {status.get('pid')}, {state}",
        f"uptime          {float(status.get('uptime_s', 0.0)):.0f} s",  # type: ignore[arg-type]
        f"frames          {counters.get('frames', 0)} read, {counters.get('frames_decoded', 0)} decoded",
        "decode errors   " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"),
        f"gnss            {counters.get('fixes', 0)} fixes, {counters.get('fixes_rejected', 0)} rejected",
        f"events          {counters.get('events', 0)}",
        f"outbox          {outbox.get('depth', 0)} records, {outbox.get('bytes', 0)} bytes, "
        f"{counters.get('records_dropped', 0)} dropped",
    ]
    uplink = status.get("uplink")
    if isinstance(uplink, dict):
        lines.append(
            f"uplink          {'connected' if uplink.get('connected') else 'DISCONNECTED'}, "
            f"{uplink.get('in_flight_batches', 0)} batches ({uplink.get('in_flight_records', 0)} records) "
            f"awaiting the cloud's ack, {counters.get('batches_committed', 0)} committed, "
            f"{counters.get('batches_rejected', 0)} rejected"
        )
        if counters.get("rejects_not_trusted"):
            lines.append(f"                THE CLOUD DOES NOT TRUST THIS DEVICE: {counters.get('rejects_not_trusted')} "
                         "batches refused (unknown, revoked or wrong key); re-enrol it. Rows are kept.")
        if counters.get("acks_hash_mismatch") or counters.get("acks_without_hash"):
            lines.append(f"                acks ignored: {counters.get('acks_hash_mismatch', 0)} for other bytes, "
                         f"{counters.get('acks_without_hash', 0)} without a hash (cloud older than ack v2)")
        held = uplink.get("quarantined_records", 0)
        lines.append(
            f"quarantine      {held} records, {uplink.get('quarantined_bytes', 0)} bytes "
            f"(refused by the cloud for their content, reported to it; {counters.get('batches_quarantined', 0)} "
            "batches this run)" if held else "quarantine      empty"
        )
    else:
        lines.append("uplink          not configured (records stay in the outbox)")
    config = status.get("config")
    if isinstance(config, dict):
        version = config.get("applied_version") or 0
        line = f"config          v{version} pushed by the cloud" if version else "config          agent.toml (no push)"
        refused = config.get("last_rejection")
        if isinstance(refused, dict):
            line += (f"; last push refused ({refused.get('reason')}: {refused.get('detail')}), "
                     f"{counters.get('config_rejected', 0)} refused this run")
        lines.append(line)
    return "\n".join(lines)
