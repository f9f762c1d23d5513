"""Bus silence ends trips and idle periods seconds after the key is turned (``DetectionBatch.tick``).

The bundled truck capture (``tests/data/sim/truck_j1939.log.gz``) is cut while a trip and an idle
period are running. The daemon's silence tick must end them exactly as the bus waking after a long
silence would (same start, end, duration, distance, fuel), but at ``SILENCE_S`` of the agent's clock;
the tick must not end anything sooner, and the ended runs must stay ended across a restart.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.counters import Counters
from edge_agent.detection import SILENCE_S
from edge_agent.detection.build import build_detectors
from edge_agent.detection.trips import MAX_GAP_S
from edge_agent.model import RawFrame
from edge_agent.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.sources.can_replay import CanReplaySource
from firmware_profiles import load_profile

ROOT = Path(__file__).resolve().parents[3]
TRUCK = ROOT / "tests" / "data" / "sim" / "truck_j1939.log.gz"
#: Capture times to cut at: 340 s is in the depot idle (started at 8 s, reported at 308 s) with the trip
#: running; 500 s is in the first drive (85 km/h), the idle long ended.
CUTS = {340.0: 1, 500.0: 0}
#: A wake well beyond every detector's ``MAX_GAP_S``: the reference way runs end today.
WAKE_AFTER_S = 4 * MAX_GAP_S

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def frames() -> list[RawFrame]:
    out: list[RawFrame] = []
    with CanReplaySource(TRUCK, counters=Counters()) as source:
        while (batch := source.read_batch(512)) is not None:
            out.extend(batch)
    return out


def _pipeline(db: Path) -> tuple[Pipeline, Outbox]:
    profile = load_profile("heavy_truck_j1939")
    counters = Counters()
    outbox = Outbox(db, counters=counters)
    return Pipeline(profile, outbox, counters, detectors=build_detectors(profile, None, counters)), outbox


def _feed(pipeline: Pipeline, frames: list[RawFrame]) -> None:
    for k in range(0, len(frames), 512):
        pipeline.on_frames(frames[k:k + 512])


def _events(outbox: Outbox) -> list[tuple[str, float, dict[str, object]]]:
    rows = sorted(outbox.claim(10**9), key=lambda r: r.id)
    outbox.delete(r.id for r in rows)  # sent: the next look sees only what came since
    return [(r.kind, r.timestamp, r.payload) for r in rows if r.kind not in ("sample", "position")]


def _ends(events: list[tuple[str, float, dict[str, object]]]) -> dict[str, list[dict[str, object]]]:
    return {kind: [p for k, _t, p in events if k == kind] for kind in ("trip_ended", "idle_ended")}


def _split(frames: list[RawFrame], cut_s: float) -> tuple[list[RawFrame], list[RawFrame]]:
    cut = frames[0].timestamp + cut_s
    head = [f for f in frames if f.timestamp <= cut]
    rest = [replace(f, timestamp=f.timestamp + WAKE_AFTER_S) for f in frames if f.timestamp > cut]
    return head, rest


@pytest.mark.parametrize(("cut_s", "idles"), CUTS.items())
def test_silence_tick_ends_runs_as_a_wake_would(
    tmp_path: Path, frames: list[RawFrame], cut_s: float, idles: int
) -> None:
    head, rest = _split(frames, cut_s)
    last = head[-1].timestamp

    reference, ref_box = _pipeline(tmp_path / "reference.db")
    _feed(reference, head)
    reference.flush()
    _events(ref_box)  # what the capture reported before the cut
    _feed(reference, rest)
    reference.finish()
    expected = _ends(_events(ref_box))
    ref_box.close()
    assert len(expected["trip_ended"]) == 1 and len(expected["idle_ended"]) == idles

    ticked, box = _pipeline(tmp_path / "ticked.db")
    _feed(ticked, head)
    ticked.flush()
    _events(box)
    ticked.tick_silence(last + SILENCE_S - 1.0)  # not yet silence: a slow signal, nothing ends
    ticked.flush()
    assert _ends(_events(box)) == {"trip_ended": [], "idle_ended": []}
    ticked.tick_silence(last + SILENCE_S + 0.5)
    ticked.flush()
    events = _events(box)
    got = _ends(events)
    assert got == expected
    # Reported at the tick (the agent's clock), ended at the last real data (a trip's end is the last sample).
    assert {t for k, t, _p in events if k.endswith("_ended")} == {last + SILENCE_S + 0.5}
    trip = got["trip_ended"][0]
    assert trip["ended_at"] <= last and trip["duration_s"] == pytest.approx(trip["ended_at"] - trip["started_at"])
    assert trip["fuel_l"] is not None and (trip["distance_km"] > 0) == (idles == 0)

    # A second tick in the same silence, a restart and the bus waking end nothing again.
    ticked.tick_silence(last + 3 * SILENCE_S)
    ticked.flush()
    box.close()
    restarted, box = _pipeline(tmp_path / "ticked.db")
    restarted.restore_from_outbox()
    _feed(restarted, rest)
    restarted.finish()
    assert _ends(_events(box)) == {"trip_ended": [], "idle_ended": []}
    box.close()


def test_replay_never_ticks(tmp_path: Path, frames: list[RawFrame]) -> None:
    """Without ticks a capture ending mid-trip leaves the trip open, as before (replay is unchanged)."""
    head, _rest = _split(frames, 500.0)
    pipeline, box = _pipeline(tmp_path / "replay.db")
    _feed(pipeline, head)
    pipeline.finish()
    events = _events(box)
    assert [k for k, _t, _p in events if k.startswith("trip_")] == ["trip_started"]
    box.close()
