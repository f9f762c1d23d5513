"""DM1/DM2 (J1939-73) and VI (J1939-71) parsing: hand-computed vectors and an encode/parse round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.decoding.j1939.dm import parse_dm, parse_dtc, parse_lamps, parse_vin
from edge_agent.errors import DecodeError
from edge_agent.model import DiagnosticMessage, J1939Dtc, Lamps, LampState
from hil.j1939_frames import encode_dm, encode_dtc

OFF, ON, ERR, NA = LampState.OFF, LampState.ON, LampState.ERROR, LampState.NOT_AVAILABLE


# -- hand-computed vectors from the J1939-73 byte layout ---------------------------------------


@pytest.mark.parametrize(
    ("byte", "lamps"),
    [
        (0x00, Lamps(protect=OFF, amber_warning=OFF, red_stop=OFF, mil=OFF)),
        (0xFF, Lamps(protect=NA, amber_warning=NA, red_stop=NA, mil=NA)),
        (0x44, Lamps(protect=OFF, amber_warning=ON, red_stop=OFF, mil=ON)),  # 01 00 01 00
        (0x14, Lamps(protect=OFF, amber_warning=ON, red_stop=ON, mil=OFF)),  # 00 01 01 00
        (0x01, Lamps(protect=ON, amber_warning=OFF, red_stop=OFF, mil=OFF)),
        (0x9E, Lamps(protect=ERR, amber_warning=NA, red_stop=ON, mil=ERR)),  # 10 01 11 10
    ],
)
def test_lamp_byte(byte: int, lamps: Lamps) -> None:
    assert parse_lamps(byte) == lamps


@pytest.mark.parametrize(
    ("group", "dtc"),
    [
        # SPN 1234 = 0x004D2, FMI 3, CM 0, OC 2
        (bytes((0xD2, 0x04, 0x03, 0x02)), J1939Dtc(1234, 3, 2, 0)),
        # SPN 74565 = 0x12345: low 0x45, mid 0x23, top three bits 001 -> byte 5 = 0x20 | FMI 4
        (bytes((0x45, 0x23, 0x24, 0x0A)), J1939Dtc(74565, 4, 10, 0)),
        # SPN 524287 (all 19 bits), FMI 31, CM 0, OC 126
        (bytes((0xFF, 0xFF, 0xFF, 0x7E)), J1939Dtc(524287, 31, 126, 0)),
        # SPN 100, FMI 1, CM 1 (old conversion method, kept as a flag), OC 5
        (bytes((0x64, 0x00, 0x01, 0x85)), J1939Dtc(100, 1, 5, 1)),
        # SPN 0 with FMI 2 is a (strange) DTC, not the "no DTC" marker
        (bytes((0x00, 0x00, 0x02, 0x01)), J1939Dtc(0, 2, 1, 0)),
    ],
)
def test_dtc_layout(group: bytes, dtc: J1939Dtc) -> None:
    assert parse_dtc(group) == dtc
    assert encode_dtc(dtc) == group


@pytest.mark.parametrize("group", [bytes(4), bytes((0, 0, 0, 0x7F)), b"\xff\xff\xff\xff"])
def test_no_dtc_marker_and_padding_give_nothing(group: bytes) -> None:
    assert parse_dtc(group) is None


def test_single_frame_dm1_with_one_dtc() -> None:
    data = bytes((0x04, 0xFF, 0x6E, 0x00, 0x00, 0x03, 0xFF, 0xFF))  # amber on; SPN 110 FMI 0 OC 3; pad
    dm = parse_dm("DM1", 12.5, 0x00, data)
    assert dm == DiagnosticMessage(12.5, "DM1", 0x00, Lamps(OFF, ON, OFF, OFF), (J1939Dtc(110, 0, 3),))


def test_single_frame_dm1_without_dtc() -> None:
    dm = parse_dm("DM1", 1.0, 0x03, bytes((0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF)))
    assert dm.dtcs == () and dm.lamps == Lamps(OFF, OFF, OFF, OFF) and dm.source_address == 0x03


def test_multi_packet_dm2_with_trailing_padding() -> None:
    body = bytes((0x6E, 0x00, 0x00, 0x03)) + bytes((0x9A, 0x0C, 0x02, 0x01)) + bytes((0x09, 0xF0, 0xEE, 0x07))
    # SPN 0x7F009 = 520201: low 0x09, mid 0xF0, top bits 111 -> 0xE0 | FMI 14 = 0xEE
    dm = parse_dm("DM2", 3.0, 0x0B, bytes((0x40, 0xFF)) + body + b"\xff\xff\xff\xff\xff")
    assert dm.kind == "DM2" and dm.lamps.mil == ON
    assert dm.dtcs == (J1939Dtc(110, 0, 3), J1939Dtc(3226, 2, 1), J1939Dtc(520201, 14, 7))


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(5), bytes((0x04, 0xFF, 0x6E, 0x00, 0x00))])
def test_too_short_is_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        parse_dm("DM1", 1.0, 0x00, data)
    assert exc.value.reason == "j1939_dm_malformed"


def test_partial_trailing_dtc_is_malformed_unless_padding() -> None:
    good = bytes((0x04, 0xFF, 0x6E, 0x00, 0x00, 0x03))
    assert parse_dm("DM1", 1.0, 0, good + b"\xff\x00").dtcs == (J1939Dtc(110, 0, 3),)
    with pytest.raises(DecodeError) as exc:
        parse_dm("DM1", 1.0, 0, good + b"\x64\x00\x01")
    assert exc.value.reason == "j1939_dm_malformed"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="DM1"):
        parse_dm("DM3", 1.0, 0, bytes(8))


# -- round trip --------------------------------------------------------------------------------

lamp_states = st.sampled_from(list(LampState))
lamps_st = st.builds(Lamps, lamp_states, lamp_states, lamp_states, lamp_states)
dtc_st = st.builds(
    J1939Dtc,
    spn=st.integers(0, (1 << 19) - 1),
    fmi=st.integers(0, 31),
    oc=st.integers(0, 126),
    cm=st.integers(0, 1),
).filter(lambda d: (d.spn, d.fmi) != (0, 0))


@given(lamps=lamps_st, dtcs=st.lists(dtc_st, max_size=40), kind=st.sampled_from(["DM1", "DM2"]),
       pad=st.integers(0, 3))
def test_encode_parse_round_trip(lamps: Lamps, dtcs: list[J1939Dtc], kind: str, pad: int) -> None:
    payload = encode_dm(lamps, dtcs)
    assert len(payload) == 2 + 4 * max(1, len(dtcs))
    dm = parse_dm(kind, 7.0, 0x21, payload + b"\xff" * pad)
    assert dm == DiagnosticMessage(7.0, kind, 0x21, lamps, tuple(dtcs))


def test_encode_refuses_what_parse_could_not_give_back() -> None:
    with pytest.raises(ValueError, match="no active DTC"):
        encode_dtc(J1939Dtc(0, 0, 1))
    for bad in (J1939Dtc(1 << 19, 1, 1), J1939Dtc(1, 32, 1), J1939Dtc(1, 1, 128), J1939Dtc(1, 1, 1, 2)):
        with pytest.raises(ValueError, match="out of range"):
            encode_dtc(bad)


# -- VIN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"1XKYDP9X0MJ000001*",
        b"1XKYDP9X0MJ000001",
        b"1XKYDP9X0MJ000001*\xff\xff\xff",
        b"1XKYDP9X0MJ000001\x00\x00\x00",
        b"1XKYDP9X0MJ000001\xff\xff\xff\xff",
        b"1XKYDP9X0MJ000001*REST*",  # only the first field is the VIN
        b"1XKYDP9X0MJ000001   *",
    ],
)
def test_vin(data: bytes) -> None:
    assert parse_vin(data) == "1XKYDP9X0MJ000001"


def test_short_non_us_vin_is_kept() -> None:
    assert parse_vin(b"WDB 9634031L123*") == "WDB 9634031L123"


@pytest.mark.parametrize(
    "data", [b"", b"*", b"\xff" * 18, b"\x00" * 18, b"   *", b"1XKY\x01P9X0MJ000001*", b"1XK\xc3\xa9*"]
)
def test_bad_vin_is_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        parse_vin(data)
    assert exc.value.reason == "j1939_vin_malformed"
