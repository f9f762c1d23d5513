"""The columnar hot path stores exactly what the object path stores, compiled or pure.

The bundled truck capture (and the corrupt one) go through a real SQLite outbox three ways: the
source's ``FrameBlock`` columns, the same frames as a ``list[RawFrame]``, and the columns in a
``FLEET_PURE_PYTHON=1`` subprocess. Every record (kind, priority, time, payload, in order) and the
detectors' committed state must be the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.detection.build import build_detectors
from edge_agent.outbox import Outbox
from edge_agent.pipeline import DETECTOR_STATE_KEY, Pipeline
from edge_agent.sources.can_replay import CanReplaySource
from firmware_profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
TRUCK = ROOT / "tests" / "data" / "sim" / "truck_j1939.log.gz"
CORRUPT = ROOT / "tests" / "data" / "corrupt" / "can" / "mixed_bad_lines.log"

pytestmark = pytest.mark.native


def run(capture: Path, db: Path, mode: str, batch: int = 512) -> dict[str, object]:
    profile = load_profile("heavy_truck_j1939")
    counters = Counters()
    with Outbox(db, counters=counters) as outbox, CanReplaySource(capture, counters=counters) as source:
        pipeline = Pipeline(profile, outbox, counters, detectors=build_detectors(profile, None, counters))
        read = source.read_block if mode == "block" else source.read_batch
        while (frames := read(batch)) is not None:
            pipeline.on_frames(frames)
        pipeline.finish()
        rows = outbox.claim(10**9)
        rows.sort(key=lambda r: r.id)
        state = outbox.get_state(DETECTOR_STATE_KEY)
    snap = counters.snapshot()
    return {
        "records": [[r.kind, r.priority, r.timestamp, r.payload] for r in rows],
        "state": state,
        "counters": {k: v for k, v in snap.items() if not k.startswith("outbox")},
    }


def _canonical(result: dict[str, object]) -> str:
    return json.dumps(result, sort_keys=True, default=str)


@pytest.mark.parametrize("batch", [512, 97])
@pytest.mark.parametrize("capture", [TRUCK, CORRUPT], ids=["truck", "corrupt"])
def test_columns_and_objects_store_the_same(tmp_path: Path, capture: Path, batch: int) -> None:
    block = run(capture, tmp_path / "block.db", "block", batch)
    objects = run(capture, tmp_path / "list.db", "list", batch)
    assert _canonical(block) == _canonical(objects)
    records = block["records"]
    assert isinstance(records, list) and records


def test_pure_twins_store_the_same_as_compiled(tmp_path: Path) -> None:
    here = run(TRUCK, tmp_path / "here.db", "block")
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.edge_agent.test_pipeline_columns import run, _canonical; "
        "print(_canonical(run(Path(sys.argv[1]), Path(sys.argv[2]), 'block')))"
    )
    env = dict(os.environ, FLEET_PURE_PYTHON="0" if os.environ.get("FLEET_PURE_PYTHON", "0") != "0" else "1")
    proc = subprocess.run([sys.executable, "-c", code, str(TRUCK), str(tmp_path / "other.db")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=True)
    assert proc.stdout.strip() == _canonical(here)
