"""Edge pipeline benchmark (issue 3, benchmark 1): decode + detect + outbox on a J1939 capture.

    python -m bench.bench_pipeline [--frames 1000000] [--capture PATH]

Records (once, then reuses) a candump capture of the simulated heavy truck with the firmware
profile's message mix, then replays it as fast as possible, each variant in its own process so CPU
seconds and peak RSS are its own:

(a) ``compiled``: the replay composition (``CanReplaySource`` -> ``Pipeline`` with the profile's
    detectors -> ``Outbox``, as ``edge_agent.replay.run_replay`` builds it), the source handing its
    ``FrameBlock`` columns straight to ``Pipeline.on_frames`` (candump, decode, gather, gate and hold
    kernels), compiled;
(b) ``pure``: the same with ``FLEET_PURE_PYTHON=1`` (the kernels' pure-Python twins);
(c) ``naive``: python-can's ``LogReader``, ``cantools`` ``Database.decode_message`` per frame, and
    pure-Python detection, into the same outbox through the same sampling gate;
(r) ``replay`` (not run by default): ``run_replay`` itself, compiled; its ``_drain`` merges CAN and
    GNSS through a deque of ``RawFrame`` objects, so it pays one object per frame that (a) does not.

Prints a table. Targets (issue 3): (a) >= 100,000 frames/s on one core and >= 5x (c).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_CAPTURE = Path(tempfile.gettempdir()) / "fleet_bench_truck_1m.log"
PROFILE = "heavy_truck_j1939"
#: Frames handed to the pipeline per call, as the replay source and the daemon do.
BATCH = 512


def ensure_capture(path: Path, frames: int) -> int:
    """Record ``frames`` frames of back-to-back simulated drive cycles unless ``path`` has them."""
    if path.exists():
        with path.open("rb") as fh:
            have = sum(1 for _ in fh)
        if have >= frames:
            return have
    from hil.record_truck import truck_frames, write_candump

    def cycles() -> Iterator[Any]:
        n = 0
        while True:
            # Each cycle starts where the previous ended, so timestamps keep increasing.
            yield from truck_frames(cycles=1, start=1_764_000_000.0 + n * 4000.0)
            n += 1

    return write_candump(itertools.islice(cycles(), frames), path)


def _replay(capture: Path, db: Path) -> dict[str, object]:
    from edge_agent.replay import ReplayOptions, run_replay

    summary = run_replay(ReplayOptions(profile=PROFILE, db=db, can=capture, detect=True))
    records = summary["records"]
    assert isinstance(records, dict)
    return {"frames": summary["frames"], "records": sum(records.values())}


def _ours(capture: Path, db: Path) -> dict[str, object]:
    from edge_agent.counters import Counters
    from edge_agent.detection.build import build_detectors
    from edge_agent.outbox import Outbox
    from edge_agent.pipeline import Pipeline
    from edge_agent.sources.can_replay import CanReplaySource
    from firmware_profiles import load_profile

    profile = load_profile(PROFILE)
    counters = Counters()
    with Outbox(db, counters=counters) as outbox, CanReplaySource(capture, counters=counters) as source:
        pipeline = Pipeline(profile, outbox, counters, detectors=build_detectors(profile, None, counters))
        while (block := source.read_block(BATCH)) is not None:
            pipeline.on_frames(block)
        pipeline.finish()
        records = outbox.counts_by_kind()
    return {"frames": counters.get("frames"), "records": sum(records.values())}


def _naive(capture: Path, db: Path) -> dict[str, object]:
    import can

    from edge_agent.counters import Counters
    from edge_agent.detection import DetectionBatch
    from edge_agent.detection.build import build_detectors
    from edge_agent.model import Priority, Record, Sample
    from edge_agent.outbox import Outbox
    from edge_agent.sampling import SampleGate
    from firmware_profiles import load_profile

    profile = load_profile(PROFILE)
    dbc = profile.database
    counters = Counters()
    detectors = build_detectors(profile, None, counters)
    gate = SampleGate({s.name: (s.rate_hz, s.deadband) for s in profile.signals.values()})
    # The signal map as a person would write it: DBC message -> [(dbc signal, our name, unit)].
    wanted: dict[str, list[tuple[str, str, str]]] = {}
    for spec in profile.signals.values():
        wanted.setdefault(spec.message, []).append((spec.dbc_signal, spec.name, spec.unit))
    by_pgn = {}
    for message in dbc.messages:
        if message.name in wanted:
            fid = message.frame_id
            pf = (fid >> 16) & 0xFF
            by_pgn[((fid >> 8) & 0x3FF00) if pf < 240 else ((fid >> 8) & 0x3FFFF)] = message
    frames = 0
    stored = 0
    with Outbox(db, counters=counters) as outbox:
        samples: list[Sample] = []
        for msg in can.LogReader(str(capture)):
            frames += 1
            fid = msg.arbitration_id
            pf = (fid >> 16) & 0xFF
            hit = by_pgn.get(((fid >> 8) & 0x3FF00) if pf < 240 else ((fid >> 8) & 0x3FFFF))
            if hit is not None:
                message = hit
                values: Any
                try:
                    values = dbc.decode_message(message.frame_id, msg.data, decode_choices=False)  # type: ignore[arg-type]
                except Exception:  # a naive decoder skips what it cannot decode
                    values = {}
                source = f"j1939:0x{fid & 0xFF:02X}"
                for dbc_name, name, unit in wanted[message.name]:
                    value = values.get(dbc_name)
                    if isinstance(value, int | float):
                        samples.append(Sample(msg.timestamp, name, float(value), source, unit))
            if frames % BATCH == 0:
                stored += _naive_flush(samples, detectors, gate, outbox, DetectionBatch, Record, Priority)
                samples = []
        stored += _naive_flush(samples, detectors, gate, outbox, DetectionBatch, Record, Priority)
    return {"frames": frames, "records": stored}


def _naive_flush(samples, detectors, gate, outbox, batch_cls, record_cls, priority) -> int:  # type: ignore[no-untyped-def]
    records = [e.to_record() for d in detectors.values() for e in d.process(batch_cls(samples=samples))]
    records += [
        record_cls("sample", priority.PERIODIC, s.timestamp, {"signal": s.signal, "value": s.value,
                                                             "unit": s.unit, "source": s.source})
        for s in gate.admit_many(samples)
    ]
    if records:
        outbox.append(records)
    return len(records)


def run_variant(variant: str, capture: Path) -> dict[str, object]:
    """Run one variant in this process and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "outbox.db"
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run = {"naive": _naive, "replay": _replay}.get(variant, _ours)
        result = run(capture, db)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    frames = int(result["frames"])  # type: ignore[call-overload]
    return {
        "variant": variant, "frames": frames, "records": result["records"], "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "frames_per_s": round(frames / wall) if wall else None,
        "frames_per_cpu_s": round(frames / cpu) if cpu else None,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--variant", choices=("compiled", "pure", "naive", "replay"), help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", default=["compiled", "pure", "naive"])
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.capture)))
        return 0
    n = ensure_capture(args.capture, args.frames)
    print(f"capture {args.capture}: {n} frames ({args.capture.stat().st_size / 1e6:.0f} MB)", flush=True)
    rows = []
    for variant in args.only:
        env = dict(os.environ)
        env["FLEET_PURE_PYTHON"] = "0" if variant in ("compiled", "replay") else "1"
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_pipeline", "--variant", variant, "--capture", str(args.capture)],
            env=env, capture_output=True, text=True, check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {variant} done", flush=True)
    naive = next((r for r in rows if r["variant"] == "naive"), None)
    print()
    print(f"{'variant':<10}{'frames':>10}{'records':>10}{'wall s':>9}{'CPU s':>8}{'frames/s':>11}"
          f"{'frames/CPU s':>14}{'peak RSS MB':>13}{'vs naive':>10}")
    for r in rows:
        ratio = f"{r['frames_per_cpu_s'] / naive['frames_per_cpu_s']:.1f}x" if naive else "-"
        print(f"{r['variant']:<10}{r['frames']:>10}{r['records']:>10}{r['wall_s']:>9}{r['cpu_s']:>8}"
              f"{r['frames_per_s']:>11}{r['frames_per_cpu_s']:>14}{r['peak_rss_mb']:>13}{ratio:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
