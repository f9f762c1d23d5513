"""The v1 canonical body: round trips within documented bounds, determinism, hostile bodies."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.wire import GENESIS_HASH, Batch, InvalidRecord, WireError, WireRecord, decode_body, encode_body
from edge_agent.wire.codec import get_format
from edge_agent.wire.kinds import PositionCodec, SampleCodec
from edge_agent.wire.values import V_RAW, classify, restore
from tests.edge_agent.wire.helpers import check_batch, records, same


def _batch(recs: list[WireRecord] | tuple[WireRecord, ...]) -> Batch:
    return Batch("dev-1", 1, 2, GENESIS_HASH, 1_764_000_000.25, tuple(recs))


def _round_trip(recs: list[WireRecord]) -> tuple[bytes, Batch]:
    raw = encode_body(_batch(recs))
    return raw, _batch(decode_body(raw, len(recs)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(max_size=20))
def test_round_trip_mixed_kinds_within_bounds_and_canonical(recs: list[WireRecord]) -> None:
    raw, got = _round_trip(recs)
    check_batch(_batch(recs), got)
    # Decoding lands on the quantisation grid, so encoding the decoded batch gives the same bytes.
    assert encode_body(got) == raw


def test_empty_batch() -> None:
    raw, got = _round_trip([])
    assert got.records == ()
    assert decode_body(raw, 0) == ()


def test_positions_round_trip_bounds_on_a_dense_grid() -> None:
    rng = random.Random(1)
    recs = []
    for i in range(2000):
        p = {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180), "altitude_m": rng.uniform(-400, 8000),
             "speed_mps": rng.uniform(0, 70), "course_deg": rng.uniform(0, 360), "hdop": rng.uniform(0.5, 30),
             "quality": rng.randint(0, 8), "satellites": rng.randint(0, 40), "mode": rng.randint(1, 3)}
        ts = 1.7e9 + i + rng.random()
        recs.append(WireRecord(i, "position", 10, ts, ts + rng.random(), p))
    _, got = _round_trip(recs)
    check_batch(_batch(recs), got)
    worst = max(abs(g.payload["lat"] - s.payload["lat"]) for s, g in zip(recs, got.records, strict=True))
    assert 0 < worst <= 0.5e-7 * (1 + 1e-9)  # lossy, and bounded by half a step of 1e-7 degree


def test_samples_are_lossless_for_every_float() -> None:
    specials = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 2.0**40,
                -(2.0**40) + 0.5, 1234.125, 87.3984375, 27.85, 1e-9, 123456789.123456789]
    values: list[float | int] = [*specials, 0, -1, 2**100, -(2**1024 - 1)]
    recs = [WireRecord(i, "sample", 10, 1.0 + i, 1.0 + i, {"signal": "s", "value": v, "unit": "u", "source": "x"})
            for i, v in enumerate(values)]
    assert all(SampleCodec.fits(r.payload) for r in recs)
    _, got = _round_trip(recs)
    for s, g in zip(recs, got.records, strict=True):
        assert same(s.payload, g.payload), (s.payload, g.payload)


@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 40))
def test_classify_is_exact_whatever_the_hint(value: float, hint: int) -> None:
    c, m = classify(value, hint)
    if c != V_RAW:
        assert same(restore(c, m), value)
    else:
        assert not math.isfinite(value) or value == 0 or all(classify(value, h)[0] == V_RAW for h in range(V_RAW))


@pytest.mark.parametrize(("scale", "offset"), [(0.4, 0.0), (0.05, 0.0), (0.392156862745098, 0.0), (0.00195312, 0.0),
                                               (0.001, 0.0), (0.125, 0.0), (0.03125, -273.0), (1.0, -40.0)])
def test_bus_values_of_common_scalings_are_not_raw(scale: float, offset: float) -> None:
    # raw * scale + offset is how the edge decodes J1939 and DBC signals (edge_agent/decoding/catalog.py)
    for raw in range(0, 4000, 7):
        assert classify(raw * scale + offset)[0] != V_RAW, (raw, scale)


def test_misfit_payloads_of_columnar_kinds_travel_generic_and_exact() -> None:
    odd: list[tuple[str, dict[str, Any]]] = [
        ("position", {"lat": math.nan, "lon": 1.0}),
        ("position", {"lat": 1, "lon": 2}),  # ints stay ints (no quantisation to float)
        ("position", {"lat": 91.0, "lon": 0.0}),
        ("position", {"lat": 1.0, "lon": 2.0, "extra": "x"}),
        ("position", {"lat": 1.0, "lon": 2.0, "quality": True}),
        ("position", {"lon": 2.0}),
        ("sample", {"signal": "s", "value": "high", "unit": "", "source": "x"}),
        ("sample", {"signal": "s", "value": True, "unit": "", "source": "x"}),
        ("sample", {"signal": "s", "value": 1.0, "source": "x"}),
        ("sample", {"signal": 3, "value": 1.0, "unit": "", "source": "x"}),
    ]
    recs = [WireRecord(i, k, 10, 5.0, 5.0, p) for i, (k, p) in enumerate(odd)]
    assert not any(PositionCodec.fits(r.payload) or SampleCodec.fits(r.payload) for r in recs)
    _, got = _round_trip(recs)
    for s, g in zip(recs, got.records, strict=True):
        assert same(s.payload, g.payload)


def test_identical_input_identical_bytes_whatever_the_dict_order() -> None:
    a = WireRecord(1, "idle_started", 20, 10.0, 10.5, {"b": 1, "a": {"y": 2.5, "x": [1, "z"]}, "c": None})
    b = WireRecord(1, "idle_started", 20, 10.0, 10.5, {"c": None, "a": {"x": [1, "z"], "y": 2.5}, "b": 1})
    p1 = WireRecord(2, "position", 10, 11.0, 11.0, {"lat": 1.5, "lon": 2.5, "mode": 3, "hdop": 0.9})
    p2 = WireRecord(2, "position", 10, 11.0, 11.0, {"hdop": 0.9, "mode": 3, "lon": 2.5, "lat": 1.5})
    assert encode_body(_batch([a, p1])) == encode_body(_batch([b, p2]))
    # NaN payload bits do not leak into the encoding
    nan1 = float.fromhex("nan")
    nan2 = -math.nan
    r1 = WireRecord(3, "k", 0, 0.0, 0.0, {"v": nan1})
    r2 = WireRecord(3, "k", 0, 0.0, 0.0, {"v": nan2})
    assert encode_body(_batch([r1])) == encode_body(_batch([r2]))


def test_tuples_travel_as_lists() -> None:
    r = WireRecord(1, "k", 0, 0.0, 0.0, {"v": (1, (2, 3))})
    _, got = _round_trip([r])
    assert got.records[0].payload == {"v": [1, [2, 3]]}


@pytest.mark.parametrize(
    "payload",
    [{"v": {1, 2}}, {"v": b"bytes"}, {"v": {1: "int key"}}, {"v": 2**1025}, {"v": object()}],
)
def test_encoder_refuses_what_the_format_cannot_carry(payload: dict) -> None:
    with pytest.raises(InvalidRecord) as err:
        encode_body(_batch([WireRecord(1, "k", 0, 0.0, 0.0, payload)]))
    assert err.value.reason == "invalid_record"


def test_encoder_refuses_deep_nesting() -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidRecord):
        encode_body(_batch([WireRecord(1, "k", 0, 0.0, 0.0, {"v": deep})]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 50))
def test_decoding_arbitrary_bytes_raises_wire_error_only(data: bytes, n: int) -> None:
    try:
        decode_body(data, n)
    except WireError as exc:
        assert exc.reason == "malformed"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(max_size=8), st.data())
def test_decoding_damaged_bodies_never_crashes(recs: list[WireRecord], data: st.DataObject) -> None:
    raw = bytearray(encode_body(_batch(recs)))
    if not raw:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        out = decode_body(bytes(raw), len(recs))
    except WireError as exc:
        assert exc.reason == "malformed"
    else:
        assert len(out) == len(recs)


def test_compression_round_trip_and_bounds() -> None:
    fmt = get_format(1)
    raw = bytes(range(256)) * 40
    body = fmt.compress(raw)
    assert len(body) < len(raw)
    assert fmt.decompress(body, len(raw)) == raw
    with pytest.raises(WireError) as short:
        fmt.decompress(body, len(raw) + 5)
    assert short.value.reason == "malformed"
    with pytest.raises(WireError) as bomb:
        fmt.decompress(body, len(raw) - 1)
    assert bomb.value.reason == "decompression_bomb"
    with pytest.raises(WireError) as bad:
        fmt.decompress(b"\xff\xff\xff", 10)
    assert bad.value.reason == "malformed"
