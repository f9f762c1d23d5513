"""What a pushed config means for the agent: the effective profile and detectors, and the swap into a running one.

Layering, lowest first: the profile's ``[thresholds]``, ``agent.toml``'s ``[detection.thresholds]``, the
pushed thresholds. A pushed ``profile`` replaces ``agent.profile`` (bundled profiles only: a push never
names a path on the device); pushed ``geofences`` replace ``detection.geofences``.

``build_effective`` does all the loading and checking and touches nothing running, so a config that
fails (an unknown profile, GeoJSON the loader refuses, a threshold a detector rejects) raises a
``FleetError`` and leaves the agent as it was: the receiver then keeps the last known good config.
``apply_running`` swaps the result in: new detectors (with their state carried over) without a
restart; a new profile restarts the pipeline in this process, after a flush, so no record is lost.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from edge_agent.config import AgentConfig
from edge_agent.counters import Counters
from edge_agent.decoding.obd.poller import ObdPoller
from edge_agent.detection import Detector
from edge_agent.detection.build import build_detectors
from edge_agent.detection.geojson import Fence, load_geofences, parse_geofences
from edge_agent.errors import ConfigError, ProfileError
from edge_agent.pipeline import Pipeline
from edge_agent.wire.config import SignedConfig
from firmware_profiles import Profile, available_profiles, load_profile

if TYPE_CHECKING:
    from edge_agent.app import Agent

log = logging.getLogger(__name__)


def effective_profile(config: AgentConfig, pushed: SignedConfig | None) -> Profile:
    """The profile to run, with every threshold layer applied (see the module docstring)."""
    name = config.profile
    if pushed is not None and pushed.profile is not None:
        if pushed.profile not in available_profiles():
            raise ProfileError(f"pushed profile {pushed.profile!r} is not bundled with this agent "
                               f"(bundled: {', '.join(available_profiles())})")
        name = pushed.profile
    profile = load_profile(name)
    merged = dict(profile.thresholds)
    merged.update(config.thresholds)
    if pushed is not None:
        merged.update(pushed.thresholds)
    return replace(profile, thresholds=MappingProxyType(merged))


def effective_fences(config: AgentConfig, pushed: SignedConfig | None) -> list[Fence] | None:
    if pushed is not None and pushed.geofences is not None:
        return parse_geofences(dict(pushed.geofences), f"pushed config v{pushed.version} geofences")
    return load_geofences(config.geofences) if config.geofences is not None else None


def build_effective(config: AgentConfig, pushed: SignedConfig | None, counters: Counters
                    ) -> tuple[Profile, dict[str, Detector]]:
    """Profile and detectors for ``config`` with ``pushed`` on top; ``FleetError`` if they do not load."""
    profile = effective_profile(config, pushed)
    fences = effective_fences(config, pushed)
    try:
        # config=None: the profile already carries agent.toml's thresholds under the pushed ones.
        detectors = build_detectors(profile, None, counters, fences=fences)
    except (ValueError, TypeError) as exc:  # a detector refusing a threshold value
        raise ConfigError(f"detectors refuse the thresholds: {exc}") from exc
    return profile, detectors


def apply_running(agent: Agent, pushed: SignedConfig | None) -> None:
    """Build and swap ``pushed`` into ``agent``; on ``FleetError`` nothing has changed."""
    profile, detectors = build_effective(agent.config, pushed, agent.counters)
    old = agent.pipeline
    if _same_decoding(old.profile, profile):
        old.replace_detectors(detectors)
        old.profile = profile
    else:
        old.finish()  # flush buffered records and detector state before the old decoders go
        pipeline = Pipeline(profile, agent.outbox, agent.counters, detectors=detectors, privacy=old.privacy)
        pipeline.restore_from_outbox()
        agent.pipeline = pipeline
        agent.poller = ObdPoller(profile, agent.counters) if profile.protocol == "obd2" and agent.can else None
        log.info("profile %s -> %s: pipeline restarted", old.profile.name, profile.name)
    agent.profile = profile


def _same_decoding(a: Profile, b: Profile) -> bool:
    """Same profile apart from thresholds: the decoders need no rebuild."""
    return (a.name, a.dbc_path, dict(a.signals), a.protocol, a.obd) == (b.name, b.dbc_path, dict(b.signals),
                                                                        b.protocol, b.obd)
