"""The vehicle's MQTT uplink: outbox rows out as signed, chained batches; deleted only on the cloud's ack.

``uplink.Uplink`` is the front door (driven by the daemon's ``tick``), ``transport.MqttTransport``
the paho boundary (its thread only hands events off), ``identity`` the boot epoch, sequence and
hash chain, ``settings`` the limits (the ``[uplink]`` section of ``agent.toml``), ``signing`` the batch
key (followed on disk across a rotation). ``build_uplink`` wires them from settings and a signing key.
"""

from __future__ import annotations

from edge_agent.counters import Counters
from edge_agent.errors import ConfigError
from edge_agent.outbox import Outbox
from edge_agent.uplink.identity import ChainState, draw_epoch
from edge_agent.uplink.settings import UplinkSettings, ack_topic, batch_topic
from edge_agent.uplink.signing import SigningKey
from edge_agent.uplink.transport import MqttTransport, Transport
from edge_agent.uplink.uplink import Uplink
from edge_agent.wire import load_private_key


def build_uplink(settings: UplinkSettings, device_id: str, outbox: Outbox, counters: Counters) -> Uplink:
    """An ``Uplink`` (not started) for ``device_id``; ``ConfigError`` if the signing key cannot be read."""
    if settings.signing_key is None:
        raise ConfigError("uplink.signing_key: a device signing key is required to send batches")
    try:
        key = load_private_key(settings.signing_key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"uplink.signing_key: cannot load {settings.signing_key}: {exc}") from exc
    transport = MqttTransport(settings, device_id, counters)
    # The key file is watched: ``fleet-provision rotate-key`` takes effect without a restart.
    return Uplink(outbox, transport, SigningKey(key, settings.signing_key, counters), device_id, settings, counters)


__all__ = ["ChainState", "MqttTransport", "Transport", "Uplink", "UplinkSettings", "ack_topic", "batch_topic",
           "build_uplink", "draw_epoch"]
