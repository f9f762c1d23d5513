"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import Mosquitto, mosquitto_or_skip


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    b = Mosquitto(mosquitto_or_skip(), tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()
