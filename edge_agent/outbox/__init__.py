"""The durable SQLite outbox: everything the agent has to say, kept until the cloud acks it.

``Outbox`` (store.py) is the front door; ``schema.py`` holds the tables, connection settings and
migrations; ``quota.py`` the eviction order and drop reports; ``evict.py`` applies them inside a
transaction and keeps the per-kind totals; ``rows.py`` the row encoding, the quota's size measure
and ``StoredRecord``; ``quarantine.py`` the rows the cloud refused for their content.
"""

from edge_agent.outbox.quarantine import QUARANTINE_REPORT_KIND, QuarantineTotals
from edge_agent.outbox.quota import DROP_REPORT_KIND, REASON_DISK_FULL, REASON_QUOTA
from edge_agent.outbox.rows import ROW_OVERHEAD_BYTES, StoredRecord
from edge_agent.outbox.schema import SCHEMA_VERSION
from edge_agent.outbox.store import Outbox

__all__ = [
    "DROP_REPORT_KIND",
    "QUARANTINE_REPORT_KIND",
    "REASON_DISK_FULL",
    "REASON_QUOTA",
    "ROW_OVERHEAD_BYTES",
    "SCHEMA_VERSION",
    "Outbox",
    "QuarantineTotals",
    "StoredRecord",
]
