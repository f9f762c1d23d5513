"""Property: any duplication and reordering of a valid batch stream ends in the same database state.

The stream is sealed with a real Ed25519 key and looks like a device's life: two boot epochs whose chain
continues across the reboot, and records re-sent in a later batch after a (simulated) crash. Hypothesis
picks the delivery order and the duplicates; each example ingests into a fresh store, SQLite and
PostgreSQL, and compares a canonical dump of records, batches, positions, events and open gaps with
the dump of in-order delivery.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine, migrate
from tests.cloud_sync.helpers import T0, SimDevice, dump
from tests.cloud_sync.store_reset import PgBaseline, copy_sqlite, reset_pg

RECEIVED = T0 + 86_400.0


def _stream() -> tuple[SimDevice, list[bytes]]:
    rng = random.Random(42)
    dev = SimDevice("prop-dev")
    blobs = [dev.batch(dev.records(rng, 25)) for _ in range(3)]
    resend = dev.records(rng, 20)
    blobs.append(dev.batch(resend[:12]))
    dev.reboot()  # crash: the outbox re-batches rows 8..20 under a new boot epoch
    blobs.append(dev.batch(resend[8:]))
    blobs += [dev.batch(dev.records(rng, 15)) for _ in range(2)]
    return dev, blobs


DEVICE, BLOBS = _stream()


class Stores:
    """Fresh, migrated stores per example (a copied SQLite template, or the PostgreSQL schema reset; see
    tests/cloud_sync/store_reset.py)."""

    def __init__(self, tmp: Path, sqlite: Path | None, pg: tuple[str, PgBaseline] | None) -> None:
        self.tmp, self.sqlite = tmp, sqlite
        self.n = 0
        self._pg: Engine | None = make_engine(pg[0]) if pg else None
        self._baseline = pg[1] if pg else None

    def fresh(self) -> Engine:
        self.n += 1
        if self._pg is None:
            assert self.sqlite is not None
            path = self.tmp / f"{self.n}.db"
            copy_sqlite(self.sqlite, path)
            engine = make_engine(f"sqlite:///{path}")
        else:
            assert self._baseline is not None
            engine = self._pg
            reset_pg(engine, self._baseline)
        migrate(engine)
        DEVICE.register(engine)
        return engine

    def run(self, order: list[int]) -> dict[str, Any]:
        engine = self.fresh()
        ingestor = Ingestor(engine)
        for i in order:
            ack = ingestor.ingest(BLOBS[i], RECEIVED)
            assert ack.status in ("committed", "duplicate"), ack
        state = dump(engine)
        if self._pg is None:
            engine.dispose()
        return state


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    tmp = tmp_path_factory.mktemp("prop")
    if request.param == "postgresql":
        s = Stores(tmp, None, (request.getfixturevalue("pg_database_url"),
                               request.getfixturevalue("pg_store_baseline")))
    else:
        s = Stores(tmp, request.getfixturevalue("sqlite_store_template"), None)
    yield s
    if s._pg is not None:
        s._pg.dispose()


@st.composite
def deliveries(draw: st.DrawFn) -> list[int]:
    order = list(draw(st.permutations(range(len(BLOBS)))))
    for _ in range(draw(st.integers(0, 6))):  # MQTT QoS 1 and retries deliver some batches again
        order.insert(draw(st.integers(0, len(order))), draw(st.integers(0, len(BLOBS) - 1)))
    return order


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=deliveries())
def test_any_duplication_or_reordering_gives_the_same_state(stores: Stores, order: list[int]) -> None:
    reference = getattr(stores, "reference", None)
    if reference is None:
        reference = stores.reference = stores.run(list(range(len(BLOBS))))  # type: ignore[attr-defined]
        assert reference["open_gaps"] == [] and len(reference["batches"]) == len(BLOBS)
        assert len(reference["records"]) == 3 * 25 + 20 + 2 * 15  # re-sent rows stored once
    assert stores.run(order) == reference
