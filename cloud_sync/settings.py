"""Settings of the cloud service, read from ``FLEET_CLOUD_*`` environment variables.

Like the FastAPI full-stack template, settings refuse default secrets outside development: with
``FLEET_CLOUD_ENV`` other than ``development``, a missing admin token, the documented development
token, or one shorter than ``MIN_TOKEN_CHARS`` raises ``SettingsError`` at start-up rather than
serving an API anybody can administer.

================================  ==========================================  ============================
variable                          meaning                                     default
================================  ==========================================  ============================
FLEET_CLOUD_DATABASE_URL          SQLAlchemy URL (``sqlite:///path`` or       ``sqlite:///./fleet-cloud.db``
                                  ``postgresql+psycopg://user@host/db``)
FLEET_CLOUD_ENV                   ``development`` | ``staging`` | ``production``  ``development``
FLEET_CLOUD_ADMIN_TOKEN           bearer token for admin endpoints            ``DEV_ADMIN_TOKEN`` in development
FLEET_CLOUD_STAFF_TOKEN           bearer token for read-only staff endpoints  none (admin token only)
FLEET_CLOUD_MAX_BATCH_BYTES       largest ``POST /v1/batches`` body           ``MAX_BATCH_BYTES``
================================  ==========================================  ============================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.errors import FleetError

DEFAULT_DATABASE_URL = "sqlite:///./fleet-cloud.db"
ENVIRONMENTS = ("development", "staging", "production")
#: The well-known development token: fine on a laptop, refused anywhere else.
DEV_ADMIN_TOKEN = "changethis"
MIN_TOKEN_CHARS = 24
#: A sealed batch is compressed; 300 s of 1 Hz positions and 10 Hz samples is tens of kB. 8 MiB leaves
#: room for a long backlog batch while bounding what one request can make the server buffer.
MAX_BATCH_BYTES = 8 << 20


class SettingsError(FleetError):
    """The environment does not describe a safe, usable configuration."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    admin_token: str = DEV_ADMIN_TOKEN
    staff_token: str | None = None
    max_batch_bytes: int = MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"FLEET_CLOUD_ENV={self.environment!r} is not one of {ENVIRONMENTS}")
        if self.max_batch_bytes <= 0:
            raise SettingsError(f"FLEET_CLOUD_MAX_BATCH_BYTES must be positive, not {self.max_batch_bytes}")
        if self.environment != "development":
            for name, token in (("FLEET_CLOUD_ADMIN_TOKEN", self.admin_token),
                                ("FLEET_CLOUD_STAFF_TOKEN", self.staff_token)):
                if token is None and name.endswith("STAFF_TOKEN"):
                    continue
                if not token or token == DEV_ADMIN_TOKEN or len(token) < MIN_TOKEN_CHARS:
                    raise SettingsError(f"{name} must be set to a secret of at least {MIN_TOKEN_CHARS} characters "
                                        f"(not the development default) when FLEET_CLOUD_ENV={self.environment}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        environment = env.get("FLEET_CLOUD_ENV", "development")
        admin = env.get("FLEET_CLOUD_ADMIN_TOKEN")
        if admin is None:
            admin = DEV_ADMIN_TOKEN if environment == "development" else ""
        raw_max = env.get("FLEET_CLOUD_MAX_BATCH_BYTES", str(MAX_BATCH_BYTES))
        try:
            max_bytes = int(raw_max)
        except ValueError:
            raise SettingsError(f"FLEET_CLOUD_MAX_BATCH_BYTES={raw_max!r} is not an integer") from None
        return cls(database_url=env.get("FLEET_CLOUD_DATABASE_URL", DEFAULT_DATABASE_URL), environment=environment,
                   admin_token=admin, staff_token=env.get("FLEET_CLOUD_STAFF_TOKEN") or None,
                   max_batch_bytes=max_bytes)
