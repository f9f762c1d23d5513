"""Signed configuration pushes, cloud side: ``service.ConfigPush`` signs, stores and publishes configs,
``publisher.MqttConfigPublisher`` is its MQTT client (retained, QoS 1). The envelope is the wire's
(``edge_agent.wire.config``); the API is ``cloud_sync.api.config``.

``lifespan`` starts the publisher with the API process and stops it with it (``cloud_sync.main``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud_sync.config_push.service import ConfigPush, ConfigPushSettings, ConfigRefused


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    push: ConfigPush = app.state.config_push
    push.start()
    try:
        yield
    finally:
        app.state.config_push.close()


__all__ = ["ConfigPush", "ConfigPushSettings", "ConfigRefused", "lifespan"]
