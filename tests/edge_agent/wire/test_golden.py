"""Golden files pin format v1: today's code must read them to the expected JSON and write them again
byte for byte, and the generator must still reproduce them."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from edge_agent.wire import GENESIS_HASH, batch_hash, encode_body, load_private_key, open_batch, read_header, seal
from edge_agent.wire.codec import get_format
from edge_agent.wire.golden import KEY_FILE, to_jsonable

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "wire"
V1 = sorted((DATA / "v1").glob("*.bin"))
KEY = load_private_key(DATA / KEY_FILE)


def _open(blob: bytes):
    return open_batch(blob, lambda device: KEY.public_key() if device == "golden-dev-01" else None)


def test_there_are_golden_files() -> None:
    assert [p.stem for p in V1] == ["01_empty", "02_positions", "03_samples", "04_mixed"]


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
def test_golden_file_decodes_to_its_json(path: Path) -> None:
    blob = path.read_bytes()
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert expected["format_version"] == 1 and blob[4] == 1
    assert to_jsonable(_open(blob)) == expected["batch"]
    assert batch_hash(blob).hex() == expected["sha256"]


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
def test_golden_file_re_encodes_identically(path: Path) -> None:
    blob = path.read_bytes()
    batch = _open(blob)
    header, body_at = read_header(blob)
    raw = get_format(1).decompress(blob[body_at : body_at + header.body_len], header.raw_len)
    assert encode_body(batch) == raw  # the canonical body, independent of the deflate implementation
    sealed_with = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["sealed_with_zlib"]
    if sealed_with != zlib.ZLIB_RUNTIME_VERSION:
        pytest.skip(f"deflate output compared only with zlib {sealed_with} (running {zlib.ZLIB_RUNTIME_VERSION})")
    assert seal(batch, KEY) == blob


def test_golden_files_form_a_chain() -> None:
    prev = GENESIS_HASH
    for path in V1:
        blob = path.read_bytes()
        assert _open(blob).prev_hash == prev
        prev = batch_hash(blob)


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    out = tmp_path / "v1"
    # Without a key file next to OUTDIR the generator derives the same test key from its fixed phrase.
    proc = subprocess.run([sys.executable, "-m", "edge_agent.wire.golden", str(out)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / KEY_FILE).read_bytes() == (DATA / KEY_FILE).read_bytes()
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in (DATA / "v1").iterdir())
    for name in written:
        if name.endswith(".json"):
            assert json.loads((out / name).read_text()) == json.loads((DATA / "v1" / name).read_text()), name
        elif json.loads((DATA / "v1" / name).with_suffix(".json").read_text())[
                "sealed_with_zlib"] == zlib.ZLIB_RUNTIME_VERSION:
            assert (out / name).read_bytes() == (DATA / "v1" / name).read_bytes(), name


ACKS = DATA / "acks"


def test_golden_acks_decode_and_re_encode_identically() -> None:
    """Acks of both versions, as clouds wrote them (v1: before the hash binding), still parse."""
    from edge_agent.wire import Ack, decode_ack, encode_ack

    expected = json.loads((ACKS / "expected.json").read_text(encoding="utf-8"))
    assert sorted(expected) == sorted(p.stem for p in ACKS.glob("*.ack"))
    assert {name.split("_")[0] for name in expected} == {"v1", "v2"}
    for name, fields in expected.items():
        data = (ACKS / f"{name}.ack").read_bytes()
        h = fields["batch_hash"]
        want = Ack(**{**fields, "batch_hash": None if h is None else bytes.fromhex(h)})
        assert decode_ack(data) == want, name
        assert encode_ack(want) == data, name
    # The v2 acks answer golden batches: their hashes are those batches' SHA-256.
    positions = json.loads((DATA / "v1" / "02_positions.json").read_text(encoding="utf-8"))
    assert expected["v2_committed"]["batch_hash"] == positions["sha256"]
