"""The signed-config envelope: golden files pin it byte for byte; every way a blob can be wrong has its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.wire import VerificationError, WireError, load_private_key
from edge_agent.wire.config import (
    CONFIG_REASONS,
    MAGIC,
    MAX_CONFIG_BYTES,
    SIGNATURE_BYTES,
    SignedConfig,
    canonical_body,
    config_topic,
    open_config,
    seal_config,
)
from edge_agent.wire.config_golden import cases
from edge_agent.wire.golden import KEY_FILE

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "wire"
GOLDEN = sorted((DATA / "config" / "v1").glob("*.bin"))
KEY = load_private_key(DATA / KEY_FILE)
T0 = 1_764_028_800.0


def _config(**overrides: object) -> SignedConfig:
    values: dict[str, object] = {"device_id": "truck-1", "version": 3, "issued_at": T0, "expires_at": T0 + 60}
    values.update(overrides)
    return SignedConfig(**values)  # type: ignore[arg-type]


def _reason(blob: bytes) -> str:
    with pytest.raises(VerificationError) as info:
        open_config(blob, KEY.public_key())
    assert info.value.reason in CONFIG_REASONS
    return info.value.reason


def test_golden_files_exist_and_match_the_generator() -> None:
    assert [p.stem for p in GOLDEN] == [name for name, _ in cases()]
    for path, (_name, config) in zip(GOLDEN, cases(), strict=True):
        assert seal_config(config, KEY) == path.read_bytes()


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_file_opens_to_its_json_and_reseals_identically(path: Path) -> None:
    blob = path.read_bytes()
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert expected["format_version"] == 1 and blob[:5] == MAGIC + b"\x01"
    config = open_config(blob, KEY.public_key())
    assert config.to_json() == expected["config"]
    assert seal_config(config, KEY) == blob


def test_canonical_body_is_sorted_compact_json() -> None:
    body = canonical_body(_config(thresholds={"b": 2, "a": 1.5}))
    assert body == (b'{"device_id":"truck-1","expires_at":1764028860.0,"geofences":null,"issued_at":1764028800.0,'
                    b'"profile":null,"thresholds":{"a":1.5,"b":2.0},"version":3}')
    assert config_topic("truck-1") == "fleet/v1/truck-1/config"


def test_forged_signature() -> None:
    assert _reason(seal_config(_config(), Ed25519PrivateKey.generate())) == "bad_signature"


def test_tampered_body() -> None:
    blob = bytearray(seal_config(_config(), KEY))
    blob[blob.index(b'"version":3') + 10] = ord("9")
    assert _reason(bytes(blob)) == "bad_signature"


@pytest.mark.parametrize(("blob", "reason"), [
    (b"", "truncated"),
    (b"FTW", "truncated"),
    (b"FTWB\x01" + bytes(100), "bad_magic"),
    (b"\x00garbage", "bad_magic"),
    (MAGIC + b"\x01" + bytes(SIGNATURE_BYTES - 1), "truncated"),
    (MAGIC + b"\x02{}" + bytes(SIGNATURE_BYTES), "unknown_version"),
    (bytes(MAX_CONFIG_BYTES + 1), "oversized"),
], ids=["empty", "short", "batch_magic", "garbage", "no_room_for_signature", "version_2", "oversized"])
def test_corrupt_bytes(blob: bytes, reason: str) -> None:
    assert _reason(blob) == reason


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"device_id":"x"}', b"\xff\xfe",
                                  b'{"device_id":"t","version":1,"issued_at":1,"expires_at":NaN,"profile":null,'
                                  b'"thresholds":{},"geofences":null}'])
def test_signed_but_malformed_body(body: bytes) -> None:
    signed = MAGIC + b"\x01" + body
    assert _reason(signed + KEY.sign(signed)) == "malformed"


def test_sealing_refuses_what_the_receiver_would_refuse() -> None:
    fence = {"type": "Feature", "properties": {"id": "x", "pad": "x" * MAX_CONFIG_BYTES}, "geometry": None}
    with pytest.raises(WireError, match="MAX_CONFIG_BYTES"):
        seal_config(_config(geofences=fence), KEY)
    with pytest.raises(WireError, match="strict JSON"):
        seal_config(_config(geofences={"v": float("nan")}), KEY)
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"d": deep}
    with pytest.raises(WireError, match="strict JSON"):
        seal_config(_config(geofences=deep), KEY)


def test_absurd_nesting_in_a_signed_body_is_malformed_not_a_crash() -> None:
    body = (b'{"device_id":"t","version":1,"issued_at":1,"expires_at":2,"profile":null,"thresholds":{},'
            b'"geofences":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    signed = MAGIC + b"\x01" + body
    assert _reason(signed + KEY.sign(signed)) == "malformed"


@pytest.mark.parametrize("overrides", [
    {"device_id": "no/slash"}, {"version": 0}, {"version": True}, {"expires_at": T0}, {"issued_at": float("inf")},
    {"profile": "../etc"}, {"profile": "a.b"}, {"thresholds": {"x": float("nan")}}, {"thresholds": {"x": "1"}},
    {"thresholds": {"": 1}}, {"geofences": [1, 2]},
])
def test_shape_checks(overrides: dict[str, object]) -> None:
    with pytest.raises(VerificationError) as info:
        _config(**overrides)
    assert info.value.reason == "malformed"
