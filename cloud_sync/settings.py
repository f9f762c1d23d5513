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
FLEET_CLOUD_ADMIN_TOKEN           bootstrap bearer token: a fleet-wide admin  ``DEV_ADMIN_TOKEN`` in development
                                  (staff users and their tokens:
                                  ``fleet-cloud add-user``/``create-token``)
FLEET_CLOUD_STAFF_TOKEN           bootstrap bearer token: a fleet-wide        none (admin token only)
                                  dispatcher (``cloud_sync.api.access``)
FLEET_CLOUD_RETENTION_*_DAYS      retention periods per purpose, never below  ``cloud_sync.governance.retention``
                                  the regulatory minimums
FLEET_CLOUD_MAX_BATCH_BYTES       largest ``POST /v1/batches`` body           ``MAX_BATCH_BYTES``
FLEET_CLOUD_CA_DIR                the fleet CA's directory (``ca.key``,       ``./fleet-ca``
                                  ``ca.pem``; created on first enrolment)
FLEET_CLOUD_BROKER_HOST           the broker host enrolled devices are told   ``localhost``
                                  to connect to (a DNS name or an address)
FLEET_CLOUD_BROKER_PORT           its TLS port (1-65535)                      ``8883`` (IANA secure-mqtt)
FLEET_CLOUD_DEVICE_CERT_DAYS      lifetime of a device certificate, days      ``90``
                                  (> 0, at most ``MAX_DEVICE_CERT_DAYS``)
FLEET_CLOUD_RENEW_BEFORE_DAYS     ``POST /v1/devices/{id}/certificate``       ``30``
                                  issues a new certificate only when the
                                  latest has less than this left (else it
                                  answers the latest: renewal is idempotent)
FLEET_CLOUD_CONFIG_KEY            the fleet config-signing key (Ed25519 PEM,  ``<CA dir>/config-signing.key``
                                  created 0600 on first use; devices pin
                                  its public half)
FLEET_CLOUD_CONFIG_BROKER         ``HOST:PORT`` the API publishes signed      none: configs are stored and
                                  configs on (``cloud_sync.config_push``)     published once one is set
FLEET_CLOUD_CONFIG_TLS_CA,        TLS for that connection (CA file, client    none (plain MQTT)
``_CERT``, ``_KEY``               certificate and key)
================================  ==========================================  ============================

Every variable is read here and nowhere else; a value that does not parse or is out of range raises
``SettingsError`` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edge_agent.errors import FleetError

DEFAULT_DATABASE_URL = "sqlite:///./fleet-cloud.db"
ENVIRONMENTS = ("development", "staging", "production")
#: The well-known development token: fine on a laptop, refused anywhere else.
DEV_ADMIN_TOKEN = "changethis"
MIN_TOKEN_CHARS = 24
#: A sealed batch is compressed; 300 s of 1 Hz positions and 10 Hz samples is tens of kB. 8 MiB leaves
#: room for a long backlog batch while bounding what one request can make the server buffer.
MAX_BATCH_BYTES = 8 << 20
DEFAULT_CA_DIR = Path("./fleet-ca")
DEFAULT_BROKER_HOST = "localhost"
DEFAULT_BROKER_PORT = 8883  # IANA: secure-mqtt
#: Short-lived device certificates bound what a stolen TLS key is worth even before revocation
#: reaches the broker; devices renew well within it (``fleet-provision renew``).
DEFAULT_DEVICE_CERT_DAYS = 90.0
#: The longest device certificate this fleet issues: a year, so a lost device ages out on its own.
MAX_DEVICE_CERT_DAYS = 365.0
#: A renewal inside this window of the latest certificate's expiry gets a new certificate.
DEFAULT_RENEW_BEFORE_DAYS = 30.0
_T = TypeVar("_T")


