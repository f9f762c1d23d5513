"""Store fixtures: every store/ingest test runs against a SQLite file and a PostgreSQL database.

PostgreSQL: ``FLEET_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
names a server and a maintenance database; one uniquely named database is created per test session
and dropped at its end, and each test gets an empty migrated schema in it (``store_reset``). Unreachable
server: the PostgreSQL cases skip, except under ``CI=true`` where they fail (CI has PostgreSQL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from cloud_sync.store import make_engine, migrate
from tests.cloud_sync.store_reset import PgBaseline, copy_sqlite, pg_baseline, reset_pg, sqlite_template

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SKIP_MESSAGE = "PostgreSQL not reachable at 127.0.0.1:5432; start it or set FLEET_TEST_PG_URL to run these"


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    admin_url = make_url(os.environ.get("FLEET_TEST_PG_URL", DEFAULT_PG_URL))
    admin = make_engine(admin_url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT",
                        connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL is not reachable at {admin_url!r}: {exc}")
        pytest.skip(SKIP_MESSAGE)
    name = f"fleet_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_store_baseline(pg_database_url: str) -> PgBaseline:
    """The session database, migrated from nothing once; ``reset_pg`` brings it back to this per test."""
    return pg_baseline(pg_database_url)


@pytest.fixture(scope="session")
def sqlite_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sqlite_template(tmp_path_factory.mktemp("store-template"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated, empty store on each backend (see tests/cloud_sync/store_reset.py for how it is made fresh)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "cloud.db"
        copy_sqlite(request.getfixturevalue("sqlite_store_template"), path)
        eng = make_engine(f"sqlite:///{path}")
    else:
        eng = make_engine(request.getfixturevalue("pg_database_url"))
        reset_pg(eng, request.getfixturevalue("pg_store_baseline"))
    migrate(eng)  # a no-op on a current store; kept so the fixture's promise does not rest on the copy alone
    try:
        yield eng
    finally:
        eng.dispose()

