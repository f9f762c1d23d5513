"""Batch, record and ack types: limits refused with a reason, acks round-trip as JSON."""

from __future__ import annotations

import math

import pytest

from edge_agent.model import Priority
from edge_agent.wire import GENESIS_HASH, Ack, Batch, InvalidRecord, WireError, WireRecord, decode_ack, encode_ack
from edge_agent.wire.model import MAX_ABS_TIME_S


def test_record_normalises_enums_and_ints() -> None:
    r = WireRecord(1, "position", Priority.PERIODIC, 5, 6, {})
    assert type(r.priority) is int and r.priority == 10
    assert type(r.timestamp) is float and r.timestamp == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": -1}, {"id": True}, {"id": 2**63}, {"kind": ""}, {"kind": "k" * 65}, {"kind": 3},
        {"priority": 2**31}, {"priority": 1.5}, {"timestamp": math.nan}, {"timestamp": math.inf},
        {"received_at": MAX_ABS_TIME_S * 1.01}, {"timestamp": "1"}, {"payload": [1]},
    ],
)
def test_record_refuses_out_of_range(kwargs: dict) -> None:
    base = {"id": 1, "kind": "k", "priority": 0, "timestamp": 0.0, "received_at": 0.0, "payload": {}}
    with pytest.raises(InvalidRecord) as err:
        WireRecord(**{**base, **kwargs})
    assert err.value.reason == "invalid_record"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device_id": ""}, {"device_id": "a/b"}, {"device_id": "x" * 65}, {"device_id": "ünï"},
        {"boot_epoch": -1}, {"seq": -1}, {"prev_hash": b"\x00" * 31}, {"prev_hash": "00" * 32},
        {"created_at": math.nan}, {"schema_version": 0},
        {"records": (WireRecord(1, "k", 0, 0.0, 0.0), WireRecord(1, "j", 0, 0.0, 0.0))},
        {"records": ({"id": 1},)},
    ],
)
def test_batch_refuses_out_of_range(kwargs: dict) -> None:
    base = {"device_id": "truck-0042", "boot_epoch": 0, "seq": 0, "prev_hash": GENESIS_HASH, "created_at": 0.0}
    with pytest.raises(InvalidRecord):
        Batch(**{**base, **kwargs})


def test_batch_key_and_list_records() -> None:
    b = Batch("truck-0042", 3, 9, bytearray(32), 1.0, [WireRecord(1, "k", 0, 0.0, 0.0)])  # type: ignore[arg-type]
    assert b.key == ("truck-0042", 3, 9)
    assert isinstance(b.records, tuple) and isinstance(b.prev_hash, bytes)


def test_ack_round_trip() -> None:
    for status in ("committed", "rejected", "duplicate"):
        ack = Ack("truck-0042", 3, 9, status, "bad_signature" if status == "rejected" else "", 17)
        data = encode_ack(ack)
        assert decode_ack(data) == ack
        assert data == encode_ack(decode_ack(data))
    assert Ack("d", 1, 1, "committed").releases_rows and Ack("d", 1, 1, "duplicate").releases_rows
    assert not Ack("d", 1, 1, "rejected", "bad_signature").releases_rows


def test_ack_with_hash_is_version_2_and_without_is_version_1() -> None:
    h = bytes(range(32))
    bound = Ack("truck-0042", 3, 9, "committed", stored=17, batch_hash=bytearray(h))  # type: ignore[arg-type]
    assert bound.batch_hash == h and isinstance(bound.batch_hash, bytes)
    data = encode_ack(bound)
    assert b'"v":2' in data and h.hex().encode() in data
    assert decode_ack(data) == bound
    legacy = encode_ack(Ack("truck-0042", 3, 9, "committed", stored=17))
    assert b'"v"' not in legacy and decode_ack(legacy).batch_hash is None
    with pytest.raises(WireError):
        Ack("d", 1, 1, "committed", batch_hash=b"short")


@pytest.mark.parametrize(
    "data",
    [
        b"", b"not json", b"[]", b'{"device_id":"d","boot_epoch":1,"seq":1}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"ok"}',
        b'{"device_id":"d","boot_epoch":1,"seq":true,"status":"committed"}',
        b'{"device_id":"d","boot_epoch":-1,"seq":1,"status":"committed"}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","extra":1}',
        b'{"device_id":"a b","boot_epoch":1,"seq":1,"status":"committed"}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","reason":5}',
        b"\xff\xfe",
        b'{"device_id":"d","pad":"' + b"x" * 5000 + b'"}',
        # version 2 needs its hash, as 64 lowercase hex digits; unknown versions are not guessed at
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":2}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":2,"batch_hash":"ab"}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":2,"batch_hash":"' + b"A" * 64 + b'"}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":2,"batch_hash":7}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":3,"batch_hash":"' + b"a" * 64 + b'"}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","v":true}',
        b'{"device_id":"d","boot_epoch":1,"seq":1,"status":"committed","batch_hash":"' + b"a" * 64 + b'"}',
    ],
)
def test_bad_acks_are_bad_ack(data: bytes) -> None:
    with pytest.raises(WireError) as err:
        decode_ack(data)
    assert err.value.reason == "bad_ack"


def test_the_wire_package_imports_nothing_of_the_edge_runtime() -> None:
    import subprocess
    import sys

    # Of native/ only the selector and the wire's own varint kernel (compiled or twin) may load.
    code = ("import sys, edge_agent.wire, edge_agent.wire.golden; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('paho', 'sqlite3', '_sqlite3', 'sqlite_utils', 'can', 'cantools', 'serial', 'pynmea2', "
            "'tenacity') or (m.startswith('edge_agent.') and not m.startswith('edge_agent.wire') "
            "and m not in ('edge_agent.errors', 'edge_agent.model')) or (m.split('.')[0] == 'native' "
            "and m not in ('native', 'native._wire_varint', 'native.wire_varint_py')))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
