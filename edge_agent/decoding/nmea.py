"""NMEA 0183 decoding: text lines from a GNSS receiver in, one ``Fix`` per receiver epoch out.

pynmea2 splits sentences into named fields; its types stop here. We verify the checksum ourselves
(so "missing" and "wrong" are counted apart), validate every field we use, and merge the GGA, RMC,
GLL, VTG, GSA and ZDA sentences that share one UTC time-of-day into a single ``Fix``. Any talker is
accepted (GP, GN, GL, GA, BD, GB, QZ, ...): multi-constellation receivers mix them in one epoch.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, field

import pynmea2

from edge_agent.counters import Counters
from edge_agent.errors import DecodeError
from edge_agent.model import Fix, TimedLine

log = logging.getLogger(__name__)

# 1 international knot = 1 nautical mile (1852 m, by definition) per hour.
KNOTS_TO_MPS = 1852.0 / 3600.0
# 1 km/h = 1000 m / 3600 s.
KMH_TO_MPS = 1000.0 / 3600.0
# NMEA 0183 4.10 limits a sentence to 82 characters including $ and CR LF; real receivers exceed
# it (u-blox GSV, proprietary), so we only refuse lines that are clearly not one sentence.
MAX_SENTENCE_CHARS = 512
_SECONDS_PER_DAY = 86400.0
# A time-of-day that jumps back by more than half a day is a midnight rollover, not jitter.
_ROLLOVER_THRESHOLD_S = _SECONDS_PER_DAY / 2

USED_TYPES = frozenset({"GGA", "RMC", "GLL", "VTG", "GSA", "ZDA"})
# NMEA 0183: "$" + address + fields + "*" + two hex digits (XOR of all chars between $ and *).
_SENTENCE_RE = re.compile(r"^[$!]([\x20-\x7e]*?)\*([0-9A-Fa-f]{2})$")
_TIME_RE = re.compile(r"^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$")
_DATE_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})$")


@dataclass
class _Epoch:
    """Fields gathered from the sentences of one receiver epoch (one UTC time-of-day)."""

    tod: float | None = None
    date: dt.date | None = None
    lat: float | None = None
    lon: float | None = None
    status_valid: bool | None = None
    quality: int | None = None
    satellites: int | None = None
    altitude_m: float | None = None
    hdop: float | None = None
    pdop: float | None = None
    vdop: float | None = None
    mode: int | None = None
    gsa_prns: set[str] = field(default_factory=set)
    speed_mps: float | None = None
    course_deg: float | None = None
    vtg_speed_mps: float | None = None
    vtg_course_deg: float | None = None
    talker: str = ""
    has_position_sentence: bool = False
    received_at: float = 0.0


def _checksum(body: str) -> int:
    value = 0
    for ch in body:
        value ^= ord(ch)
    return value


def _opt_float(raw: str | None, name: str, lo: float = -math.inf, hi: float = math.inf) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise DecodeError("nmea_field", f"{name}={raw!r}") from exc
    if not (lo <= value <= hi) or math.isnan(value):
        raise DecodeError("nmea_field", f"{name}={raw!r} out of range")
    return value


def _opt_int(raw: str | None, name: str, lo: int, hi: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise DecodeError("nmea_field", f"{name}={raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise DecodeError("nmea_field", f"{name}={raw!r} out of range")
    return value


def parse_time(raw: str | None) -> float | None:
    """``hhmmss[.sss]`` to seconds of the UTC day; ``None`` if empty, DecodeError if impossible."""
    if raw is None or raw == "":
        return None
    m = _TIME_RE.match(raw)
    if not m:
        raise DecodeError("nmea_field", f"time={raw!r}")
    hh, mm, ss = int(m.group(1)), int(m.group(2)), float(m.group(3))
    # ss up to 60.x allows a leap second (UTC 23:59:60).
    if hh > 23 or mm > 59 or ss >= 61.0:
        raise DecodeError("nmea_field", f"time={raw!r}")
    return hh * 3600 + mm * 60 + ss


def parse_coord(raw: str | None, hemi: str | None, is_lat: bool) -> float | None:
    """``(d)ddmm.mmmm`` + hemisphere to signed decimal degrees (NMEA 0183 lat/lon format)."""
    if raw is None or raw == "":
        return None
    name = "lat" if is_lat else "lon"
    limit = 90.0 if is_lat else 180.0
    good_hemi = ("N", "S") if is_lat else ("E", "W")
    if hemi not in good_hemi:
        raise DecodeError("nmea_field", f"{name} hemisphere={hemi!r}")
    try:
        value = float(raw)
    except ValueError as exc:
        raise DecodeError("nmea_field", f"{name}={raw!r}") from exc
    degrees = math.floor(value / 100.0)
    minutes = value - degrees * 100.0
    if value < 0 or minutes >= 60.0:
        raise DecodeError("nmea_field", f"{name}={raw!r}")
    decimal = degrees + minutes / 60.0
    if decimal > limit:
        raise DecodeError("nmea_field", f"{name}={raw!r} out of range")
    return -decimal if hemi in ("S", "W") else decimal


def _rmc_date(raw: str | None) -> dt.date | None:
    if raw is None or raw == "":
        return None
    m = _DATE_RE.match(raw)
    if not m:
        raise DecodeError("nmea_field", f"date={raw!r}")
    day, month, yy = int(m.group(1)), int(m.group(2)), int(m.group(3))
    # RMC carries a two-digit year; GNSS receivers postdate 1980 (GPS epoch), so 80-99 is 19xx.
    year = 1900 + yy if yy >= 80 else 2000 + yy
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise DecodeError("nmea_field", f"date={raw!r}") from exc


class NmeaDecoder:
    """Feed lines one at a time; get back the fixes of the epochs that completed."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._epoch: _Epoch | None = None
        self._last_date: dt.date | None = None
        self._last_tod: float | None = None

    # -- public front door -------------------------------------------------------------------
    def feed(self, line: TimedLine) -> list[Fix]:
        """Decode one line. Bad lines are counted per reason and skipped; never raises."""
        try:
            return self._feed(line)
        except DecodeError as exc:
            # Counted for the dashboard; the line itself only at DEBUG (a noisy port would flood).
            self._counters.decode_error(exc.reason)
            log.debug("NMEA line skipped (%s): %r", exc, line.text[:100])
            return []
        except Exception:  # a library surprise must not stop the GNSS pipeline
            self._counters.decode_error("nmea_parse")
            return []

    def flush(self) -> list[Fix]:
        """Emit the pending epoch (end of a capture, or the source closed)."""
        fixes = self._emit()
        self._epoch = None
        return fixes

    # -- internals ---------------------------------------------------------------------------
    def _feed(self, line: TimedLine) -> list[Fix]:
        text = line.text.strip()
        # Serial noise or a truncated sentence often precedes a good one on the same line: the
        # sentence starts at the last "$" (or "!" for AIS-style encapsulation).
        start = max(text.rfind("$"), text.rfind("!"))
        if start < 0:
            raise DecodeError("nmea_not_sentence", text[:40])
        sentence = text[start:]
        if len(sentence) > MAX_SENTENCE_CHARS:
            raise DecodeError("nmea_parse", "over-long sentence")
        if "*" not in sentence:
            raise DecodeError("nmea_checksum_missing", sentence[:40])
        m = _SENTENCE_RE.match(sentence)
        if not m:
            raise DecodeError("nmea_checksum", sentence[:40])
        body, given = m.group(1), int(m.group(2), 16)
        if _checksum(body) != given:
            raise DecodeError("nmea_checksum", sentence[:40])
        address = body.split(",", 1)[0]
        if sentence[0] != "$" or len(address) != 5 or address.startswith("P"):
            # AIS (!), proprietary ($P...) and query sentences are valid but not ours.
            self._counters.inc("sentences")
            self._counters.inc("sentences_ignored")
            return []
        talker, kind = address[:2], address[2:]
        if kind not in USED_TYPES:
            self._counters.inc("sentences")
            self._counters.inc("sentences_ignored")
            return []
        try:
            msg = pynmea2.parse(sentence, check=False)
        except (pynmea2.ParseError, ValueError, TypeError) as exc:
            raise DecodeError("nmea_parse", sentence[:40]) from exc
        names = [f[1] for f in msg.fields]
        raw: dict[str, str] = dict(zip(names, msg.data, strict=False))
        return self._apply(kind, talker, raw, line.received_at)

    def _apply(self, kind: str, talker: str, raw: dict[str, str], received_at: float) -> list[Fix]:
        # Validate everything first so a bad sentence changes nothing (epoch state stays clean).
        tod = parse_time(raw.get("timestamp")) if kind in ("GGA", "RMC", "GLL", "ZDA") else None
        values: dict[str, object] = {}
        if kind == "GGA":
            values["lat"] = parse_coord(raw.get("lat"), raw.get("lat_dir"), True)
            values["lon"] = parse_coord(raw.get("lon"), raw.get("lon_dir"), False)
            values["quality"] = _opt_int(raw.get("gps_qual"), "quality", 0, 9)
            values["satellites"] = _opt_int(raw.get("num_sats"), "satellites", 0, 255)
            values["hdop"] = _opt_float(raw.get("horizontal_dil"), "hdop", 0.0, 100.0)
            values["altitude_m"] = _opt_float(raw.get("altitude"), "altitude", -1000.0, 100000.0)
        elif kind == "RMC":
            status = raw.get("status", "")
            if status not in ("A", "V", ""):
                raise DecodeError("nmea_field", f"status={status!r}")
            values["status_valid"] = None if status == "" else status == "A"
            values["lat"] = parse_coord(raw.get("lat"), raw.get("lat_dir"), True)
            values["lon"] = parse_coord(raw.get("lon"), raw.get("lon_dir"), False)
            knots = _opt_float(raw.get("spd_over_grnd"), "speed", 0.0, 10000.0)
            values["speed_mps"] = None if knots is None else knots * KNOTS_TO_MPS
            values["course_deg"] = _opt_float(raw.get("true_course"), "course", 0.0, 360.0)
            values["date"] = _rmc_date(raw.get("datestamp"))
        elif kind == "GLL":
            # GLL (position + time + status) is what some receivers are configured to send alone.
            status = raw.get("status", "")
            if status not in ("A", "V", ""):
                raise DecodeError("nmea_field", f"status={status!r}")
            values["status_valid"] = None if status == "" else status == "A"
            values["lat"] = parse_coord(raw.get("lat"), raw.get("lat_dir"), True)
            values["lon"] = parse_coord(raw.get("lon"), raw.get("lon_dir"), False)
        elif kind == "ZDA":
            day = _opt_int(raw.get("day"), "day", 1, 31)
            month = _opt_int(raw.get("month"), "month", 1, 12)
            year = _opt_int(raw.get("year"), "year", 1980, 2200)
            if day is not None and month is not None and year is not None:
                try:
                    values["date"] = dt.date(year, month, day)
                except ValueError as exc:
                    raise DecodeError("nmea_field", "zda date") from exc
        elif kind == "VTG":
            kmh = _opt_float(raw.get("spd_over_grnd_kmph"), "speed_kmh", 0.0, 20000.0)
            knots = _opt_float(raw.get("spd_over_grnd_kts"), "speed_kts", 0.0, 10000.0)
            values["vtg_speed_mps"] = (
                kmh * KMH_TO_MPS if kmh is not None else None if knots is None else knots * KNOTS_TO_MPS
            )
            values["vtg_course_deg"] = _opt_float(raw.get("true_track"), "course", 0.0, 360.0)
        else:  # GSA
            values["mode"] = _opt_int(raw.get("mode_fix_type"), "mode", 1, 3)
            values["pdop"] = _opt_float(raw.get("pdop"), "pdop", 0.0, 100.0)
            values["hdop"] = _opt_float(raw.get("hdop"), "hdop", 0.0, 100.0)
            values["vdop"] = _opt_float(raw.get("vdop"), "vdop", 0.0, 100.0)
            prns = {raw.get(f"sv_id{i:02d}", "") for i in range(1, 13)} - {""}
            values["prns"] = prns

        self._counters.inc("sentences")
        fixes: list[Fix] = []
        if tod is not None and self._epoch is not None and self._epoch.tod not in (None, tod):
            fixes = self._emit()
            self._epoch = None
        if self._epoch is None:
            self._epoch = _Epoch(received_at=received_at)
        epoch = self._epoch
        if tod is not None:
            epoch.tod = tod
        self._merge(epoch, kind, talker, values)
        return fixes

    @staticmethod
    def _merge(epoch: _Epoch, kind: str, talker: str, values: dict[str, object]) -> None:
        if kind in ("GGA", "RMC", "GLL"):
            epoch.has_position_sentence = True
            if not epoch.talker or kind == "RMC":
                epoch.talker = talker
        for key, value in values.items():
            if value is None:
                continue
            if key == "prns":
                assert isinstance(value, set)
                epoch.gsa_prns |= value
            elif key == "mode":
                # One GSA per constellation: the epoch's mode is the best any of them reports.
                assert isinstance(value, int)
                epoch.mode = max(epoch.mode or 0, value)
            elif key in ("lat", "lon") and getattr(epoch, key) is not None and kind != "GGA":
                continue  # GGA's position is kept when both carry one (same epoch, same solution)
            elif key == "hdop" and kind == "GSA" and epoch.hdop is not None:
                continue  # GGA's HDOP wins; GSA's is the fallback
            elif key == "status_valid" and kind == "GLL" and epoch.status_valid is not None:
                continue  # RMC's status wins over GLL's
            elif key in ("pdop", "vdop") and getattr(epoch, key) is not None:
                continue  # first GSA of the epoch carries the combined solution's DOPs
            else:
                setattr(epoch, key, value)

    def _emit(self) -> list[Fix]:
        epoch = self._epoch
        if epoch is None or epoch.tod is None or not epoch.has_position_sentence:
            return []
        timestamp = self._timestamp(epoch)
        has_position = epoch.lat is not None and epoch.lon is not None
        valid = has_position
        if epoch.status_valid is not None:
            valid = valid and epoch.status_valid
        if epoch.quality is not None:
            valid = valid and epoch.quality > 0
        if epoch.status_valid is None and epoch.quality is None:
            valid = False
        satellites = epoch.satellites
        if satellites is None and epoch.gsa_prns:
            satellites = len(epoch.gsa_prns)
        fix = Fix(
            timestamp=timestamp,
            # No position: NaN, never a fake 0/0 ("null island"); such fixes are valid=False.
            lat=epoch.lat if epoch.lat is not None else math.nan,
            lon=epoch.lon if epoch.lon is not None else math.nan,
            valid=valid,
            quality=epoch.quality,
            mode=epoch.mode,
            satellites=satellites,
            hdop=epoch.hdop,
            pdop=epoch.pdop,
            vdop=epoch.vdop,
            altitude_m=epoch.altitude_m,
            speed_mps=epoch.speed_mps if epoch.speed_mps is not None else epoch.vtg_speed_mps,
            course_deg=epoch.course_deg if epoch.course_deg is not None else epoch.vtg_course_deg,
            talker=epoch.talker,
        )
        self._counters.inc("fixes")
        if not valid:
            self._counters.inc("fixes_rejected")
        return [fix]

    def _timestamp(self, epoch: _Epoch) -> float:
        tod = epoch.tod
        assert tod is not None
        if epoch.date is not None:
            date = epoch.date
        elif self._last_date is not None:
            date = self._last_date
            if self._last_tod is not None and tod < self._last_tod - _ROLLOVER_THRESHOLD_S:
                date = date + dt.timedelta(days=1)  # midnight passed with no RMC/ZDA since
        else:
            # No date ever seen: take the agent's receive date, choosing the day that puts the fix
            # closest to when the line arrived (a fix at 23:59:59 read at 00:00:01 is yesterday's).
            received = dt.datetime.fromtimestamp(epoch.received_at, dt.UTC).date()
            candidates = [received + dt.timedelta(days=d) for d in (-1, 0, 1)]
            date = min(candidates, key=lambda d: abs(_epoch_seconds(d, tod) - epoch.received_at))
            self._last_tod = tod
            return _epoch_seconds(date, tod)
        self._last_date = date
        self._last_tod = tod
        return _epoch_seconds(date, tod)


def _epoch_seconds(date: dt.date, tod: float) -> float:
    midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    return midnight.timestamp() + tod
