"""The gate, hold and j1939_gather kernels equal their twins; gate and hold equal the object paths."""

from __future__ import annotations

import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from edge_agent.detection.clock import HeldTimeline
from edge_agent.model import Sample, SampleColumns
from edge_agent.sampling import SampleGate
from native import gate_py, hold_py, j1939_gather_py

pytestmark = pytest.mark.native

NAMES = ("rpm", "speed", "gear", "rpm", "temp")  # two fields carry "rpm"
UNITS = ("rpm", "km/h", "", "rpm", "degC")
SOURCES = ("j1939:0x00", "j1939:0x03", "obd:0x7E8")
SPECS = {"rpm": (1.0, 100.0), "speed": (2.0, 0.0), "gear": (0.0, 0.0), "temp": (0.0, 2.0)}

value = st.one_of(st.sampled_from([0.0, 1.0, 2.0, 150.0, math.nan, -3.5]), st.floats(-1e3, 1e3))
stamp = st.one_of(st.floats(0.0, 400.0), st.sampled_from([math.nan, 0.0, 0.1, 0.2]))
rows = st.lists(st.tuples(stamp, st.integers(0, len(NAMES) - 1), st.integers(0, len(SOURCES) - 1), value),
                max_size=80)


def _columns(items: list[tuple[float, int, int, float]], ordered: bool) -> SampleColumns:
    if ordered:
        items = sorted(items, key=lambda r: (r[0] if r[0] == r[0] else 0.0))
    return SampleColumns(
        array("d", [r[0] for r in items]), array("H", [r[1] for r in items]), array("H", [r[2] for r in items]),
        array("d", [r[3] for r in items]), NAMES, UNITS, SOURCES,
    )


def _same(a: object, b: object) -> bool:
    # NaN-aware equality of the kernels' outputs (arrays of floats may carry NaN).
    return repr(a) == repr(b)


@settings(max_examples=300)
@given(rows, st.booleans())
def test_gate_kernel_equals_twin_and_the_object_path(items: list[tuple[float, int, int, float]], ordered: bool) -> None:
    cols = _columns(items, ordered)
    gate = SampleGate(SPECS)
    gate._table(cols.names, cols.sources)  # bind even when empty, so both states have the slots
    kept = gate.admit_columns(cols)
    # The same slots, state and specs through the twin directly.
    twin_gate = SampleGate(SPECS)
    table = twin_gate._table(cols.names, cols.sources)
    twin = gate_py.admit(cols.timestamps, cols.field, cols.source, cols.values, table, len(SOURCES),
                         twin_gate._slot_spec, twin_gate._limit, twin_gate._band, twin_gate._on_change,
                         twin_gate._state)
    assert list(kept) == list(twin)
    assert _same(gate._state, twin_gate._state)
    # Objects through admit_many keep the same samples.
    assert _same(SampleGate(SPECS).admit_many(cols.samples()), cols.samples(kept))


@settings(max_examples=300)
@given(rows, st.floats(0.0, 1.0), st.lists(st.floats(0.0, 10.0), min_size=4, max_size=4), st.booleans())
def test_hold_kernel_equals_twin(items: list[tuple[float, int, int, float]], step: float, raw: list[float],
                                 ordered: bool) -> None:
    cols = _columns(items, ordered)
    local = array("i", [0, -1, 1, 0, 2])
    state = array("d", [float(raw[0] > 5), raw[1], float(raw[2] > 5), raw[3]])
    args = (cols.timestamps, cols.field, cols.values, local, 3, step, state)
    assert _same(native.kernel("hold").hold(*args), hold_py.hold(*args))


@settings(max_examples=200)
@given(rows, st.booleans())
def test_timeline_on_columns_equals_timeline_on_samples(items: list[tuple[float, int, int, float]],
                                                        ordered: bool) -> None:
    cols = _columns(items, ordered)
    wanted = frozenset({"rpm", "gear", "temp"})
    seen: list[list[object]] = [[], []]
    timelines = [HeldTimeline(wanted), HeldTimeline(wanted)]
    for k, feed in enumerate((lambda t, e: t.feed(cols.samples(), e), lambda t, e: t.feed_columns(cols, e))):
        timeline = timelines[k]
        # Two halves, so the carried state between batches is exercised too.
        feed(timeline, lambda now, tl=timeline, out=seen[k]: out.append((now, sorted(tl.held.items()))))
        feed(timeline, lambda now, tl=timeline, out=seen[k]: out.append((now, sorted(tl.held.items()))))
    assert _same(seen[0], seen[1])
    # Insertion order of the held dict may differ; what is held may not.
    states = [t.state() for t in timelines]
    for st_ in states:
        st_["held"] = sorted(st_["held"].items())  # type: ignore[attr-defined]
    assert _same(states[0], states[1])


@given(st.lists(st.tuples(st.floats(allow_nan=False), st.integers(0, 0xFFFFFFFF)), min_size=1, max_size=30),
       st.lists(st.integers(0, 1000), max_size=60))
def test_gather_kernel_equals_twin(frames: list[tuple[float, int]], picks: list[int]) -> None:
    ts = array("d", [f[0] for f in frames])
    ids = array("I", [f[1] for f in frames])
    vframe = array("I", [p % len(frames) for p in picks])
    assert native.kernel("j1939_gather").gather(vframe, ts, ids) == j1939_gather_py.gather(vframe, ts, ids)


def test_admit_many_handles_more_samples_than_one_kernel_call_numbers() -> None:
    gate = SampleGate({"gear": (0.0, 0.0)})
    samples = [Sample(float(i), "gear", float(i // 3), "j1939:0x00") for i in range(70_000)]
    kept = gate.admit_many(samples)
    assert [s.timestamp for s in kept] == [float(i) for i in range(0, 70_000, 3)]
