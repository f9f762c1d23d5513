"""Signed configuration pushes on the vehicle: verify, apply, persist, fall back, report.

The cloud publishes a sealed config (``edge_agent.wire.config``) retained on ``fleet/v1/<device>/config``;
the uplink's MQTT connection hands each message to ``receiver.ConfigReceiver.offer`` (network thread,
hand-off only) and the daemon thread applies it in ``tick``. ``settings`` is the ``[config_push]``
section of ``agent.toml`` (the pinned fleet key), ``files`` the applied and last known good configs on
disk (written atomically), ``apply`` builds the profile and detectors a config asks for and swaps them
into the running agent.

The package's ``__init__`` imports nothing: ``edge_agent.config`` imports ``settings``, and ``apply``
imports the detectors, which import ``edge_agent.config``.
"""
