"""``fleet-agent replay``: run captures through the daemon's own sources, decoding and outbox.

CAN frames and NMEA lines are merged in timestamp order (each capture's own clock), as fast as
possible or paced like the original, and a summary of what was decoded, rejected and stored is
returned for people (text) and scripts (JSON).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.counters import Counters
from edge_agent.detection import Detector
from edge_agent.model import FrameBlock, RawFrame, TimedLine
from edge_agent.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.sources import FrameSource, LineSource
from edge_agent.sources.can_replay import CanReplaySource
from edge_agent.sources.nmea_replay import NmeaReplaySource
from firmware_profiles import Profile, load_profile

BATCH_FRAMES = 512


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    profile: str
    db: Path
    can: Path | None = None
    gnss: Path | None = None
    pace: str = "fast"  # "fast" | "realtime"
    quota_bytes: int | None = None
    #: Run the on-vehicle detectors (idle, faults, trips; geofences with ``geofences``) as the daemon does.
    detect: bool = True
    geofences: Path | None = None


def _drain(
    pipeline: Pipeline, can: FrameSource | None, gnss: LineSource | None
) -> None:
    # Frames stay columns (a FrameBlock and how much of it was handed over) when the source has them.
    read_block = getattr(can, "read_block", None)
    block: Sequence[RawFrame] = ()
    head = 0
    lines: deque[TimedLine] = deque()
    can_open, gnss_open = can is not None, gnss is not None
    while True:
        if can_open and head >= len(block) and can is not None:
            batch = read_block(BATCH_FRAMES, 0.05) if read_block is not None else can.read_batch(BATCH_FRAMES, 0.05)
            if batch is None:
                can_open = False
            else:
                block, head = batch, 0
        if gnss_open and not lines and gnss is not None:
            got = gnss.read_lines(0.05)
            if got is None:
                gnss_open = False
            else:
                lines.extend(got)
        have_frames = head < len(block)
        if not have_frames and not lines:
            if not can_open and not gnss_open:
                return
            continue
        first_ts = _frame_ts(block, head) if have_frames else float("inf")
        # Hand over whichever stream is earlier, up to the other stream's head time.
        if lines and (not have_frames or lines[0].received_at < first_ts):
            out_lines = []
            while lines and lines[0].received_at <= first_ts:
                out_lines.append(lines.popleft())
            pipeline.on_lines(out_lines)
        else:
            limit = lines[0].received_at if lines else float("inf")
            end = head
            if limit == float("inf"):
                end = len(block)
            else:
                while end < len(block) and _frame_ts(block, end) <= limit:
                    end += 1
            pipeline.on_frames(block[head:end] if (head, end) != (0, len(block)) else block)
            head = end


def _frame_ts(frames: Sequence[RawFrame], i: int) -> float:
    return frames.timestamps[i] if isinstance(frames, FrameBlock) else frames[i].timestamp


def _detectors(options: ReplayOptions, profile: Profile, counters: Counters) -> dict[str, Detector]:
    if not options.detect:
        return {}
    from edge_agent.detection.build import build_detectors

    return build_detectors(profile, None, counters, geofences=options.geofences)


def run_replay(options: ReplayOptions) -> dict[str, object]:
    """Replay the captures into the outbox at ``options.db`` and return the summary."""
    profile = load_profile(options.profile)
    counters = Counters()
    outbox_kwargs: dict[str, int] = {}
    if options.quota_bytes is not None:
        outbox_kwargs["quota_bytes"] = options.quota_bytes
    outbox = Outbox(options.db, counters=counters, **outbox_kwargs)
    can_pace = "realtime" if options.pace == "realtime" else "fast"
    gnss_pace = "timestamps" if options.pace == "realtime" else "fast"
    can = CanReplaySource(options.can, pace=can_pace, counters=counters) if options.can else None
    gnss = NmeaReplaySource(options.gnss, pace=gnss_pace, counters=counters) if options.gnss else None
    started_wall = time.perf_counter()
    started_cpu = time.process_time()
    try:
        pipeline = Pipeline(profile, outbox, counters, detectors=_detectors(options, profile, counters))
        _drain(pipeline, can, gnss)
        pipeline.finish()
        elapsed = time.perf_counter() - started_wall
        snap = counters.snapshot()
        frames = int(snap.get("frames", 0))  # type: ignore[call-overload]
        summary: dict[str, object] = {
            "profile": profile.name,
            "frames": frames,
            "frames_decoded": snap.get("frames_decoded", 0),
            "frames_ignored": snap.get("frames_ignored", 0),
            "decode_errors": snap["decode_errors"],
            "lines": snap.get("lines", 0),
            "fixes": snap.get("fixes", 0),
            "fixes_rejected": snap.get("fixes_rejected", 0),
            "samples": snap.get("samples", 0),
            "samples_stored": snap.get("samples_stored", 0),
            "events": _event_counts(outbox.counts_by_kind()),
            "dtcs": pipeline.findings.dtc_list(),
            "vins": sorted(set(pipeline.findings.vins.values())),
            "records": outbox.counts_by_kind(),
            "records_dropped": snap.get("records_dropped", 0),
            "outbox_bytes": outbox.bytes_used(),
            "elapsed_s": round(elapsed, 3),
            "cpu_s": round(time.process_time() - started_cpu, 3),
            "frames_per_s": round(frames / elapsed) if elapsed > 0 else None,
            "counters": {k: v for k, v in snap.items() if k != "decode_errors"},
        }
        return summary
    finally:
        for source in (can, gnss):
            if source is not None:
                source.close()
        outbox.close()


def _event_counts(records: dict[str, int]) -> dict[str, int]:
    """Detections by kind (everything in the outbox that is not raw data)."""
    raw = {"sample", "position", "dtc_status", "vehicle_id", "drop_report"}
    return {k: v for k, v in records.items() if k not in raw}


def format_summary(summary: dict[str, object]) -> str:
    """The summary as a few lines for a person at a terminal."""
    errors = summary["decode_errors"]
    assert isinstance(errors, dict)
    err_text = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    records = summary["records"]
    assert isinstance(records, dict)
    events = summary["events"]
    assert isinstance(events, dict)
    rec_text = ", ".join(f"{k} {v}" for k, v in sorted(records.items())) or "none"
    dtcs = summary["dtcs"]
    assert isinstance(dtcs, list)
    dtc_text = "; ".join(
        f"SPN {d['spn']} FMI {d['fmi']} OC {d['oc']} from {d['source']}" if "spn" in d
        else f"{d['code']} ({d['status']}) from {d['source']}"
        for d in dtcs
    ) or "none"
    return "\n".join(
        [
            f"profile         {summary['profile']}",
            f"frames          {summary['frames']} read, {summary['frames_decoded']} decoded, "
            f"{summary['frames_ignored']} not in profile",
            f"decode errors   {err_text}",
            f"gnss            {summary['lines']} lines, {summary['fixes']} fixes, "
            f"{summary['fixes_rejected']} rejected",
            f"samples         {summary['samples']} decoded, {summary['samples_stored']} stored",
            f"dtcs            {dtc_text}",
            f"events          {', '.join(f'{k} {v}' for k, v in sorted(events.items())) or 'none'}",
            f"vin             {', '.join(summary['vins']) or 'not seen'}",  # type: ignore[arg-type]
            f"outbox          {rec_text} ({summary['outbox_bytes']} bytes, "
            f"{summary['records_dropped']} dropped)",
            f"time            {summary['elapsed_s']} s wall, {summary['cpu_s']} s CPU, "
            f"{summary['frames_per_s']} frames/s",
        ]
    )
