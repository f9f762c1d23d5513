"""The J1939 identifier kernel and its twin agree, and match J1939-21's worked identifiers."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

import native
from native import j1939_ids_py

pytestmark = pytest.mark.native


def test_selector_honours_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert native.kernel("j1939_ids") is j1939_ids_py
    monkeypatch.setenv(native.PURE_ENV, "0")
    chosen = native.kernel("j1939_ids")
    try:
        import native._j1939_ids as compiled
    except ImportError:
        assert chosen is j1939_ids_py
    else:
        assert chosen is compiled


def test_known_identifiers() -> None:
    k = native.kernel("j1939_ids")
    # EEC1 from the engine (SA 0x00): 0x0CF00400 -> priority 3, PGN 61444 (0xF004), PDU2.
    # TP.CM from SA 0xF9 to 0x00: 0x1CEC00F9 -> priority 7, PGN 60416, DA 0x00 (PDU1).
    # Request (PGN 59904) to global from 0xF9: 0x18EAFFF9.
    prio, pgn, sa, da = k.split_ids(array("I", [0x0CF00400, 0x1CEC00F9, 0x18EAFFF9, 0x18FECA00]))
    assert list(prio) == [3, 7, 6, 6]
    assert list(pgn) == [61444, 60416, 59904, 65226]
    assert list(sa) == [0x00, 0xF9, 0xF9, 0x00]
    assert list(da) == [0xFF, 0x00, 0xFF, 0xFF]


@given(st.lists(st.integers(min_value=0, max_value=0xFFFFFFFF), max_size=200))
def test_compiled_equals_twin(ids: list[int]) -> None:
    arr = array("I", ids)
    assert native.kernel("j1939_ids").split_ids(arr) == j1939_ids_py.split_ids(arr)
