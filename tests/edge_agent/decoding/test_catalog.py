"""The compiled catalog decodes exactly as cantools does, and J1939 special values become missing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.decoding.catalog import SignalCatalog, extract, pgn_of, special_value_limits
from firmware_profiles import load_profile

PROFILE = load_profile("heavy_truck_j1939")
CATALOG = SignalCatalog.from_profile(PROFILE)


def test_catalog_keys_are_the_dbc_pgns() -> None:
    assert 61444 in CATALOG.by_pgn  # EEC1
    assert 65265 in CATALOG.by_pgn  # CCVS1
    assert pgn_of(0x18FEF100) == 65265
    assert pgn_of(0x18EA00F9) == 59904  # PDU1: destination byte is not part of the PGN


@settings(max_examples=300)
@given(st.sampled_from(sorted(CATALOG.by_pgn)), st.binary(min_size=8, max_size=8))
def test_matches_cantools(pgn: int, data: bytes) -> None:
    layout = CATALOG.by_pgn[pgn]
    message = PROFILE.database.get_message_by_name(layout.name)
    expected = message.decode(data, decode_choices=False, scaling=True)
    raw = message.decode(data, decode_choices=False, scaling=False)
    values, _, _, _ = extract(layout, data)
    got = {f.signal: v for f, v in values}
    by_signal = {spec.name: spec for spec in PROFILE.signals.values() if spec.message == layout.name}
    for name, spec in by_signal.items():
        field = next(f for f in layout.fields if f.signal == name)
        raw_value = int(raw[spec.dbc_signal])
        if field.missing_from is not None and raw_value >= field.missing_from:
            assert name not in got
        else:
            assert got[name] == pytest.approx(float(expected[spec.dbc_signal]))


def test_engine_speed_worked_example() -> None:
    # J1939-71 SPN 190: 0.125 rpm/bit; raw 0x1F40 = 8000 -> 1000 rpm.
    eec1 = bytes([0xF1, 0x7D, 0x7D, 0x40, 0x1F, 0, 0xFF, 0x7D])
    values, na, err, short = extract(CATALOG.by_pgn[61444], eec1)
    got = {f.signal: v for f, v in values}
    assert got["engine_speed"] == 1000.0
    assert (na, err, short) == (0, 0, 0)


def test_not_available_and_error_are_missing() -> None:
    ccvs = CATALOG.by_pgn[65265]
    # wheel speed 0xFFFF (not available), parking brake 0b10 (error), PTO state 31 (not available)
    data = bytes([0b0000_1000, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x1F, 0xFF])
    values, na, err, _ = extract(ccvs, data)
    got = {f.signal: v for f, v in values}
    assert "wheel_speed" not in got
    assert "parking_brake" not in got
    assert "pto_state" not in got
    assert got["brake_switch"] == 0.0
    assert na >= 2 and err >= 1
    # wheel speed 0xFE00 is the error indicator, 0xFAFF is the largest valid value
    values, _, err2, _ = extract(ccvs, bytes([0, 0x00, 0xFE, 0, 0, 0, 0, 0]))
    assert "wheel_speed" not in {f.signal for f, _ in values} and err2 == 1
    values, _, _, _ = extract(ccvs, bytes([0, 0xFF, 0xFA, 0, 0, 0, 0, 0]))
    assert {f.signal: v for f, v in values}["wheel_speed"] == pytest.approx(0xFAFF / 256)


def test_short_frame_decodes_what_fits() -> None:
    values, _, _, short = extract(CATALOG.by_pgn[61444], bytes([0xF1, 0x7D, 0x7D]))
    assert short > 0
    assert "engine_speed" not in {f.signal for f, _ in values}


def test_special_value_limits() -> None:
    assert special_value_limits(8) == (0xFB, 0xFE)
    assert special_value_limits(16) == (0xFB00, 0xFE00)
    assert special_value_limits(32) == (0xFB000000, 0xFE000000)
    assert special_value_limits(2) == (2, 2)
    assert special_value_limits(1) == (None, None)
