"""Fixtures for governance tests: an app with one user (and token) per role, and vehicles in two depots."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_sync.governance import identity
from cloud_sync.governance.roles import FLEET_WIDE, Role
from cloud_sync.main import create_app
from cloud_sync.settings import Settings
from cloud_sync.store import make_engine, migrate
from cloud_sync.store.devices import add_device
from tests.cloud_sync.helpers import SimDevice

ADMIN_TOKEN = "admin-secret-for-tests-0123456789"
STAFF_TOKEN = "staff-secret-for-tests-0123456789"
DEPOT_A, DEPOT_B = "depot-a", "depot-b"
DEVICE_A, DEVICE_B = "truck-a", "truck-b"


@dataclass
class World:
    client: TestClient
    engine: Engine
    tokens: dict[Role, str]  # one user per role: depot A only, except the fleet-wide roles
    devices: dict[str, SimDevice]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_world(engine: Engine, ca_dir: Path) -> Iterator[World]:
    migrate(engine)
    devices = {DEVICE_A: SimDevice(DEVICE_A), DEVICE_B: SimDevice(DEVICE_B)}
    tokens = {}
    with engine.begin() as conn:
        for dev_id, depot in ((DEVICE_A, DEPOT_A), (DEVICE_B, DEPOT_B)):
            add_device(conn, dev_id, devices[dev_id].public_pem, depot=depot)
        for role in Role:
            depots = None if role in FLEET_WIDE else [DEPOT_A]
            identity.add_user(conn, f"{role.value}-1", role, depots)
            tokens[role], _ = identity.create_token(conn, f"{role.value}-1", 3600, "tests")
    settings = Settings(environment="production", admin_token=ADMIN_TOKEN, staff_token=STAFF_TOKEN, ca_dir=ca_dir)
    with TestClient(create_app(settings, engine)) as client:
        yield World(client, engine, tokens, devices)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    """SQLite only: access decisions do not depend on the backend (the store tests cover both)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        yield from make_world(engine, tmp_path / "ca")
    finally:
        engine.dispose()
