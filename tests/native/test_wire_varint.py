"""The wire varint-column kernel and its twin agree, and ``varint.Reader`` gives the same columns
whether the kernel decodes them or declines them (values beyond int64, truncated data)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

import native
from edge_agent.wire.errors import WireError
from edge_agent.wire.values import RESTORE_DIVIDE, RESTORE_FACTORS, V_INT, V_RAW, restore
from edge_agent.wire.varint import Reader, Writer
from native import wire_varint_py

pytestmark = pytest.mark.native

INT64 = st.integers(min_value=-(2**62), max_value=2**62)


def _kernel():
    return native.kernel("wire_varint")


def test_selector_honours_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert native.kernel("wire_varint") is wire_varint_py


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=12), st.sampled_from([1, 2]))
def test_compiled_equals_twin_on_any_bytes(data: bytes, n: int, order: int) -> None:
    k = _kernel()
    for name, args in (("uvarints", (data, 0, n)), ("svarints", (data, 0, n)), ("deltas", (data, 0, n, order))):
        got, want = getattr(k, name)(*args), getattr(wire_varint_py, name)(*args)
        assert got[0] == want[0]
        if want[0] == wire_varint_py.OK:
            assert list(got[1]) == list(want[1]) and got[2] == want[2]


@given(st.lists(INT64, max_size=50), st.sampled_from([1, 2]))
def test_written_columns_read_back(values: list[int], order: int) -> None:
    w = Writer()
    w.raw(b"\x07")  # columns start anywhere in a body
    w.delta_column(values, order)
    for v in values:
        w.svarint(v)
    data = w.getvalue()
    r = Reader(data, 1)
    assert list(r.delta_column(len(values), order)) == values
    assert list(r.svarint_column(len(values))) == values
    assert r.remaining() == 0


def test_statuses() -> None:
    k = _kernel()
    assert k.uvarints(b"\x80\x80", 0, 1)[0] == k.SHORT
    assert k.uvarints(b"\x80" * 9 + b"\x01", 0, 1)[0] == k.WIDE  # 10 bytes: beyond 63 bits
    assert k.uvarints(b"\xff" * 8 + b"\x7f", 0, 1)[:1] == (k.OK,)  # 9 bytes: 2**63 - 1
    top = Writer()
    top.delta_column([2**62 - 1, 2**63 - 2], 1)  # each delta's zigzag just fits 63 bits
    assert k.deltas(top.getvalue(), 0, 2, 1) == (k.OK, top_values := k.deltas(top.getvalue(), 0, 2, 1)[1], 18)
    assert list(top_values) == [2**62 - 1, 2**63 - 2]
    over = Writer()
    over.delta_column([2**62 - 1, 2**63 - 2, 2**63 + 2**62 - 3], 1)  # the running sum leaves int64
    assert k.deltas(over.getvalue(), 0, 3, 1)[0] == k.WIDE


@pytest.mark.parametrize("order", [1, 2])
def test_reader_falls_back_for_values_beyond_int64(order: int) -> None:
    values = [1, 2**70, -(2**90), 5]
    w = Writer()
    w.delta_column(values, order)
    w.uvarint(2**100)
    r = Reader(w.getvalue())
    assert list(r.delta_column(len(values), order)) == values
    assert list(r.uvarint_column(1)) == [2**100]


def test_reader_reports_truncation_like_the_value_loop() -> None:
    w = Writer()
    w.delta_column([1, 2, 300], 1)
    with pytest.raises(WireError) as err:
        Reader(w.getvalue()[:-1], short_reason="truncated").delta_column(3, 1)
    assert err.value.reason == "truncated"


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, V_RAW), st.integers(-(2**40), 2**40)), max_size=60))
def test_sample_values_equal_twin_and_restore(samples: list[tuple[int, int, int]]) -> None:
    signals = array("q", [s for s, _, _ in samples])
    classes = array("q", [c for _, c, _ in samples])
    mantissas = array("q", [m for _, c, m in samples if c != V_RAW])
    args = (signals, classes, mantissas, RESTORE_FACTORS, RESTORE_DIVIDE, 4, V_INT, V_RAW)
    got, want = _kernel().sample_values(*args), wire_varint_py.sample_values(*args)
    assert got[0] == want[0] == wire_varint_py.OK
    assert got[1].tobytes() == want[1].tobytes() and list(got[2]) == list(want[2])  # floats bit for bit
    prev: dict[int, int] = {}
    it = iter(mantissas)
    for i, (s, c, _) in enumerate(samples):
        if c != V_RAW:
            prev[s] = prev.get(s, 0) + next(it)
            assert got[2][i] == prev[s]
            if c < V_INT:
                assert got[1][i] == restore(c, prev[s])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=60))
def test_sample_refs_equal_twin(pairs: list[tuple[int, int]]) -> None:
    signals, codes = array("q", [s for s, _ in pairs]), array("q", [c for _, c in pairs])
    got, want = _kernel().sample_refs(signals, codes, 6), wire_varint_py.sample_refs(signals, codes, 6)
    assert got[0] == want[0]
    if want[0] == wire_varint_py.OK:
        assert list(got[1]) == list(want[1])
    else:
        assert want[0] == wire_varint_py.MISSING
