"""Shared strategies and comparisons for the wire tests."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from edge_agent.wire import Batch, WireRecord
from edge_agent.wire.kinds import PositionCodec

BIG = 2**1024 - 1
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-BIG, max_value=BIG),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
generic_payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@st.composite
def position_payloads(draw: st.DrawFn) -> dict[str, Any]:
    p: dict[str, Any] = {
        "lat": draw(st.floats(-90, 90)),
        "lon": draw(st.floats(-180, 180)),
    }
    optional = {
        "altitude_m": st.floats(-500, 9000),
        "speed_mps": st.floats(0, 100),
        "course_deg": st.floats(0, 360),
        "hdop": st.floats(0, 99.99),
        "quality": st.integers(0, 8),
        "satellites": st.integers(0, 64),
        "mode": st.integers(1, 3),
    }
    for key, strat in optional.items():
        if draw(st.booleans()):
            p[key] = draw(strat)
    return p


sample_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.integers(-20000, 20000).map(lambda m: m * 0.125),
    st.integers(-20000, 20000).map(lambda m: m * 0.05 + 1.0),
)


@st.composite
def sample_payloads(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "signal": draw(st.sampled_from(["engine_speed", "wheel_speed", "coolant_temp", "ünït"])),
        "value": draw(sample_values),
        "unit": draw(st.sampled_from(["rpm", "km/h", "°C", ""])),
        "source": draw(st.sampled_from(["j1939:0x00", "obd:0x7E8"])),
    }


times = st.floats(-1e11, 1e11)


@st.composite
def records(draw: st.DrawFn, max_size: int = 30) -> list[WireRecord]:
    n = draw(st.integers(0, max_size))
    out = []
    next_id = draw(st.integers(0, 2**40))
    for _ in range(n):
        kind = draw(st.sampled_from(["position", "sample", "other"]))
        if kind == "position":
            payload = draw(position_payloads() | generic_payloads)
        elif kind == "sample":
            payload = draw(sample_payloads() | generic_payloads)
        else:
            kind = draw(st.text(min_size=1, max_size=20))
            payload = draw(generic_payloads)
        ts = draw(times)
        recv = ts + draw(st.floats(-5, 5)) if draw(st.booleans()) else draw(times)
        recv = max(-1e11, min(1e11, recv))
        out.append(WireRecord(next_id, kind, draw(st.integers(-(2**31), 2**31 - 1)), ts, recv, payload))
        next_id += draw(st.integers(1, 2**20))
    return out


def same(a: Any, b: Any) -> bool:
    """Exact equality that also holds for NaN, tells -0.0 from 0.0 and 1 from 1.0 from True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


#: Documented bounds (edge_agent/wire/kinds.py), plus float rounding of the restored value.
POSITION_BOUNDS = {"lat": 0.5e-7, "lon": 0.5e-7, "altitude_m": 0.05, "speed_mps": 0.005, "course_deg": 0.005,
                   "hdop": 0.005}
M_PER_DEG = 111_320.0


def time_close(sent: float, got: float) -> bool:
    # Half a millisecond, plus the float spacing of the restored value (1.5e-5 s near 1e11 s).
    return abs(sent - got) <= 0.5e-3 + abs(sent) * 2**-51


def check_record(sent: WireRecord, got: WireRecord) -> None:
    assert (got.id, got.kind, got.priority) == (sent.id, sent.kind, sent.priority)
    assert time_close(sent.timestamp, got.timestamp), (sent.timestamp, got.timestamp)
    assert time_close(sent.received_at, got.received_at), (sent.received_at, got.received_at)
    if sent.kind == "position" and PositionCodec.fits(sent.payload):
        assert got.payload.keys() == sent.payload.keys()
        for key, value in sent.payload.items():
            if key in POSITION_BOUNDS:
                assert type(got.payload[key]) is float
                assert abs(got.payload[key] - value) <= POSITION_BOUNDS[key] * (1 + 1e-9), (key, value, got.payload)
            else:
                assert same(value, got.payload[key])
        # "within 1 cm": both axes together, in metres on the ground
        dlat = (got.payload["lat"] - sent.payload["lat"]) * M_PER_DEG
        dlon = (got.payload["lon"] - sent.payload["lon"]) * M_PER_DEG * math.cos(math.radians(sent.payload["lat"]))
        assert math.hypot(dlat, dlon) < 0.01
    else:
        expected = {k: list(v) if isinstance(v, tuple) else v for k, v in sent.payload.items()}
        assert same(expected, got.payload), (sent.payload, got.payload)


def check_batch(sent: Batch, got: Batch) -> None:
    assert (got.device_id, got.boot_epoch, got.seq, got.prev_hash, got.schema_version) == (
        sent.device_id, sent.boot_epoch, sent.seq, sent.prev_hash, sent.schema_version)
    assert same(sent.created_at, got.created_at)
    assert len(got.records) == len(sent.records)
    for s, g in zip(sent.records, got.records, strict=True):
        check_record(s, g)
