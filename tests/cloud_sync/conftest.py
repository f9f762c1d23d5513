"""Store fixtures: every store/ingest test runs against a SQLite file and a PostgreSQL database.

PostgreSQL: ``FLEET_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
names a server and a maintenance database; one uniquely named database is created per test session
and dropped at its end, and each test gets an empty schema in it. Unreachable server: the PostgreSQL
cases skip, except under ``CI=true`` where they fail (CI has PostgreSQL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from cloud_sync.store import make_engine, migrate

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


def _reset_pg(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated, empty store on each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "cloud.db"
        eng = make_engine(f"sqlite:///{path}")
    else:
        eng = make_engine(request.getfixturevalue("pg_database_url"))
        _reset_pg(eng)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()

