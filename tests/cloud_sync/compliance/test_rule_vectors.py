"""Every bundled rule pack against its published test vectors (``rules/<pack>.vectors.toml``)."""

from __future__ import annotations

import pytest

from cloud_sync.compliance import rulepack, vectors

CASES = [(name, v.id) for name in rulepack.available() for v in vectors.load(rulepack.load(name))]


def test_every_pack_has_vectors() -> None:
    assert set(rulepack.available()) >= {"us_fmcsa_property", "eu_561_2006"}
    for name in rulepack.available():
        assert len([c for c in CASES if c[0] == name]) >= 10, name


@pytest.mark.parametrize(("pack_name", "vector_id"), CASES, ids=[f"{p}:{v}" for p, v in CASES])
def test_vector(pack_name: str, vector_id: str) -> None:
    pack = rulepack.load(pack_name)
    vector = next(v for v in vectors.load(pack) if v.id == vector_id)
    assert vectors.mismatches(pack, vector) == []
