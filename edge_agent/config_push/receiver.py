"""``ConfigReceiver``: the agent's gatekeeper for pushed configs.

A config is applied only if, in this order:

1. it is at most ``MAX_CONFIG_BYTES``, carries our magic and format version, and its Ed25519 signature
   verifies against the fleet key pinned at enrolment (``edge_agent.wire.config.open_config``);
2. it names this device;
3. its version is newer than the running one: older is a ``rollback``, the same version with other
   bytes ``not_newer`` (the same bytes again, a retained message after a reconnect, is just ignored);
4. it has not expired (``expires_at`` against the device's wall clock);
5. its content loads: profile, thresholds and geofences are built before anything running changes
   (``apply.build_effective``), and a failure keeps the running config, which is the last known good.

Then it runs, and is written atomically as ``current.cfg`` (the one it replaced becomes
``last_good.cfg``). At start the receiver runs ``current.cfg``, or if that no longer verifies or loads
(a profile a firmware update removed, a damaged file) ``last_good.cfg``, or else ``agent.toml`` alone.

Every outcome is counted (``edge_agent.counters``: ``config_*``), logged with its reason, and reported
to the cloud as a ``config_status`` record carrying the applied version.

Threads: ``offer`` runs on the MQTT network thread and only hands the message over (the newest wins);
``tick`` runs on the daemon thread and does the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.config_push.files import ConfigFiles
from edge_agent.config_push.settings import ConfigPushSettings
from edge_agent.counters import Counters
from edge_agent.errors import ConfigError, FleetError, OutboxError
from edge_agent.model import Priority, Record
from edge_agent.wire.config import (
    CONFIG_STATUS_KIND,
    MAX_CONFIG_BYTES,
    SignedConfig,
    open_config,
    status_payload,
)
from edge_agent.wire.errors import WireError
from edge_agent.wire.sign import load_public_key

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Longest rejection reason detail kept in a status report (the log has it in full).
MAX_REASON_CHARS = 300
#: Reasons a config is refused, besides the wire's own (``edge_agent.wire.config.CONFIG_REASONS``).
POLICY_REASONS = ("other_device", "rollback", "not_newer", "expired", "invalid_content", "apply_failed")


class ConfigReceiver:
    """Verifies, applies, persists and reports pushed configs for one device (see the module docstring)."""

    def __init__(self, device_id: str, fleet_key: Ed25519PublicKey, files: ConfigFiles, counters: Counters,
                 report: Callable[[Record], None], apply: Callable[[SignedConfig], None] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.device_id = device_id
        self.fleet_key = fleet_key
        self.files = files
        self.counters = counters
        self.apply = apply
        self.report = report
        self.wall_clock = wall_clock
        self.running: SignedConfig | None = None
        self.running_blob: bytes | None = None
        self.last_rejection: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._inbox: bytes | None = None

    @property
    def version(self) -> int:
        """The running config's version; 0 when running ``agent.toml`` alone."""
        return self.running.version if self.running is not None else 0

    # -- start -------------------------------------------------------------------------------------

    def start(self, build: Callable[[SignedConfig | None], T]) -> T:
        """``build`` the stored config to run (current, else last known good, else none) and report it."""
        problems = []
        for label, path in (("current", self.files.current), ("last known good", self.files.last_good)):
            blob = self.files.read(path)
            if blob is None:
                continue
            try:
                config = self._verify_stored(blob)
                built = build(config)
            except FleetError as exc:  # WireError included: a file that no longer verifies
                self.counters.inc("config_fallbacks")
                log.error("config: stored %s config %s is unusable, falling back: %s", label, path, exc)
                problems.append(f"{label}: {exc}")
                continue
            if problems:
                self.files.demote()
            self.running, self.running_blob = config, blob
            self._report("fallback" if problems else "running", None, "; ".join(problems))
            log.info("config: running pushed config v%d (%s)", config.version, label)
            return built
        built = build(None)
        self._report("fallback" if problems else "running", None, "; ".join(problems))
        return built

    def _verify_stored(self, blob: bytes) -> SignedConfig:
        config = open_config(blob, self.fleet_key)
        if config.device_id != self.device_id:
            raise WireError("other_device", f"stored config is for {config.device_id!r}")
        return config

    # -- receiving ---------------------------------------------------------------------------------

    def offer(self, payload: bytes) -> None:
        """A message on our config topic (network thread: hand-off only; a newer message replaces an unread one)."""
        self.counters.inc("config_received")
        kept = payload[: MAX_CONFIG_BYTES + 1]  # enough to tell it is oversized, never more in memory
        with self._lock:
            if self._inbox is not None:
                self.counters.inc("config_superseded")
            self._inbox = kept

    def tick(self) -> str | None:
        """Handle the message waiting, if any (daemon thread); returns its outcome."""
        with self._lock:
            blob, self._inbox = self._inbox, None
        return None if blob is None else self.handle(blob)

    def handle(self, blob: bytes) -> str:
        """Check and apply one sealed config; returns ``applied``, ``already_applied`` or the rejection reason."""
        try:
            config = open_config(blob, self.fleet_key)
        except WireError as exc:
            return self._reject(exc.reason, exc.detail, None)
        if config.device_id != self.device_id:
            return self._reject("other_device", f"addressed to {config.device_id!r}", config.version)
        if config.version == self.version and blob == self.running_blob:
            self.counters.inc("config_already_applied")
            log.debug("config v%d delivered again; already running it", config.version)
            return "already_applied"
        if config.version < self.version:
            return self._reject("rollback", f"v{config.version} is older than the running v{self.version}",
                                config.version)
        if config.version == self.version:
            return self._reject("not_newer", f"v{config.version} differs from the running config of the same "
                                             "version", config.version)
        now = self.wall_clock()
        if config.expires_at <= now:
            return self._reject("expired", f"expired {now - config.expires_at:.0f} s ago", config.version)
        if self.apply is None:
            return self._reject("apply_failed", "no running agent to apply it to", config.version)
        try:
            self.apply(config)
        except OutboxError as exc:  # flushing before a pipeline restart: not the config's fault
            return self._reject("apply_failed", str(exc), config.version)
        except FleetError as exc:
            return self._reject("invalid_content", str(exc), config.version)
        except Exception as exc:  # a loader bug met by odd content must not stop the vehicle's daemon
            log.exception("config v%d: applying it failed unexpectedly", config.version)
            return self._reject("invalid_content", repr(exc), config.version)
        self.running, self.running_blob = config, blob
        try:
            self.files.promote(blob)
        except OSError as exc:
            # It runs now; a restart before the next push would run the previous one.
            self.counters.inc("config_persist_errors")
            log.error("config v%d applied but not saved (%s); a restart would run the previous one", config.version,
                      exc)
        self.counters.inc("config_applied")
        log.info("config v%d applied (profile %s, %d threshold overrides, geofences %s)", config.version,
                 config.profile or "unchanged", len(config.thresholds),
                 "pushed" if config.geofences is not None else "unchanged")
        self._report("applied", config.version, "")
        return "applied"

    def _reject(self, reason: str, detail: str, offered: int | None) -> str:
        self.counters.inc("config_rejected")
        self.counters.inc(f"config_rejected_{reason}")
        log.warning("config%s rejected: %s: %s; still running v%d", f" v{offered}" if offered else "", reason,
                    detail, self.version)
        self.last_rejection = {"reason": reason, "detail": detail[:MAX_REASON_CHARS], "offered_version": offered,
                               "at": self.wall_clock()}
        self._report("rejected", offered, f"{reason}: {detail}"[:MAX_REASON_CHARS])
        return reason

    def _report(self, result: str, offered: int | None, reason: str) -> None:
        record = Record(CONFIG_STATUS_KIND, Priority.EVENT, self.wall_clock(),
                        status_payload(self.version, result, offered, reason))
        try:
            self.report(record)
        except OutboxError as exc:
            self.counters.inc("config_report_errors")
            log.error("config status report not stored: %s", exc)

    def status(self) -> dict[str, Any]:
        """For the status file: what runs, and the last refusal."""
        c = self.running
        return {"applied_version": self.version, "profile": c.profile if c else None,
                "issued_at": c.issued_at if c else None, "expires_at": c.expires_at if c else None,
                "last_rejection": self.last_rejection}


def open_receiver(device_id: str, settings: ConfigPushSettings, counters: Counters,
                  report: Callable[[Record], None]) -> ConfigReceiver:
    """A receiver pinned to ``settings.fleet_key``; ``ConfigError`` if the key cannot be read."""
    try:
        key = load_public_key(settings.fleet_key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config_push.fleet_key: cannot load the fleet's config key {settings.fleet_key}: "
                          f"{exc}") from exc
    return ConfigReceiver(device_id, key, ConfigFiles(settings.dir), counters, report)
