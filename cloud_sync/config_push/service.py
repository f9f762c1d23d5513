"""``ConfigPush``: sign, store and publish device configs; what the API calls.

``save`` allocates the device's next version under its row lock, seals the config with the fleet's
config-signing key (``edge_agent.wire.config.seal_config``), stores it, then publishes it retained on the
device's config topic. Publishing is best effort at that point: with no broker configured, or the broker
down, the config stays stored with ``published_at`` NULL, and the publisher sends the newest unpublished
config of every device whenever it (re)connects (a sweeper thread woken by the publisher's connect).
``republish`` sends a device's newest config again on demand; if it has expired (a device that comes
back after its expiry would refuse it) the same content is issued again as a new version.

Configs are also re-issued before they expire, without staff: ``reissue_due`` gives every device (not revoked)
whose newest config is within ``reissue_ahead`` of its expiry the same content as a new version with the same
lifetime, and publishes it. The sweeper runs it every ``reissue_every_s`` (``REISSUE_EVERY_S``) in the API
process; ``fleet-cloud config reissue [--every S]`` runs it on its own (``deploy/``'s timer). The check is
repeated under the device's row lock, so several processes doing it at once issue one version, not several.

The signing key is an Ed25519 key in a PEM file (``FLEET_CLOUD_CONFIG_KEY``, default
``<FLEET_CLOUD_CA_DIR>/config-signing.key``), created 0600 on first use; its public half is what devices
pin (``public_key_pem``). Nothing is created or connected until first needed or ``start``. The broker
is ``FLEET_CLOUD_CONFIG_BROKER`` with ``FLEET_CLOUD_CONFIG_TLS_*`` (``cloud_sync.settings``); the ingest
service's certificate may write every device's config topic (``cloud_sync.broker_config``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine

from cloud_sync.ca import write_private
from cloud_sync.config_push.publisher import MqttConfigPublisher, Publisher
from cloud_sync.settings import Settings
from cloud_sync.store.configs import (
    StoredConfig,
    add_config,
    expiring,
    latest_config,
    mark_published,
    next_version,
    unpublished,
)
from cloud_sync.store.devices import get_device
from edge_agent.errors import FleetError
from edge_agent.wire.config import SignedConfig, config_topic, open_config, seal_config
from edge_agent.wire.errors import WireError
from edge_agent.wire.sign import load_private_key_pem, private_key_pem, public_key_pem

log = logging.getLogger(__name__)

BROKER_ENV = "FLEET_CLOUD_CONFIG_BROKER"
#: How long a config stays acceptable to a device after it is issued, unless the request says otherwise.
DEFAULT_TTL_S = 30 * 86400.0
#: Bounds of a requested lifetime: long enough to reach a device on a slow link, short enough that a
#: captured config cannot be replayed to a re-provisioned device years later.
MIN_TTL_S, MAX_TTL_S = 60.0, 365 * 86400.0
#: ``republish`` issues a fresh version when the newest one has less than this left.
REISSUE_BEFORE_S = 3600.0
#: The automatic re-issue gives a device a fresh version this long before its newest one expires (or at half
#: its lifetime, if that is sooner): a week covers a vehicle parked offline over a long holiday.
REISSUE_AHEAD_S = 7 * 86400.0
REISSUE_FRACTION = 0.5
#: How often the API process's sweeper looks for configs due for re-issue (and for unpublished ones).
REISSUE_EVERY_S = 3600.0
#: The actor recorded as ``created_by`` of an automatic re-issue.
REISSUE_ACTOR = "system:config-reissue"


def reissue_ahead(issued_at: float, expires_at: float) -> float:
    """How long before ``expires_at`` a config is re-issued (see ``REISSUE_AHEAD_S``)."""
    return min(REISSUE_AHEAD_S, (expires_at - issued_at) * REISSUE_FRACTION)


class ConfigRefused(FleetError):
    """A config cannot be saved or published; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ConfigPushSettings:
    """The ``FLEET_CLOUD_CONFIG_*`` part of ``cloud_sync.settings.Settings``."""

    key_path: Path
    broker: tuple[str, int] | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> ConfigPushSettings:
        def text(p: Path | None) -> str | None:
            return None if p is None else str(p)

        return cls(s.config_key_path, s.config_broker_address, text(s.config_tls_ca), text(s.config_tls_cert),
                   text(s.config_tls_key))


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The fleet config-signing key at ``path``, created (0600, atomically) if there is none."""
    if path.exists():
        try:
            return load_private_key_pem(path.read_bytes())
        except ValueError as exc:
            raise ConfigRefused(500, f"{path}: not an Ed25519 private key PEM: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    write_private(path, private_key_pem(key))
    log.warning("created the fleet config-signing key %s; devices must pin its public key", path)
    return key


class ConfigPush:
    """Signs, stores and publishes configs for the API (thread-safe; one per app)."""

    def __init__(self, engine: Engine, settings: ConfigPushSettings,
                 publisher_factory: Callable[[Callable[[], None]], Publisher] | None = None,
                 clock: Callable[[], float] = time.time, reissue_every_s: float = REISSUE_EVERY_S) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.reissue_every_s = reissue_every_s
        self._factory = publisher_factory
        self._key: Ed25519PrivateKey | None = None
        self._key_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self.publisher: Publisher | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> ConfigPush:
        return cls(engine, ConfigPushSettings.from_settings(settings))

    # -- the key -----------------------------------------------------------------------------------

    @property
    def key(self) -> Ed25519PrivateKey:
        with self._key_lock:
            if self._key is None:
                self._key = load_or_create_key(self.settings.key_path)
            return self._key

    def public_key_pem(self, *, create: bool = True) -> str:
        """The key devices pin; with ``create=False`` ``ConfigRefused(404)`` rather than making a key."""
        if not create and self._key is None and not self.settings.key_path.exists():
            raise ConfigRefused(404, "no config-signing key yet: it is created with the first config saved "
                                     "(or the first enrolment that delivers it)")
        return public_key_pem(self.key).decode("ascii")

    def enrolment_key_pem(self) -> str | None:
        """The public key to hand a device at enrolment. The key is made next to the fleet CA (whose directory
        enrolment has created by then); None when that directory does not exist (a CA held elsewhere)."""
        try:
            return self.public_key_pem(create=self.settings.key_path.parent.is_dir())
        except ConfigRefused:
            log.warning("enrolment without a config-signing key: %s does not exist", self.settings.key_path.parent)
            return None

    def decode(self, stored: StoredConfig) -> SignedConfig:
        return open_config(stored.sealed, self.key.public_key())

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, *, sweeper: bool = True) -> None:
        """Connect the publisher (if a broker is configured) and start the sweeper that publishes what waits and
        re-issues what expires soon (``sweeper=False``: a command that does both itself)."""
        if self.publisher is not None:
            return
        if self._factory is not None:
            self.publisher = self._factory(self._wake.set)
        elif self.settings.broker is not None:
            s = self.settings
            assert s.broker is not None
            self.publisher = MqttConfigPublisher(
                *s.broker, client_id=f"fleet-config-{socket.gethostname()}-{os.getpid()}", tls_ca=s.tls_ca,
                tls_cert=s.tls_cert, tls_key=s.tls_key, on_connect=self._wake.set)
        if self.publisher is None:
            log.info("config push: no broker configured (%s); configs are stored and published once one is",
                     BROKER_ENV)
            return
        self._stop.clear()
        if not sweeper:
            self.publisher.start()
            return
        self._sweeper = threading.Thread(target=self._sweep_loop, name="config-push-sweeper", daemon=True)
        self._sweeper.start()
        self.publisher.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
            self._sweeper = None
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def _sweep_loop(self) -> None:
        next_reissue = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_reissue - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if time.monotonic() >= next_reissue:
                    next_reissue = time.monotonic() + self.reissue_every_s
                    reissued = self.reissue_due()
                    if reissued:
                        log.info("config push: re-issued %d config(s) before they expire", len(reissued))
                sent = self.publish_pending()
            except Exception:  # the store is down: the next connect, save or round tries again
                log.exception("config push: publishing pending configs failed")
                continue
            if sent:
                log.info("config push: published %d pending config(s)", sent)

    # -- saving and publishing ---------------------------------------------------------------------

    def save(self, device_id: str, *, actor: str, profile: str | None = None,
             thresholds: Mapping[str, float] | None = None, geofences: Mapping[str, Any] | None = None,
             ttl_s: float = DEFAULT_TTL_S) -> StoredConfig:
        """Sign and store the device's next version, then try to publish it; ``ConfigRefused`` says why not."""
        if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise ConfigRefused(422, f"ttl_s must be within [{MIN_TTL_S:g}, {MAX_TTL_S:g}] s, got {ttl_s}")
        with self.engine.begin() as conn:
            device = get_device(conn, device_id, for_update=True)  # versions are allocated one at a time
            if device is None:
                raise ConfigRefused(404, f"no device {device_id!r}")
            if device.revoked_at is not None:
                raise ConfigRefused(409, f"device {device_id!r} is revoked")
            stored = self._seal_and_add(conn, device_id, actor, profile, thresholds, geofences, ttl_s)
        log.info("config v%d for %s saved by %s", stored.version, device_id, actor)
        return self._publish(stored)

    def _seal_and_add(self, conn: Connection, device_id: str, actor: str, profile: str | None,
                      thresholds: Mapping[str, float] | None, geofences: Mapping[str, Any] | None,
                      ttl_s: float) -> StoredConfig:
        """Seal and store the next version (the caller holds the device's row lock)."""
        key = self.key
        now = self.clock()
        version = next_version(conn, device_id)
        try:
            config = SignedConfig(device_id, version, now, now + ttl_s, profile, dict(thresholds or {}), geofences)
            sealed = seal_config(config, key)
        except WireError as exc:
            too_big = "MAX_CONFIG_BYTES" in exc.detail
            raise ConfigRefused(413 if too_big else 422, exc.detail) from None
        stored = StoredConfig(device_id, version, sealed, config.issued_at, config.expires_at, actor, None)
        add_config(conn, stored)
        return stored

    def reissue_due(self) -> list[StoredConfig]:
        """Re-issue (and try to publish) every config due: see the module docstring. What was issued."""
        with self.engine.connect() as conn:
            candidates = expiring(conn, self.clock() + REISSUE_AHEAD_S)
        done = []
        for candidate in candidates:
            try:
                stored = self._reissue(candidate.device_id)
            except ConfigRefused as exc:  # content a newer wire refuses: staff must save a new config
                log.error("config push: cannot re-issue v%d of %s: %s", candidate.version, candidate.device_id, exc)
                continue
            if stored is not None:
                done.append(stored)
        return done

    def _reissue(self, device_id: str) -> StoredConfig | None:
        with self.engine.begin() as conn:
            device = get_device(conn, device_id, for_update=True)
            newest = latest_config(conn, device_id)
            if device is None or device.revoked_at is not None or newest is None:
                return None
            if newest.expires_at - self.clock() >= reissue_ahead(newest.issued_at, newest.expires_at):
                return None  # another process re-issued it meanwhile, or staff saved a new one
            c = self.decode(newest)
            lifetime = min(max(MIN_TTL_S, c.expires_at - c.issued_at), MAX_TTL_S)
            stored = self._seal_and_add(conn, device_id, REISSUE_ACTOR, c.profile, c.thresholds, c.geofences,
                                        lifetime)
        log.info("config v%d for %s re-issued as v%d before it expires", newest.version, device_id, stored.version)
        return self._publish(stored)

    def republish(self, device_id: str, *, actor: str) -> StoredConfig:
        """Publish the newest config again (a fresh version of the same content if it has, or nearly has, expired)."""
        with self.engine.connect() as conn:
            stored = latest_config(conn, device_id)
        if stored is None:
            raise ConfigRefused(404, f"no config was ever saved for {device_id!r}")
        if self.publisher is None:
            raise ConfigRefused(503, f"no broker to publish on ({BROKER_ENV} is not set); the config is stored")
        if stored.expires_at - self.clock() < REISSUE_BEFORE_S:
            c = self.decode(stored)
            return self.save(device_id, actor=actor, profile=c.profile, thresholds=c.thresholds,
                             geofences=c.geofences, ttl_s=max(MIN_TTL_S, c.expires_at - c.issued_at))
        published = self._publish(stored)
        if published.published_at is None:
            raise ConfigRefused(503, "the broker did not take the config (not connected, or refused); it is "
                                     "stored and goes out when the publisher reconnects")
        return published

    def publish_pending(self) -> int:
        """Publish the newest unpublished config of every device; how many the broker took."""
        with self.engine.connect() as conn:
            waiting = unpublished(conn)
        return sum(self._publish(s).published_at is not None for s in waiting)

    def _publish(self, stored: StoredConfig) -> StoredConfig:
        publisher = self.publisher
        if publisher is None:
            return stored
        # One publish at a time, newest only: the broker retains the last message per topic, so an older
        # version published after a newer one would be what an offline device finds when it comes back.
        with self._publish_lock:
            with self.engine.connect() as conn:
                newest = latest_config(conn, stored.device_id)
            if newest is not None and newest.version != stored.version:
                return stored
            if not publisher.publish(config_topic(stored.device_id), stored.sealed):
                return stored
        at = self.clock()
        with self.engine.begin() as conn:
            mark_published(conn, stored.device_id, stored.version, at)
        log.info("config v%d for %s published", stored.version, stored.device_id)
        return StoredConfig(stored.device_id, stored.version, stored.sealed, stored.issued_at, stored.expires_at,
                            stored.created_by, at)
