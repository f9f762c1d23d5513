"""Fresh, migrated stores for each test without running every migration for each test.

Running the migrations on PostgreSQL costs about a second of DDL per test (hundreds of tests, CI's time
budget), and ``DROP DATABASE`` forces checkpoints, so a database per test is no cheaper. Instead:

- PostgreSQL: the migrations run for real once per session (per xdist worker) on an emptied schema; that
  schema's shape (tables, columns, indexes, constraints, sequences, views, triggers, functions) is kept as
  a fingerprint and the rows the migrations wrote (schema versions, the audit chain's head) are copied to
  a side schema. Each test's reset then deletes every row, puts those rows back and restarts the
  sequences, which leaves the same state a fresh migration would. When a test changed the shape (renamed
  or dropped a table, dropped the schema), the fingerprint differs and the reset drops the schema and
  migrates from scratch, as before.
- SQLite: the migrations run once into a template file, copied (SQLite's backup API) per test.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from cloud_sync.store import make_engine, migrate

#: Where the rows written by the migrations are kept between tests (never touched by the code under test).
SEED_SCHEMA = "fleet_test_seed"

_SHAPE = text("""
SELECT 'col', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
       || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT 'idx', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'con', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'seq', sequencename || ' ' || start_value::text FROM pg_sequences WHERE schemaname = 'public'
UNION ALL SELECT 'view', viewname FROM pg_views WHERE schemaname = 'public'
UNION ALL SELECT 'trg', c.relname || ' ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
UNION ALL SELECT 'fn', p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
ORDER BY 1, 2
""")


@dataclass(frozen=True)
class PgBaseline:
    """The freshly migrated schema's shape, its tables, and which of them the migrations wrote rows to."""

    shape: tuple[tuple[str, str], ...]
    tables: tuple[str, ...]
    seeded: tuple[str, ...]


def _shape(engine: Engine) -> tuple[tuple[str, str], ...]:
    with engine.connect() as conn:
        return tuple((str(kind), str(what)) for kind, what in conn.execute(_SHAPE))


def _drop_and_migrate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)


def pg_baseline(url: str) -> PgBaseline:
    """Migrate ``url``'s database from an empty schema and record what a reset must restore."""
    engine = make_engine(url)
    try:
        _drop_and_migrate(engine)
        with engine.begin() as conn:
            tables = tuple(sorted(str(t) for t in conn.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))))
            seeded = tuple(t for t in tables if conn.scalar(text(f'SELECT EXISTS (SELECT 1 FROM "{t}")')))
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SEED_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SEED_SCHEMA}"))
            for table in seeded:
                conn.execute(text(f'CREATE TABLE {SEED_SCHEMA}."{table}" AS TABLE public."{table}"'))
        return PgBaseline(_shape(engine), tables, seeded)
    finally:
        engine.dispose()


def reset_pg(engine: Engine, baseline: PgBaseline) -> None:
    """Leave ``engine``'s database as the migrations alone would: empty tables but the migrations' rows."""
    if _shape(engine) != baseline.shape:
        _drop_and_migrate(engine)  # a test changed the schema: start from nothing, as a new database would
        return
    try:
        with engine.begin() as conn:
            # Foreign keys are not checked while replicating (a superuser's setting; FLEET_TEST_PG_URL may name
            # another role, which takes the slow path): every row goes, in any order, in one transaction.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in baseline.tables:
                conn.execute(text(f'DELETE FROM public."{table}"'))
            for table in baseline.seeded:
                conn.execute(text(f'INSERT INTO public."{table}" SELECT * FROM {SEED_SCHEMA}."{table}"'))
            conn.execute(text("SELECT setval(format('public.%I', sequencename), start_value, false) "
                              "FROM pg_sequences WHERE schemaname = 'public'"))
    except DBAPIError:
        _drop_and_migrate(engine)


def sqlite_template(directory: Path) -> Path:
    """A migrated SQLite store in ``directory``, to be copied by ``copy_sqlite``."""
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return path


def copy_sqlite(template: Path, target: Path) -> None:
    """Copy the template store page by page (consistent even if a WAL file was left beside it)."""
    with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
