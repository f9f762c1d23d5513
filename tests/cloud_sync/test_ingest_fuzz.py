"""Damaged blobs never crash the ingest and never store anything (SQLite; the checks run before the store).

The intact blob is committed first, so a damaged copy must not change the store, and a "damage" that
cancels out must come back as a duplicate.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine, migrate, schema
from tests.cloud_sync.helpers import SimDevice, count

_tmp = Path(tempfile.mkdtemp(prefix="fleet-fuzz-"))
ENGINE = make_engine(f"sqlite:///{_tmp / 'fuzz.db'}")
migrate(ENGINE)
DEV = SimDevice("fuzz-dev")
DEV.register(ENGINE)
BLOB = DEV.batch(DEV.records(random.Random(5), 60))
INGESTOR = Ingestor(ENGINE)
assert INGESTOR.ingest(BLOB).status == "committed"


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(BLOB)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(blob=damaged())
def test_damaged_blob_is_rejected_with_a_documented_reason_and_nothing_stored(blob):
    from cloud_sync.metrics import REJECT_REASONS

    ack = INGESTOR.ingest(blob)
    if blob == BLOB:
        assert ack.status == "duplicate"
    else:
        assert ack.status == "rejected", ack
        assert ack.reason in REJECT_REASONS, ack.reason
    assert count(ENGINE, schema.batches) == 1 and count(ENGINE, schema.records) == 60
