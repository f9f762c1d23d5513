"""The cloud store: schema (``schema``), engines (``engine``), migrations, devices, batch commits and queries.

SQL rows stop here: callers get the dataclasses defined in ``devices``, ``batches`` and ``queries``.
"""

from cloud_sync.store.engine import make_engine
from cloud_sync.store.migrations import LATEST_VERSION, current_version, migrate
from cloud_sync.store.schema import metadata

__all__ = ["LATEST_VERSION", "current_version", "make_engine", "metadata", "migrate"]
