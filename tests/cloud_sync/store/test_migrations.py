"""Migrations and engine settings on both backends."""

from __future__ import annotations

from sqlalchemy import inspect, text

from cloud_sync.store import LATEST_VERSION, current_version, migrate
from cloud_sync.store.engine import dumps_payload, tag_non_finite


def test_migrated_store_is_current_and_migrating_again_is_a_no_op(engine):
    assert current_version(engine) == LATEST_VERSION
    assert migrate(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert {"devices", "batches", "records", "positions", "events", "chain_gaps", "device_health",
            "schema_migrations"} <= tables


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(engine):
    if engine.dialect.name != "sqlite":
        assert engine.dialect.driver == "psycopg"
        return
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_payload_json_is_strict():
    assert dumps_payload({"a": 1.5, "b": "é"}) == '{"a":1.5,"b":"é"}'
    assert dumps_payload({"x": float("nan"), "y": (float("inf"), 1)}) == \
        '{"x":{"$float":"nan"},"y":[{"$float":"inf"},1]}'
    assert tag_non_finite([float("-inf")]) == [{"$float": "-inf"}]
