"""NmeaDecoder against real gpsd captures, every corrupt case, multi-GSA epochs, rollover, fuzz."""

from __future__ import annotations

import datetime as dt
import math
from functools import reduce
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.counters import Counters
from edge_agent.decoding.nmea import KNOTS_TO_MPS, NmeaDecoder
from edge_agent.model import Fix, TimedLine

DATA = Path(__file__).resolve().parents[2] / "data"


def _cs(body: str) -> str:
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}"


def _decode(lines: list[str], received_at: float = 0.0) -> tuple[list[Fix], Counters]:
    c = Counters()
    d = NmeaDecoder(c)
    out: list[Fix] = []
    for line in lines:
        out += d.feed(TimedLine(received_at, line))
    return out + d.flush(), c


def test_gn_capture_multi_gsa_and_no_fix_tail() -> None:
    lines = (DATA / "real/nmea/gnss_drive.nmea").read_text().splitlines()
    fixes, c = _decode(lines)
    epochs = sorted({ln.split(",")[1] for ln in lines if ln[3:6] in ("GGA", "RMC")})
    assert len(fixes) == len(epochs)
    ts = [f.timestamp for f in fixes]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    first = fixes[0]
    # $GNRMC,081411.000,A,5541.1955,N,03737.2872,E,0.60,301.29,260514
    assert first.timestamp == dt.datetime(2014, 5, 26, 8, 14, 11, tzinfo=dt.UTC).timestamp()
    assert math.isclose(first.lat, 55 + 41.1955 / 60) and math.isclose(first.lon, 37 + 37.2872 / 60)
    assert math.isclose(first.speed_mps or 0, 0.60 * KNOTS_TO_MPS) and first.talker == "GN"
    # no GGA in the first epoch: satellites = PRNs used across its two GNGSA (4 GPS + 2 GLONASS)
    assert first.satellites == 6 and first.quality is None and first.valid
    # epoch 081412: GGA 5 sats hdop 4.87, two GNGSA (GPS 4 PRNs, GLONASS 1) with pdop 4.97
    second = fixes[1]
    assert (second.satellites, second.hdop, second.pdop, second.mode) == (5, 4.87, 4.97, 3)
    invalid = [f for f in fixes if not f.valid]
    assert c.get("fixes_rejected") == len(invalid) == 10
    assert all(math.isnan(f.lat) for f in invalid)
    assert c.decode_errors() == {"nmea_not_sentence": 9}  # the licence header lines


def test_gp_capture_southern_eastern() -> None:
    fixes, c = _decode((DATA / "real/nmea/bu353s4_gp.nmea").read_text().splitlines())
    assert len(fixes) == 25 and c.get("fixes") == 25 and c.get("fixes_rejected") == 0
    assert all(-38 < f.lat < -37 and 175 < f.lon < 176 for f in fixes)
    f = fixes[0]
    assert (f.quality, f.satellites, f.altitude_m, f.pdop, f.vdop) == (1, 8, 59.9, 1.8, 1.5)
    assert f.timestamp == dt.datetime(2014, 12, 31, 3, 7, 19, tzinfo=dt.UTC).timestamp()


def test_corrupt_file_each_reason_counted() -> None:
    lines = (DATA / "corrupt/nmea/mixed_bad.nmea").read_text().splitlines()
    fixes, c = _decode(lines)
    assert fixes == []
    assert c.decode_errors() == {
        "nmea_checksum": 1,
        "nmea_checksum_missing": 2,
        "nmea_not_sentence": 1,
        "nmea_field": 2,
    }


