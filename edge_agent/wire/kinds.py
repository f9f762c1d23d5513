"""Columnar codecs (format v1) for the two record kinds that make up almost all traffic.

A record of kind "position" or "sample" whose payload fits the codec's shape goes here; any other
payload of those kinds (an extra key, a NaN coordinate, a str where a number belongs) takes the
generic form in ``values`` so nothing is ever dropped or coerced.

Positions (payload from ``edge_agent.pipeline``: lat, lon, optional altitude_m, speed_mps,
course_deg, hdop, quality, satellites, mode) are quantised; each bound is half the resolution:

==============  ===========  ==============================================================
field           resolution   why it is enough
==============  ===========  ==============================================================
lat, lon        1e-7 degree  about 1.1 cm of latitude; NMEA 0183 GGA/RMC give at most 5-7
                             decimals of a minute (u-blox: 5 -> 1.7e-7 degree), far above the
                             noise of any non-RTK receiver. Bound: 0.5e-7 degree (< 6 mm).
altitude_m      0.1 m        GGA field 9 (antenna altitude above MSL) has one decimal on the
                             receivers we support; vertical accuracy is metres anyway.
speed_mps       0.01 m/s     RMC/VTG give knots to 2-3 decimals (0.001 kn = 0.0005 m/s) but
                             receiver speed accuracy is about 0.05 m/s (u-blox M8: 0.05 m/s).
course_deg      0.01 degree  RMC field 8 / VTG field 1 carry two decimals.
hdop            0.01         GGA field 8 / GSA carry at most two decimals.
quality, satellites, mode    exact ints.
==============  ===========  ==============================================================

Quantised integers go in columns (one column per field, records in batch order): lat and lon as
second-order deltas (a vehicle at steady speed and heading gives residuals near zero), the rest as
first-order deltas from the previous record that has the field; a presence bitmap per record says
which optional fields it has.

Samples (signal, value, unit, source) are lossless: signal names are string-table indices; unit
and source are written as 0 when equal to the previous sample of the same signal (they nearly always
are); the value is an int, a float that is exactly ``mantissa / 2**k``, ``mantissa / 10**e`` or
``mantissa * scale`` (see ``values.classify``: J1939 and OBD-II scalings make nearly every decoded
value one of these), or any
other float (NaN, infinities, -0.0, huge) stored as raw binary64. Mantissas are deltas from the
previous sample of the same signal.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.wire.columns import DecodedPositions, DecodedSamples
from edge_agent.wire.errors import WireError
from edge_agent.wire.values import RESTORE_DIVIDE, RESTORE_FACTORS, V_INT, V_RAW, StringTable, classify, restore
from edge_agent.wire.varint import MAX_INT_BITS, Reader, Writer
from native import kernel

_columns = kernel("wire_varint")


@dataclass(frozen=True)
class Quantity:
    """One quantised float field of a position: ``round(value * scale)`` travels."""

    key: str
    scale: float
    limit: float  # |value| above this goes generic, so quantised ints stay small

    def quantise(self, value: float) -> int:
        return round(value * self.scale)

    def restore(self, q: int) -> float:
        return q / self.scale


LAT = Quantity("lat", 1e7, 90.0)
LON = Quantity("lon", 1e7, 180.0)
#: Optional float fields, in presence-bit order (bit 0 first).
POSITION_FLOATS = (
    Quantity("altitude_m", 10.0, 1e6),
    Quantity("speed_mps", 100.0, 1e5),
    Quantity("course_deg", 100.0, 1e5),
    Quantity("hdop", 100.0, 1e5),
)
#: Optional int fields, presence bits after the floats; exact within +-2**31.
POSITION_INTS = ("quality", "satellites", "mode")
_INT_LIMIT = 2**31
_PRESENCE_BITS = len(POSITION_FLOATS) + len(POSITION_INTS)
_POSITION_KEYS = frozenset({"lat", "lon", *(q.key for q in POSITION_FLOATS), *POSITION_INTS})


def _plain_float(value: object, limit: float) -> bool:
    return type(value) is float and math.isfinite(value) and abs(value) <= limit


def _plain_int(value: object, limit: int) -> bool:
    return type(value) is int and -limit <= value < limit


class PositionCodec:
    """Columnar, quantised positions (see module docstring for resolutions and bounds)."""

    kind = "position"

    @staticmethod
    def fits(payload: dict[str, Any]) -> bool:
        if not payload.keys() <= _POSITION_KEYS or "lat" not in payload or "lon" not in payload:
            return False
        if not (_plain_float(payload["lat"], LAT.limit) and _plain_float(payload["lon"], LON.limit)):
            return False
        for q in POSITION_FLOATS:
            if q.key in payload and not _plain_float(payload[q.key], q.limit):
                return False
        return all(_plain_int(payload[k], _INT_LIMIT) for k in POSITION_INTS if k in payload)

    @staticmethod
    def encode(w: Writer, table: StringTable, payloads: list[dict[str, Any]]) -> None:
        for p in payloads:
            bits = 0
            for i, q in enumerate(POSITION_FLOATS):
                if q.key in p:
                    bits |= 1 << i
            for i, k in enumerate(POSITION_INTS, start=len(POSITION_FLOATS)):
                if k in p:
                    bits |= 1 << i
            w.uvarint(bits)
        w.delta_column((LAT.quantise(p["lat"]) for p in payloads), order=2)
        w.delta_column((LON.quantise(p["lon"]) for p in payloads), order=2)
        for q in POSITION_FLOATS:
            w.delta_column((q.quantise(p[q.key]) for p in payloads if q.key in p), order=1)
        for k in POSITION_INTS:
            w.delta_column((p[k] for p in payloads if k in p), order=1)

    @staticmethod
    def decode(r: Reader, strings: list[str], n: int) -> DecodedPositions:
        bits = r.uvarint_column(n)
        if n and max(bits) >> _PRESENCE_BITS:
            raise WireError("malformed", "position presence bits beyond the known fields")
        lat = [a / LAT.scale for a in r.delta_column(n, order=2)]
        lon = [b / LON.scale for b in r.delta_column(n, order=2)]
        optional: dict[str, Sequence[float | int | None]] = {}
        for i, key in enumerate((*(q.key for q in POSITION_FLOATS), *POSITION_INTS)):
            scale = POSITION_FLOATS[i].scale if i < len(POSITION_FLOATS) else 0.0
            have = [b >> i & 1 for b in bits]
            quantised = r.delta_column(sum(have), order=1)
            values: Sequence[float | int] = [v / scale for v in quantised] if scale else quantised
            if len(values) == n:
                optional[key] = values
            elif values:  # some positions lack the field
                it = iter(values)
                optional[key] = [next(it) if h else None for h in have]
        return DecodedPositions(lat, lon, optional)


_SAMPLE_KEYS = frozenset({"signal", "value", "unit", "source"})


class SampleCodec:
    """Columnar, lossless samples (see module docstring)."""

    kind = "sample"

    @staticmethod
    def fits(payload: dict[str, Any]) -> bool:
        if payload.keys() != _SAMPLE_KEYS:
            return False
        if not all(type(payload[k]) is str for k in ("signal", "unit", "source")):
            return False
        v = payload["value"]
        return type(v) is float or (type(v) is int and v.bit_length() <= MAX_INT_BITS)

    @staticmethod
    def encode(w: Writer, table: StringTable, payloads: list[dict[str, Any]]) -> None:
        signals = [table.ref(p["signal"]) for p in payloads]
        for s in signals:
            w.uvarint(s)
        for key in ("unit", "source"):
            last: dict[int, int] = {}
            for s, p in zip(signals, payloads, strict=True):
                ref = table.ref(p[key])
                w.uvarint(0 if last.get(s) == ref else ref + 1)
                last[s] = ref
        hints: dict[int, int] = {}
        classes: list[tuple[int, int]] = []
        for s, p in zip(signals, payloads, strict=True):
            c, m = classify(p["value"], hints.get(s, -1))
            hints[s] = c
            classes.append((c, m))
        for c, _ in classes:
            w.uvarint(c)
        prev: dict[int, int] = {}
        for s, (c, m) in zip(signals, classes, strict=True):
            if c != V_RAW:
                w.svarint(m - prev.get(s, 0))
                prev[s] = m
        for p, (c, _) in zip(payloads, classes, strict=True):
            if c == V_RAW:
                w.f64(p["value"])

    @staticmethod
    def decode(r: Reader, strings: list[str], n: int) -> DecodedSamples:
        signal_refs = r.uvarint_column(n)
        if n and max(signal_refs) >= len(strings):
            raise WireError("malformed", f"string index {max(signal_refs)} outside a table of {len(strings)}")
        signal_refs = _int64(signal_refs)
        signals = [strings[s] for s in signal_refs]
        extra: dict[str, list[str]] = {}
        for key in ("unit", "source"):
            codes = r.uvarint_column(n)
            if n and max(codes) > len(strings):
                raise WireError("malformed", f"string index {max(codes) - 1} outside a table of {len(strings)}")
            status, refs = _columns.sample_refs(signal_refs, _int64(codes), len(strings))
            if status:
                raise WireError("malformed", f"sample {key} refers to a previous one that does not exist")
            extra[key] = [strings[i] for i in refs]
        classes = r.uvarint_column(n)
        if n and max(classes) > V_RAW:
            raise WireError("malformed", f"sample value class {max(classes)}")
        classes = _int64(classes)
        raw_count = classes.count(V_RAW)
        values = _sample_values(signal_refs, classes, r.svarint_column(n - raw_count), len(strings))
        if raw_count:
            for i, c in enumerate(classes):
                if c == V_RAW:
                    values[i] = r.f64()
        return DecodedSamples(signals, values, extra["unit"], extra["source"])


def _int64(column: Sequence[int]) -> array:
    """A column the caller has range-checked, as the kernels' int64 array (a non-canonical long
    varint makes ``Reader`` return a list)."""
    return column if isinstance(column, array) else array("q", column)


def _sample_values(signal_refs: array, classes: array, mantissas: Sequence[int], n_strings: int) -> list[float | int]:
    """Values of the non-raw samples (raw ones are 0.0 here): the kernel, or this loop when a mantissa
    leaves int64 (only a hostile or absurd batch; Python ints carry it)."""
    try:
        status, floats, ints = _columns.sample_values(signal_refs, classes, _int64(mantissas), RESTORE_FACTORS,
                                                      RESTORE_DIVIDE, n_strings, V_INT, V_RAW)
    except OverflowError:
        status = _columns.WIDE
    if not status:
        values: list[float | int] = floats.tolist()
        if V_INT in classes:
            for i, c in enumerate(classes):
                if c == V_INT:
                    values[i] = ints[i]
        return values
    values = []
    prev: dict[int, int] = {}
    it = iter(mantissas)
    for s, c in zip(signal_refs, classes, strict=True):
        if c == V_RAW:
            values.append(0.0)
            continue
        m = prev.get(s, 0) + next(it)
        prev[s] = m
        values.append(m if c == V_INT else restore(c, m))
    return values


#: Codec tag (per record, in the body) -> columnar codec; tag 0 is the generic form.
COLUMNAR: dict[int, type[PositionCodec] | type[SampleCodec]] = {1: PositionCodec, 2: SampleCodec}
