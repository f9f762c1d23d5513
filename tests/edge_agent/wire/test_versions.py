"""A new format version is a new registry entry: blobs of the old one stay readable."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from edge_agent.wire import WireError, codec, load_private_key, open_batch, seal
from edge_agent.wire.golden import to_jsonable
from edge_agent.wire.sign import MAGIC
from edge_agent.wire.v1 import FormatV1
from tests.edge_agent.wire.test_golden import DATA, KEY_FILE, V1


class FormatV2(FormatV1):
    """A stand-in for a future format (here: raw deflate at level 1 instead of 9)."""

    version = 2

    def compress(self, raw: bytes) -> bytes:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        return c.compress(raw) + c.flush()


FORMAT = FormatV2()


@pytest.fixture
def with_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(codec.FORMATS, 2, f"{__name__}:FORMAT")
    monkeypatch.setattr(codec, "_loaded", {})


def test_old_and_new_versions_open_side_by_side(with_v2: None) -> None:
    key = load_private_key(Path(DATA) / KEY_FILE)
    keys = {"golden-dev-01": key.public_key()}
    for path in V1:
        old = path.read_bytes()
        batch = open_batch(old, keys.get)
        new = seal(batch, key, version=2)
        assert new[: len(MAGIC) + 1] == MAGIC + b"\x02" and old[len(MAGIC)] == 1
        assert to_jsonable(open_batch(new, keys.get)) == to_jsonable(batch)  # (NaN != NaN, hence JSON)


def test_unregistered_version_is_unknown_version() -> None:
    key = load_private_key(Path(DATA) / KEY_FILE)
    blob = bytearray(V1[1].read_bytes())
    blob[len(MAGIC)] = 2
    with pytest.raises(WireError) as err:
        open_batch(bytes(blob), {"golden-dev-01": key.public_key()}.get)
    assert err.value.reason == "unknown_version"
