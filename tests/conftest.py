"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import Mosquitto, mosquitto_or_skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first (stable otherwise): under pytest-xdist (scripts/test.sh) they then spread
    over the workers at the start instead of one of them finishing alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


#: What the product writes relative to its working directory by default (cloud_sync.settings: the fleet CA).
#: A test that leaves it in the repository used the default instead of a tmp_path: it races other xdist
#: workers and leaks keys into the working tree.
CWD_DEFAULTS = ("fleet-ca",)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_repository() -> Iterator[None]:
    before = {name for name in CWD_DEFAULTS if (REPO / name).exists()}
    yield
    leaked = [name for name in CWD_DEFAULTS if name not in before and (REPO / name).exists()]
    assert not leaked, f"a test wrote {leaked} into {REPO}: pass a tmp_path (e.g. Settings(ca_dir=...))"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    b = Mosquitto(mosquitto_or_skip(), tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()