class SettingsError(FleetError):
    """The environment does not describe a safe, usable configuration."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    admin_token: str = DEV_ADMIN_TOKEN
    staff_token: str | None = None
    max_batch_bytes: int = MAX_BATCH_BYTES
    ca_dir: Path = DEFAULT_CA_DIR
    broker_host: str = DEFAULT_BROKER_HOST
    broker_port: int = DEFAULT_BROKER_PORT
    device_cert_days: float = DEFAULT_DEVICE_CERT_DAYS
    renew_before_days: float = DEFAULT_RENEW_BEFORE_DAYS
    config_key: Path | None = None
    config_broker: str | None = None
    config_tls_ca: Path | None = None
    config_tls_cert: Path | None = None
    config_tls_key: Path | None = None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"FLEET_CLOUD_ENV={self.environment!r} is not one of {ENVIRONMENTS}")
        if self.max_batch_bytes <= 0:
            raise SettingsError(f"FLEET_CLOUD_MAX_BATCH_BYTES must be positive, not {self.max_batch_bytes}")
        self._check_provisioning()
        if self.config_broker is not None and self.config_broker_address is None:
            raise SettingsError(f"FLEET_CLOUD_CONFIG_BROKER={self.config_broker!r} is not HOST:PORT")
        if self.environment != "development":
            for name, token in (("FLEET_CLOUD_ADMIN_TOKEN", self.admin_token),
                                ("FLEET_CLOUD_STAFF_TOKEN", self.staff_token)):
                if token is None and name.endswith("STAFF_TOKEN"):
                    continue
                if not token or token == DEV_ADMIN_TOKEN or len(token) < MIN_TOKEN_CHARS:
                    raise SettingsError(f"{name} must be set to a secret of at least {MIN_TOKEN_CHARS} characters "
                                        f"(not the development default) when FLEET_CLOUD_ENV={self.environment}")

    def _check_provisioning(self) -> None:
        if not self.broker_host or any(c.isspace() for c in self.broker_host) or "/" in self.broker_host:
            raise SettingsError(f"FLEET_CLOUD_BROKER_HOST={self.broker_host!r} is not a host name or address")
        if not 0 < self.broker_port <= 65535:
            raise SettingsError(f"FLEET_CLOUD_BROKER_PORT={self.broker_port} is not a TCP port (1-65535)")
        if not 0 < self.device_cert_days <= MAX_DEVICE_CERT_DAYS:
            raise SettingsError(f"FLEET_CLOUD_DEVICE_CERT_DAYS={self.device_cert_days:g} must be above 0 and at most "
                                f"{MAX_DEVICE_CERT_DAYS:g}")
        if not 0 <= self.renew_before_days < self.device_cert_days:
            raise SettingsError(f"FLEET_CLOUD_RENEW_BEFORE_DAYS={self.renew_before_days:g} must be at least 0 and "
                                f"below FLEET_CLOUD_DEVICE_CERT_DAYS ({self.device_cert_days:g})")
        if not str(self.ca_dir):
            raise SettingsError("FLEET_CLOUD_CA_DIR must name a directory")

    @property
    def config_key_path(self) -> Path:
        return self.config_key if self.config_key is not None else self.ca_dir / "config-signing.key"

    @property
    def config_broker_address(self) -> tuple[str, int] | None:
        """``FLEET_CLOUD_CONFIG_BROKER`` as (host, port); None when unset or not HOST:PORT."""
        host, sep, port = (self.config_broker or "").rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) <= 65535:
            return None
        return host.strip("[]"), int(port)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        environment = env.get("FLEET_CLOUD_ENV", "development")
        admin = env.get("FLEET_CLOUD_ADMIN_TOKEN")
        if admin is None:
            admin = DEV_ADMIN_TOKEN if environment == "development" else ""
        return cls(database_url=env.get("FLEET_CLOUD_DATABASE_URL", DEFAULT_DATABASE_URL), environment=environment,
                   admin_token=admin, staff_token=env.get("FLEET_CLOUD_STAFF_TOKEN") or None,
                   max_batch_bytes=_parse(env, "FLEET_CLOUD_MAX_BATCH_BYTES", int, MAX_BATCH_BYTES, "an integer"),
                   ca_dir=Path(env.get("FLEET_CLOUD_CA_DIR") or DEFAULT_CA_DIR),
                   broker_host=env.get("FLEET_CLOUD_BROKER_HOST", DEFAULT_BROKER_HOST),
                   broker_port=_parse(env, "FLEET_CLOUD_BROKER_PORT", int, DEFAULT_BROKER_PORT, "an integer"),
                   device_cert_days=_parse(env, "FLEET_CLOUD_DEVICE_CERT_DAYS", float, DEFAULT_DEVICE_CERT_DAYS,
                                           "a number of days"),
                   renew_before_days=_parse(env, "FLEET_CLOUD_RENEW_BEFORE_DAYS", float, DEFAULT_RENEW_BEFORE_DAYS,
                                            "a number of days"),
                   config_key=_path(env, "FLEET_CLOUD_CONFIG_KEY"),
                   config_broker=env.get("FLEET_CLOUD_CONFIG_BROKER") or None,
                   config_tls_ca=_path(env, "FLEET_CLOUD_CONFIG_TLS_CA"),
                   config_tls_cert=_path(env, "FLEET_CLOUD_CONFIG_TLS_CERT"),
                   config_tls_key=_path(env, "FLEET_CLOUD_CONFIG_TLS_KEY"))


def _path(env: Mapping[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


def _parse(env: Mapping[str, str], name: str, kind: Callable[[str], _T], default: _T, what: str) -> _T:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {what}") from None
