"""Service decoding through the light_obd2 DBC against hand-computed SAE J1979 examples."""

from __future__ import annotations

import pytest

from edge_agent.decoding.obd.dtc import dtc_bytes, dtc_code, parse_dtcs
from edge_agent.decoding.obd.pids import PID_LENGTHS, bitmap_bytes, parse_bitmap
from edge_agent.decoding.obd.services import ServiceDecoder, parse_vin, split_current_data
from edge_agent.errors import DecodeError
from edge_agent.model import ObdDtc, ObdDtcReport, Sample, VehicleId
from firmware_profiles import Profile, load_profile


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile("light_obd2")


@pytest.fixture(scope="module")
def decoder(profile: Profile) -> ServiceDecoder:
    return ServiceDecoder(profile)


def values(decoder: ServiceDecoder, payload: bytes) -> dict[str, float]:
    out = decoder.decode(payload, 5.0, "obd:0x7E8")
    return {s.signal: s.value for s in out.items if isinstance(s, Sample)}


# Each row: PID data bytes and the value worked out by hand from the J1979 formula.
@pytest.mark.parametrize(
    ("pid", "data", "signal", "expected"),
    [
        (0x0C, bytes([0x1A, 0xF8]), "engine_speed", (0x1A * 256 + 0xF8) / 4),  # 1726 rpm
        (0x0C, bytes([0xFF, 0xFF]), "engine_speed", 16383.75),
        (0x0D, bytes([0x32]), "wheel_speed", 50.0),
        (0x05, bytes([0x7B]), "coolant_temp", 0x7B - 40),  # 83 degC
        (0x05, bytes([0x00]), "coolant_temp", -40.0),
        (0x2F, bytes([0xFF]), "fuel_level", 100.0),
        (0x2F, bytes([0x80]), "fuel_level", 100 * 0x80 / 255),
        (0x1F, bytes([0x01, 0x02]), "engine_run_time", 258.0),
        (0xA6, bytes([0x00, 0x07, 0x5B, 0x5D]), "odometer", 0x00075B5D / 10 * 1000),  # km/10 -> m
        (0x5E, bytes([0x01, 0x90]), "fuel_rate", 400 / 20),
        (0x42, bytes([0x32, 0x00]), "battery_voltage", 12.8),
        (0x04, bytes([0x33]), "engine_load", 0x33 * 100 / 255),
        (0x11, bytes([0xFF]), "throttle_position", 100.0),
        (0x0F, bytes([0x41]), "intake_air_temp", 25.0),
        (0x10, bytes([0x01, 0x90]), "mass_air_flow", 4.0),
        (0x46, bytes([0x3A]), "ambient_temp", 18.0),
    ],
)
def test_single_pid_matches_j1979_formula(
    decoder: ServiceDecoder, pid: int, data: bytes, signal: str, expected: float
) -> None:
    assert values(decoder, bytes([0x41, pid]) + data) == {signal: pytest.approx(expected)}


def test_units_come_from_the_profile(decoder: ServiceDecoder) -> None:
    (sample,) = decoder.decode(bytes([0x41, 0xA6, 0, 0, 0, 10]), 7.5, "obd:0x7E8").items
    assert sample == Sample(7.5, "odometer", 1000.0, "obd:0x7E8", "m")


def test_multi_pid_response_is_split_by_j1979_lengths(decoder: ServiceDecoder) -> None:
    payload = bytes(
        [0x41, 0x0C, 0x0B, 0xB8, 0x0D, 0x28, 0x05, 0x82, 0x2F, 0x66, 0x1F, 0x00, 0x3C, 0xA6, 0, 0, 0x01, 0x00]
    )
    assert values(decoder, payload) == pytest.approx(
        {"engine_speed": 750.0, "wheel_speed": 40.0, "coolant_temp": 90.0, "fuel_level": 40.0,
         "engine_run_time": 60.0, "odometer": 25600.0}
    )


def test_pids_the_dbc_lacks_are_skipped_quietly(decoder: ServiceDecoder) -> None:
    # 0x0B intake manifold pressure (1 byte) and 0x01 monitor status (4 bytes) are not in our DBC.
    payload = bytes([0x41, 0x0B, 0x64, 0x0D, 0x10, 0x01, 0x81, 0x07, 0x65, 0x00])
    out = decoder.decode(payload, 1.0, "obd:0x7E8")
    assert not out.partial
    assert {s.signal: s.value for s in out.items if isinstance(s, Sample)} == {"wheel_speed": 16.0}


def test_unknown_pid_in_multi_pid_response_keeps_the_head(decoder: ServiceDecoder) -> None:
    out = decoder.decode(bytes([0x41, 0x0D, 0x10, 0xE5, 0x01, 0x02]), 1.0, "obd:0x7E8")
    assert out.partial and [s.signal for s in out.items if isinstance(s, Sample)] == ["wheel_speed"]