def test_lowercase_checksum_crlf_and_leading_garbage() -> None:
    good = _cs("GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    lower = good[:-2] + good[-2:].lower()
    fixes, c = _decode(["\x00\xff#" + lower + "\r\n"], received_at=1_700_000_000.0)
    assert len(fixes) == 1 and fixes[0].valid and c.decode_errors() == {}
    assert math.isclose(fixes[0].lat, 48 + 7.038 / 60)


def test_vtg_speed_and_gga_midnight_rollover() -> None:
    lines = [
        _cs("GPRMC,235959.00,A,4807.038,N,01131.000,E,,,311224,,,A"),
        _cs("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"),
        _cs("GPGGA,000000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
    ]
    fixes, _ = _decode(lines)
    assert math.isclose(fixes[0].speed_mps or 0, 10.2 / 3.6) and fixes[0].course_deg == 54.7
    assert fixes[1].timestamp - fixes[0].timestamp == 1.0
    assert fixes[1].timestamp == dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()


def test_no_date_uses_received_day_nearest() -> None:
    recv = dt.datetime(2024, 3, 2, 0, 0, 2, tzinfo=dt.UTC).timestamp()
    fixes, _ = _decode([_cs("GNGGA,235959.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")], recv)
    assert fixes[0].timestamp == recv - 3


def test_empty_fields_give_invalid_fix() -> None:
    fixes, c = _decode([_cs("GPGGA,081420.000,,,,,0,0,,,M,,M,,"), _cs("GPRMC,081420.000,V,,,,,,,260514,,,N")])
    assert len(fixes) == 1 and not fixes[0].valid and c.get("fixes_rejected") == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=120).map(lambda b: b.decode("latin-1")), st.text(max_size=120))))
def test_fuzz_never_raises(lines: list[str]) -> None:
    _decode(lines + ["$" + ln for ln in lines])


def test_bad_sentence_mid_epoch_keeps_accepted_data() -> None:
    gga = _cs("GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    bad_rmc = _cs("GPRMC,120000.00,A,9907.038,N,01131.000,E,1.0,10.0,010124,,,A")
    gsa = _cs("GNGSA,A,3,01,02,03,,,,,,,,,,1.5,0.9,1.2")
    fixes, c = _decode([gga, bad_rmc, gsa])
    assert len(fixes) == 1 and fixes[0].valid and fixes[0].altitude_m == 545.4 and fixes[0].pdop == 1.5
    assert fixes[0].speed_mps is None  # the rejected RMC contributed nothing
    assert c.decode_errors() == {"nmea_field": 1}


def test_any_talker_gll_only_and_gsa_satellite_union() -> None:
    lines = [
        _cs("BDGLL,4807.038,N,01131.000,W,120000.00,A,A"),
        _cs("GPGSA,A,3,01,02,03,,,,,,,,,,1.5,0.9,1.2"),
        _cs("GAGSA,A,2,301,302,,,,,,,,,,,1.5,0.9,1.2"),
        _cs("QZGLL,4807.038,S,01131.000,E,120001.00,V,N"),
    ]
    fixes, c = _decode(lines, received_at=1_700_000_000.0)
    assert [f.valid for f in fixes] == [True, False] and c.get("fixes_rejected") == 1
    assert fixes[0].lon < 0 and fixes[1].lat < 0 and fixes[0].talker == "BD"
    assert fixes[0].satellites == 5 and fixes[0].mode == 3  # union of PRNs, best mode of the GSAs


def test_ignored_and_proprietary_sentences_counted() -> None:
    lines = [_cs("GPGSV,1,1,01,08,88,068,30"), _cs("PUBX,00,foo"), _cs("GPTXT,01,01,02,ANTSTATUS=OK")]
    fixes, c = _decode(lines)
    assert fixes == [] and c.get("sentences_ignored") == 3 and c.decode_errors() == {}


_FIELD = st.text(alphabet="0123456789.,-NSEWAVMKTn ", max_size=12)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GPGGA", "GNRMC", "GLGSA", "GPVTG", "GPZDA", "BDGLL", "GPGSV", "PUBX"]),
            st.lists(_FIELD, max_size=20),
        ),
        max_size=30,
    )
)
def test_fuzz_checksummed_sentences_never_raise(sentences: list[tuple[str, list[str]]]) -> None:
    """Checksums right, fields arbitrary: every path past the checksum is exercised."""
    lines = [_cs(",".join([addr, *fields])) for addr, fields in sentences]
    fixes, c = _decode(lines, received_at=1_700_000_000.0)
    errors = sum(c.decode_errors().values())
    assert c.get("sentences") + errors == len(lines)  # each line is either accepted or counted
    assert all(f.valid is False or (-90 <= f.lat <= 90 and -180 <= f.lon <= 180) for f in fixes)
