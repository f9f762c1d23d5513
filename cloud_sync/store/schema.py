"""The cloud store's tables, as SQLAlchemy 2 Core ``metadata`` (one schema for SQLite and PostgreSQL).

Identity and idempotency live in the primary keys: a batch is ``(device_id, boot_epoch, seq)``
(``edge_agent.wire.model.Batch.key``), a record is ``(device_id, record_id)`` so a record the edge
re-sends in another batch after a crash is stored once. ``positions`` and ``events`` are
denormalised copies of some records for range queries; ``records`` holds everything.

Times are float seconds since the Unix epoch (the wire carries milliseconds), three per record:
``device_time`` (when the vehicle measured it), ``edge_received_at`` (when the agent stored it) and
``cloud_received_at`` (when ingest first stored it). ``created_at`` of a batch is the device's
clock, ``received_at`` the cloud's; their difference is the clock skew reported in ``device_health``.

``records``, ``positions`` and ``events`` carry no foreign key to ``devices``: they are only written by
``store.batches`` after the batch row (which has one) in the same transaction, and a per-row key check
costs PostgreSQL about a tenth of the insert. ``records`` has no secondary index for the same reason:
its primary key (device, record id) already serves per-device scans.

Payloads are JSON (JSONB on PostgreSQL for ``events``). JSON has no NaN or infinity, so such floats are stored
tagged as ``{"$float": "nan"}`` (the convention of the wire's golden files); see ``store.engine``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: JSON on SQLite, JSONB on PostgreSQL (indexable, queryable payloads) for events. ``records`` keeps
#: plain JSON on both: it takes every sample, and jsonb's parse on insert costs more than it is worth there.
Payload = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
PlainJSON = JSON(none_as_null=True)
DeviceId = String(64)  # edge_agent.wire.model.DEVICE_ID_RE allows at most 64 characters
Kind = String(64)  # edge_agent.wire.model.MAX_KIND_CHARS

devices = Table(
    "devices",
    metadata,
    Column("id", DeviceId, primary_key=True),
    Column("public_key_pem", Text, nullable=False),
    Column("vin", String(17)),  # ISO 3779: a VIN is 17 characters
    Column("profile", String(64)),
    Column("depot", String(128)),
    Column("revoked_at", Double),
    Column("created_at", Double, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("device_id", DeviceId, ForeignKey("devices.id"), primary_key=True),
    Column("boot_epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("created_at", Double, nullable=False),  # device clock
    Column("received_at", Double, nullable=False),  # cloud clock
    Column("record_count", Integer, nullable=False),
    Column("schema_version", Integer, nullable=False),
)
# Cross-epoch chain links are found by hash (a new boot epoch's first batch names the last one before it).
Index("batches_by_hash", batches.c.device_id, batches.c.hash)
Index("batches_by_prev_hash", batches.c.device_id, batches.c.prev_hash)

records = Table(
    "records",
    metadata,
    Column("device_id", DeviceId, primary_key=True),
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Kind, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("device_time", Double, nullable=False),
    Column("edge_received_at", Double, nullable=False),
    Column("cloud_received_at", Double, nullable=False),
    # The earliest batch (by (boot_epoch, seq)) that carried the record, whatever order batches arrive in.
    Column("boot_epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("payload", PlainJSON, nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("device_id", DeviceId, primary_key=True),
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("device_time", Double, nullable=False),
    Column("lat", Double),
    Column("lon", Double),
    Column("speed_mps", Double),
    Column("course_deg", Double),
)
Index("positions_by_time", positions.c.device_id, positions.c.device_time, positions.c.record_id)

events = Table(
    "events",
    metadata,
    Column("device_id", DeviceId, primary_key=True),
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Kind, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("device_time", Double, nullable=False),
    Column("payload", Payload, nullable=False),
)
Index("events_by_kind_time", events.c.device_id, events.c.kind, events.c.device_time, events.c.record_id)
Index("events_by_time", events.c.device_id, events.c.device_time, events.c.record_id)

chain_gaps = Table(
    "chain_gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", DeviceId, ForeignKey("devices.id"), nullable=False),
    Column("boot_epoch", BigInteger, nullable=False),
    Column("seq_from", BigInteger, nullable=False),  # first missing seq (inclusive)
    Column("seq_to", BigInteger, nullable=False),  # last missing seq (inclusive); seq_to + 1 was received
    Column("detected_at", Double, nullable=False),
    Column("filled_at", Double),  # no longer open: every seq stored, or accounted for (``explanation``)
    # NULL when filled by data; else why the missing batches are not missing data (``store.refusals``).
    Column("explanation", Text),
)
Index("chain_gaps_by_epoch", chain_gaps.c.device_id, chain_gaps.c.boot_epoch, chain_gaps.c.seq_to)

device_health = Table(
    "device_health",
    metadata,
    Column("device_id", DeviceId, ForeignKey("devices.id"), primary_key=True),
    Column("last_boot_epoch", BigInteger),
    Column("last_seq", BigInteger),
    Column("last_batch_created_at", Double),  # device clock of the newest batch (by cloud arrival)
    Column("last_batch_received_at", Double),  # cloud clock of that arrival
    Column("clock_skew_s", Double),  # cloud received_at - device created_at of that batch
    Column("backlog_records", BigInteger),  # as the device last reported it (see ingest.BACKLOG_KEY)
    Column("backlog_reported_at", Double),  # device time of that report
    Column("batches_committed", BigInteger, nullable=False, default=0),
    Column("records_received", BigInteger, nullable=False, default=0),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(128), nullable=False),
    Column("applied_at", Double, nullable=False),
)
