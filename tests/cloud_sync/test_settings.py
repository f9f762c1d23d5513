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


@pytest.mark.parametrize("env", [
    {"FLEET_CLOUD_BROKER_PORT": "eighty"},
    {"FLEET_CLOUD_BROKER_PORT": "0"},
    {"FLEET_CLOUD_BROKER_PORT": "65536"},
    {"FLEET_CLOUD_BROKER_HOST": ""},
    {"FLEET_CLOUD_BROKER_HOST": "broker example.com"},
    {"FLEET_CLOUD_DEVICE_CERT_DAYS": "ninety"},
    {"FLEET_CLOUD_DEVICE_CERT_DAYS": "0"},
    {"FLEET_CLOUD_DEVICE_CERT_DAYS": "nan"},
    {"FLEET_CLOUD_DEVICE_CERT_DAYS": "366"},
    {"FLEET_CLOUD_RENEW_BEFORE_DAYS": "-1"},
    {"FLEET_CLOUD_DEVICE_CERT_DAYS": "20", "FLEET_CLOUD_RENEW_BEFORE_DAYS": "20"},
])
def test_provisioning_settings_refused(env):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert next(iter(env)) in str(err.value) or "FLEET_CLOUD_RENEW_BEFORE_DAYS" in str(err.value)


def test_provisioning_settings_from_env(tmp_path):
    s = Settings.from_env({"FLEET_CLOUD_CA_DIR": str(tmp_path / "ca"), "FLEET_CLOUD_BROKER_HOST": "mqtt.fleet.test",
                           "FLEET_CLOUD_BROKER_PORT": "18883", "FLEET_CLOUD_DEVICE_CERT_DAYS": "7.5",
                           "FLEET_CLOUD_RENEW_BEFORE_DAYS": "2"})
    assert (s.ca_dir, s.broker_host, s.broker_port, s.device_cert_days, s.renew_before_days) == (
        tmp_path / "ca", "mqtt.fleet.test", 18883, 7.5, 2.0)
    defaults = Settings.from_env({})
    assert (str(defaults.ca_dir), defaults.broker_port, defaults.device_cert_days) == ("fleet-ca", 8883, 90.0)
