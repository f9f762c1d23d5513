"""The J1939 batch-decode kernel equals its twin and the per-message reference decoder."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import native
from edge_agent.decoding.catalog import SignalCatalog, extract
from edge_agent.decoding.compiled import compile_catalog
from firmware_profiles import load_profile
from native import j1939_decode_py

pytestmark = pytest.mark.native

CATALOG = SignalCatalog.from_profile(load_profile("heavy_truck_j1939"))
ARRAYS = compile_catalog(CATALOG)
SPECIAL = array("I", [60160, 60416, 65226])
PGNS = [*sorted(CATALOG.by_pgn), 60160, 60416, 65226, 65260, 61443 + 7, 59904]


def _frame_id(pgn: int, sa: int, prio: int, da: int) -> int:
    pf = (pgn >> 8) & 0xFF
    ps = da if pf < 240 else pgn & 0xFF
    return (prio << 26) | ((pgn >> 16) & 3) << 24 | pf << 16 | ps << 8 | sa


frames_strategy = st.lists(
    st.tuples(
        st.sampled_from(PGNS), st.integers(0, 255), st.integers(0, 7), st.integers(0, 255),
        st.binary(min_size=0, max_size=8), st.booleans(),
    ),
    max_size=60,
)


def _inputs(frames: list[tuple[int, int, int, int, bytes, bool]]) -> tuple[array, bytes, array]:
    ids = array("I", [_frame_id(p, sa, pr, da) | (0x80000000 if ext else 0) for p, sa, pr, da, _, ext in frames])
    data = b"".join((d + bytes(8))[:8] for *_, d, _ in frames)
    dlc = array("B", [len(d) for *_, d, _ in frames])
    return ids, data, dlc


@settings(max_examples=300)
@given(frames_strategy)
def test_kernel_equals_twin(frames: list[tuple[int, int, int, int, bytes, bool]]) -> None:
    ids, data, dlc = _inputs(frames)
    args = (ids, data, dlc, *ARRAYS.kernel_args(), SPECIAL)
    assert native.kernel("j1939_decode").decode_frames(*args) == j1939_decode_py.decode_frames(*args)


@settings(max_examples=200)
@given(frames_strategy)
def test_kernel_equals_reference_decoder(frames: list[tuple[int, int, int, int, bytes, bool]]) -> None:
    ids, data, dlc = _inputs(frames)
    vframe, vfield, values, special, stats = native.kernel("j1939_decode").decode_frames(
        ids, data, dlc, *ARRAYS.kernel_args(), SPECIAL
    )
    got: dict[int, dict[str, float]] = {}
    for j in range(len(values)):
        got.setdefault(vframe[j], {})[ARRAYS.fields[vfield[j]].signal] = values[j]
    want: dict[int, dict[str, float]] = {}
    for i, (pgn, _, _, _, payload, ext) in enumerate(frames):
        if ext and pgn in CATALOG.by_pgn:
            decoded, _, _, _ = extract(CATALOG.by_pgn[pgn], payload)
            if decoded:
                want[i] = {f.signal: v for f, v in decoded}
    assert got == want
    expected_special = [i for i, (pgn, *_, ext) in enumerate(frames) if ext and pgn in set(SPECIAL)]
    assert list(special) == expected_special
    assert stats[5] == sum(1 for *_, ext in frames if not ext)


def test_engine_speed_from_a_real_layout() -> None:
    ids = array("I", [0x8CF00400])  # EEC1 from the engine, extended
    data = bytes([0xF1, 0x7D, 0x7D, 0x40, 0x1F, 0x00, 0xFF, 0x7D])
    _vframe, vfield, values, _, stats = native.kernel("j1939_decode").decode_frames(
        ids, data, array("B", [8]), *ARRAYS.kernel_args(), SPECIAL
    )
    decoded = {ARRAYS.fields[vfield[j]].signal: values[j] for j in range(len(values))}
    assert decoded["engine_speed"] == 1000.0
    assert stats[0] == 1
