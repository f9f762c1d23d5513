"""One exception tree for the edge agent (as python-can has ``CanError``).

Permanent errors (bad config, a profile naming a missing signal) fail loudly at start; per-frame and
per-sentence problems are ``DecodeError`` with a short machine-readable ``reason`` that is counted
and skipped, never raised out of the pipeline.
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(FleetError):
    """A configuration or profile is invalid; the message names the field or signal."""


class ProfileError(ConfigError):
    """A firmware profile cannot be loaded (missing file, unknown signal, bad threshold)."""


class SourceError(FleetError):
    """A data source cannot be opened or has failed in a way a retry will not fix."""


class DecodeError(FleetError):
    """One frame or sentence could not be decoded. ``reason`` is a counter key such as
    ``"nmea_checksum"`` or ``"j1939_tp_timeout"``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class OutboxError(FleetError):
    """The outbox could not store or read records (schema too new, database unusable)."""
