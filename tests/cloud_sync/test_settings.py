"""Settings: defaults for development, refusal of default or short secrets elsewhere."""

from __future__ import annotations

import pytest

from cloud_sync.settings import DEFAULT_DATABASE_URL, DEV_ADMIN_TOKEN, MIN_TOKEN_CHARS, Settings, SettingsError

GOOD = "x" * MIN_TOKEN_CHARS


def test_development_defaults():
    s = Settings.from_env({})
    assert (s.database_url, s.environment, s.admin_token, s.staff_token) == (
        DEFAULT_DATABASE_URL, "development", DEV_ADMIN_TOKEN, None)


@pytest.mark.parametrize("env", [
    {"FLEET_CLOUD_ENV": "production"},
    {"FLEET_CLOUD_ENV": "production", "FLEET_CLOUD_ADMIN_TOKEN": ""},
    {"FLEET_CLOUD_ENV": "staging", "FLEET_CLOUD_ADMIN_TOKEN": DEV_ADMIN_TOKEN},
    {"FLEET_CLOUD_ENV": "production", "FLEET_CLOUD_ADMIN_TOKEN": "x" * (MIN_TOKEN_CHARS - 1)},
    {"FLEET_CLOUD_ENV": "production", "FLEET_CLOUD_ADMIN_TOKEN": GOOD, "FLEET_CLOUD_STAFF_TOKEN": "short"},
    {"FLEET_CLOUD_ENV": "prod"},
    {"FLEET_CLOUD_MAX_BATCH_BYTES": "lots"},
    {"FLEET_CLOUD_MAX_BATCH_BYTES": "0"},
])
def test_refused(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_production_with_real_secrets():
    s = Settings.from_env({"FLEET_CLOUD_ENV": "production", "FLEET_CLOUD_ADMIN_TOKEN": GOOD,
                           "FLEET_CLOUD_DATABASE_URL": "postgresql+psycopg://fleet@db/fleet",
                           "FLEET_CLOUD_MAX_BATCH_BYTES": "1000"})
    assert (s.admin_token, s.max_batch_bytes, s.database_url) == (GOOD, 1000, "postgresql+psycopg://fleet@db/fleet")
