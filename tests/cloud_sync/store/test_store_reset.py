"""The test stores' reset (tests/cloud_sync/store_reset.py) leaves what a fresh migration leaves: every table's
rows and every sequence as right after migrating an empty schema, also after a test renamed a table."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from cloud_sync.governance import identity
from cloud_sync.governance.roles import Role
from cloud_sync.ingest import Ingestor
from cloud_sync.store import make_engine
from tests.cloud_sync.helpers import T0, SimDevice
from tests.cloud_sync.store_reset import PgBaseline, reset_pg


def _everything(engine: Engine) -> dict[str, object]:
    """Every public table's rows (``applied_at`` included) and every sequence's next value."""
    with engine.connect() as conn:
        tables = conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
        out: dict[str, object] = {t: sorted(map(repr, conn.execute(text(f'SELECT * FROM "{t}"')).all()))
                                  for t in tables}
        out["sequences"] = conn.execute(text("SELECT sequencename, last_value FROM pg_sequences "
                                             "WHERE schemaname = 'public' ORDER BY 1")).all()
    return out


def _dirty(engine: Engine) -> None:
    dev = SimDevice("reset-dev")
    dev.register(engine)
    ack = Ingestor(engine).ingest(dev.batch(dev.records(random.Random(3), 20)), T0)
    assert ack.status == "committed"
    with engine.begin() as conn:
        identity.add_user(conn, "reset-user", Role.ADMIN, None)  # a serial id, an audit entry, a new chain head


@pytest.fixture
def pg_engine(pg_database_url: str, pg_store_baseline: PgBaseline) -> Iterator[Engine]:
    engine = make_engine(pg_database_url)
    reset_pg(engine, pg_store_baseline)
    try:
        yield engine
    finally:
        engine.dispose()


def test_reset_equals_a_fresh_migration(pg_engine: Engine, pg_store_baseline: PgBaseline) -> None:
    # (SQLite stores are copies of a migrated file: nothing there is reset in place.)
    engine, baseline = pg_engine, pg_store_baseline
    fresh = _everything(engine)
    _dirty(engine)
    assert _everything(engine) != fresh
    reset_pg(engine, baseline)
    assert _everything(engine) == fresh
    _dirty(engine)  # the same ids again: the sequences restarted
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE batches RENAME TO batches_away"))
    reset_pg(engine, baseline)  # the schema changed: dropped and migrated from nothing
    after = _everything(engine)
    assert "batches_away" not in after and after.keys() == fresh.keys()
    assert {k: v for k, v in after.items() if k != "schema_migrations"} == \
        {k: v for k, v in fresh.items() if k != "schema_migrations"}
