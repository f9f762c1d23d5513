"""Schema migrations: an ordered list of functions, each applied once and recorded in ``schema_migrations``.

Deliberately lighter than alembic: the list is the history. ``MIGRATIONS[i]`` moves the schema to
version ``i + 1``; a released migration never changes, a schema change appends a new function
(explicit DDL through ``conn``, valid on SQLite and PostgreSQL) and updates ``store.schema`` to match.
``migrate`` runs the missing ones in one transaction each, so a failed step leaves the previous
version in place, and is safe to run on every start (a no-op when current).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, insert, inspect, select, text

from cloud_sync.store import schema

Migration = Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    """Devices, batches, records, positions, events, chain gaps, device health."""
    tables = [schema.devices, schema.batches, schema.records, schema.positions, schema.events,
              schema.chain_gaps, schema.device_health]
    schema.metadata.create_all(conn, tables=tables)


def _v2_provisioning(conn: Connection) -> None:
    """Installer tokens and issued device certificates (``store.provisioning``)."""
    from cloud_sync.store import provisioning

    schema.metadata.create_all(conn, tables=[provisioning.installer_tokens, provisioning.device_certificates])


def _v3_governance(conn: Connection) -> None:
    """Staff users and hashed API tokens (``governance.identity``), the hash-chained audit trail
    (``governance.audit``), and an index for depot-scoped vehicle lists (a vehicle's depot is ``devices.depot``)."""
    from cloud_sync.governance import audit, identity

    schema.metadata.create_all(conn, tables=[identity.users, identity.api_tokens, audit.audit_log, audit.audit_head])
    audit.init_head(conn)
    conn.execute(text("CREATE INDEX IF NOT EXISTS devices_by_depot ON devices (depot)"))


def _v4_device_configs(conn: Connection) -> None:
    """Signed configs per device and version (``store.configs``)."""
    from cloud_sync.store import configs

    schema.metadata.create_all(conn, tables=[configs.device_configs])


def _webhooks(conn: Connection) -> None:
    """Webhook subscriptions and the deliveries queue (``cloud_sync.webhooks.tables``)."""
    from cloud_sync.webhooks import tables

    schema.metadata.create_all(conn, tables=[tables.webhook_subscriptions, tables.webhook_deliveries])


def _maintenance(conn: Connection) -> None:
    """Meter readings, service programs, fault issues, work orders, risk reviews (``cloud_sync.maintenance.tables``)."""
    from cloud_sync.maintenance import tables

    schema.metadata.create_all(conn, tables=tables.ALL)


def _compliance(conn: Connection) -> None:
    """Drivers, duty-status events and DVIRs (``cloud_sync.compliance.tables``)."""
    from cloud_sync.compliance import tables

    schema.metadata.create_all(conn, tables=tables.ALL)


def _device_keys(conn: Connection) -> None:
    """Retired signing keys of devices that rotated theirs (``store.devices.device_keys``)."""
    from cloud_sync.store import devices

    schema.metadata.create_all(conn, tables=[devices.device_keys])


def _batch_refusals(conn: Connection) -> None:
    """Refused and abandoned batches (``store.refusals``), and why a closed chain gap is not missing data."""
    from cloud_sync.store import refusals

    schema.metadata.create_all(conn, tables=[refusals.batch_refusals])
    if "explanation" not in {c["name"] for c in inspect(conn).get_columns("chain_gaps")}:  # v1 made it already
        conn.execute(text("ALTER TABLE chain_gaps ADD COLUMN explanation TEXT"))


MIGRATIONS: list[tuple[str, Migration]] = [
    ("initial", _v1_initial),
    ("provisioning", _v2_provisioning),
    ("governance", _v3_governance),
    ("device_configs", _v4_device_configs),
    ("webhooks", _webhooks),
    ("maintenance", _maintenance),
    ("compliance", _compliance),
    ("device_keys", _device_keys),
    ("batch_refusals", _batch_refusals),
]
LATEST_VERSION = len(MIGRATIONS)


def current_version(engine: Engine) -> int:
    """The schema version of the database (0 for an empty one)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(schema.schema_migrations.name):
            return 0
        versions = conn.execute(select(schema.schema_migrations.c.version)).scalars().all()
    return max(versions, default=0)


def migrate(engine: Engine) -> list[int]:
    """Apply every missing migration in order; returns the versions applied now."""
    schema.metadata.create_all(engine, tables=[schema.schema_migrations])
    applied = []
    for version in range(current_version(engine) + 1, LATEST_VERSION + 1):
        name, step = MIGRATIONS[version - 1]
        with engine.begin() as conn:
            # Another process may be migrating the same database: re-check inside the transaction.
            done = conn.execute(select(schema.schema_migrations.c.version)
                                .where(schema.schema_migrations.c.version == version)).first()
            if done is not None:
                continue
            step(conn)
            conn.execute(insert(schema.schema_migrations).values(version=version, name=name, applied_at=time.time()))
        applied.append(version)
    return applied