def test_truncated_pid_is_malformed(decoder: ServiceDecoder) -> None:
    with pytest.raises(DecodeError) as err:
        decoder.decode(bytes([0x41, 0x0C, 0x1A]), 1.0, "obd:0x7E8")
    assert err.value.reason == "obd_malformed"


def test_supported_pid_bitmaps(decoder: ServiceDecoder) -> None:
    # Worked by hand: BE=1011_1110 -> 01,03-07; 1F -> 0C-10; A8=1010_1000 -> 11,13,15; 13 -> 1C,1F,20
    out = decoder.decode(bytes([0x41, 0x00, 0xBE, 0x1F, 0xA8, 0x13]), 1.0, "obd:0x7E8")
    assert out.supported[0x00] == {0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11,
                                   0x13, 0x15, 0x1C, 0x1F, 0x20}
    assert parse_bitmap(0xA0, bitmap_bytes(0xA0, {0xA6, 0xC0})) == {0xA6, 0xC0}
    assert PID_LENGTHS[0x0C] == 2 and PID_LENGTHS[0xA6] == 4


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"\x03\x01", "P0301"), (b"\x40\x35", "C0035"), (b"\x92\x34", "B1234"), (b"\xC1\x00", "U0100"),
     (b"\x01\x03", "P0103"), (b"\x3F\xFF", "P3FFF")],
)
def test_dtc_encoding_sae_j2012(raw: bytes, code: str) -> None:
    assert dtc_code(raw[0], raw[1]) == code
    assert dtc_bytes(code) == raw


def test_dtc_responses_with_count_byte(decoder: ServiceDecoder) -> None:
    payload = bytes([0x43, 0x04]) + dtc_bytes("P0301") + dtc_bytes("C0035") + dtc_bytes("B1234") + dtc_bytes("U0100")
    (report,) = decoder.decode(payload, 2.0, "obd:0x7E8").items
    assert isinstance(report, ObdDtcReport) and report.status == "stored"
    assert [d.code for d in report.dtcs] == ["P0301", "C0035", "B1234", "U0100"]
    (pending,) = decoder.decode(bytes([0x47, 0x00]), 2.0, "obd:0x7E9").items
    assert pending == ObdDtcReport(2.0, "pending", "obd:0x7E9", ())
    (permanent,) = decoder.decode(bytes([0x4A, 0x01, 0x04, 0x20]), 2.0, "obd:0x7E8").items
    assert isinstance(permanent, ObdDtcReport)
    assert permanent.dtcs == (ObdDtc("P0420", "permanent", "obd:0x7E8"),)


def test_dtc_count_beyond_payload_is_malformed() -> None:
    with pytest.raises(DecodeError) as err:
        parse_dtcs(bytes([0x43, 0x03, 0x03, 0x01]), "stored", "x")
    assert err.value.reason == "obd_malformed"
    assert parse_dtcs(bytes([0x43, 0x02, 0x03, 0x01, 0x00, 0x00]), "stored", "x") == (ObdDtc("P0301", "stored", "x"),)


def test_vin_strips_count_byte_and_padding(decoder: ServiceDecoder) -> None:
    (vid,) = decoder.decode(bytes([0x49, 0x02, 0x01]) + b"WF0XXXTTGXKA12345", 3.0, "obd:0x7E8").items
    assert vid == VehicleId(3.0, "WF0XXXTTGXKA12345", "obd:0x7E8")
    assert parse_vin(bytes([0x49, 0x02, 0x01, 0, 0]) + b"WF0XXXTTGXKA12345"[:15] + b"45") == "WF0XXXTTGXKA12345"
    with pytest.raises(DecodeError):
        parse_vin(bytes([0x49, 0x02, 0x01]) + b"SHORT")


def test_negative_response(decoder: ServiceDecoder) -> None:
    assert decoder.decode(bytes([0x7F, 0x01, 0x12]), 1.0, "obd:0x7E8").negative == (0x01, 0x12)
    with pytest.raises(DecodeError):
        decoder.decode(bytes([0x7F, 0x01]), 1.0, "obd:0x7E8")


def test_split_single_unknown_pid_takes_the_rest() -> None:
    assert split_current_data(bytes([0x41, 0xE9, 1, 2, 3])) == ([(0xE9, bytes([1, 2, 3]))], True)


def test_dbc_agrees_with_the_j1979_length_table_and_cites_it(profile: Profile) -> None:
    message = profile.database.get_message_by_name("OBD2")
    for sig in message.signals:
        if sig.multiplexer_ids is None:
            continue
        (pid,) = sig.multiplexer_ids
        assert sig.length == 8 * PID_LENGTHS[pid], sig.name  # the DBC and the splitter agree on size
        assert sig.byte_order == "big_endian" and sig.start == 31, sig.name  # data starts at byte 3, A first
        assert f"J1979 PID 0x{pid:02X}" in (sig.comment or ""), sig.name
    mapped = {s.pid for s in profile.signals.values()}
    assert mapped == {pid for sig in message.signals if sig.multiplexer_ids for pid in sig.multiplexer_ids}
