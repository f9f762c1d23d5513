"""Composition root of ``fleet-agent run``: builds sources, decoders, detectors and the outbox.

Nothing else in the agent constructs these; ``build_agent(config)`` wires them from a validated
``AgentConfig`` and the daemon loop (``edge_agent.daemon``) only drives what this returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from types import MappingProxyType

from edge_agent.config import AgentConfig
from edge_agent.config_push.apply import apply_running, build_effective
from edge_agent.config_push.receiver import ConfigReceiver, open_receiver
from edge_agent.counters import Counters
from edge_agent.decoding.obd.poller import ObdPoller
from edge_agent.detection.build import build_detectors
from edge_agent.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.privacy import PrivacyGate, read_switch
from edge_agent.sources import FrameSource, LineSource
from edge_agent.uplink import MqttTransport, Uplink, build_uplink
from edge_agent.wire.config import config_topic
from firmware_profiles import Profile, load_profile

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Agent:
    """Everything one daemon process runs."""

    config: AgentConfig
    profile: Profile
    counters: Counters
    outbox: Outbox
    pipeline: Pipeline
    can: FrameSource | None
    gnss: LineSource | None
    #: The OBD-II requester (OBD profiles only); the daemon drives it with ``drive`` after each read.
    poller: ObdPoller | None = None
    #: The MQTT uplink (with an ``[uplink]`` section); the daemon starts it and ticks it after each flush.
    uplink: Uplink | None = None
    #: Signed config pushes (with a ``[config_push]`` section); the daemon ticks it each round.
    config_push: ConfigReceiver | None = None

    def close(self) -> None:
        for source in (self.can, self.gnss):
            if source is not None:
                source.close()
        if self.uplink is not None:
            self.uplink.close()
        self.outbox.close()


def profile_for(config: AgentConfig) -> Profile:
    """The configured profile with the config's threshold overrides applied."""
    profile = load_profile(config.profile)
    if not config.thresholds:
        return profile
    merged = dict(profile.thresholds)
    merged.update(config.thresholds)
    return replace(profile, thresholds=MappingProxyType(merged))


def build_can(config: AgentConfig, counters: Counters) -> FrameSource | None:
    if config.can is None:
        return None
    from edge_agent.sources.can_bus import CanBusSource, CanFilter

    filters = [CanFilter(f.can_id, f.can_mask, f.extended) for f in config.can.filters]
    options = dict(config.can.options)
    if config.can.interface == "slcan" and options.pop("driver", "burst") != "python-can":
        from edge_agent.sources.slcan import SlcanSource

        # python-can's slcan option names map onto ours; the rest are python-can's alone.
        return SlcanSource(config.can.channel, bitrate=config.can.bitrate, counters=counters, filters=filters,
                           serial_baudrate=int(options.get("tty_baudrate", 115_200)),
                           listen_only=bool(options.get("listen_only", False)))
    return CanBusSource(
        config.can.interface, config.can.channel, bitrate=config.can.bitrate, filters=filters,
        counters=counters, **options,
    )


def build_gnss(config: AgentConfig, counters: Counters) -> LineSource | None:
    if config.gnss is None:
        return None
    from edge_agent.sources.gnss_serial import SerialGnssSource

    return SerialGnssSource(config.gnss.port, config.gnss.baudrate, counters=counters)


def build_agent(config: AgentConfig) -> Agent:
    """Build the agent; raises ``ConfigError``/``SourceError`` with a clear message on failure."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    counters = Counters()
    profile = profile_for(config)
    outbox = Outbox(config.outbox_path, quota_bytes=config.quota_bytes, counters=counters)
    try:
        receiver = None
        if config.config_push is None:
            detectors = build_detectors(profile, config, counters)
        else:
            receiver = open_receiver(config.device_id, config.config_push, counters, lambda r: outbox.append([r]))
            # The stored pushed config (or the last known good one) on top of agent.toml.
            profile, detectors = receiver.start(lambda pushed: build_effective(config, pushed, counters))
        privacy = PrivacyGate(config.privacy, read_switch(config.data_dir))
        pipeline = Pipeline(profile, outbox, counters, detectors=detectors, privacy=privacy)
        pipeline.restore_from_outbox()
        uplink = build_uplink(config.uplink, config.device_id, outbox, counters) if config.uplink else None
        if receiver is not None and uplink is not None and isinstance(uplink.transport, MqttTransport):
            uplink.transport.route(config_topic(config.device_id), receiver.offer)
        can = build_can(config, counters)
        gnss = build_gnss(config, counters)
    except Exception:
        outbox.close()
        raise
    poller = ObdPoller(profile, counters) if profile.protocol == "obd2" and can is not None else None
    log.info("agent %s built: profile %s, can %s, gnss %s, detectors %s, uplink %s", config.device_id,
             profile.name, config.can.channel if config.can else "off", config.gnss.port if config.gnss else "off",
             ", ".join(detectors) or "none",
             f"{config.uplink.host}:{config.uplink.port}" if config.uplink else "off")
    agent = Agent(config, profile, counters, outbox, pipeline, can, gnss, poller, uplink, receiver)
    if receiver is not None:
        receiver.apply = lambda pushed: apply_running(agent, pushed)
    return agent
