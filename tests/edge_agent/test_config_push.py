"""Signed config pushes applied to a real agent (virtual CAN, real outbox and files): each refusal, and fallback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.app import Agent, build_agent
from edge_agent.config import parse_config
from edge_agent.config_push.receiver import POLICY_REASONS
from edge_agent.counters import COUNTER_DOCS
from edge_agent.errors import ConfigError
from edge_agent.wire import save_public_key
from edge_agent.wire.config import CONFIG_REASONS, CONFIG_STATUS_KIND, MAX_CONFIG_BYTES, SignedConfig, seal_config

DEVICE = "truck-7"
FENCES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "yard", "radius_m": 200},
     "geometry": {"type": "Point", "coordinates": [11.5, 48.1]}}]}
BAD_FENCES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"id": "half"},
     "geometry": {"type": "Polygon", "coordinates": [[[11.5, 48.1], [11.6, 48.1]]]}}]}


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.fleet = Ed25519PrivateKey.generate()
        save_public_key(self.fleet, self.data / "fleet-config.pub")
        self.doc: dict[str, Any] = {
            "agent": {"device_id": DEVICE, "profile": "heavy_truck_j1939", "data_dir": str(self.data)},
            "can": {"interface": "virtual", "channel": f"cfg-{id(self)}"},
            "detection": {"thresholds": {"idle_min_duration_s": 300}},
            "config_push": {"fleet_key": "fleet-config.pub"}}
        self.agent = self.build()

    def build(self) -> Agent:
        return build_agent(parse_config(self.doc, self.data / "agent.toml"))

    def restart(self) -> None:
        self.agent.close()
        self.agent = self.build()

    def seal(self, version: int, *, key: Ed25519PrivateKey | None = None, device: str = DEVICE,
             expires_in: float = 3600.0, **content: Any) -> bytes:
        now = time.time()
        config = SignedConfig(device, version, now - 10, now + expires_in, **content)
        return seal_config(config, key or self.fleet)

    @property
    def receiver(self) -> Any:
        assert self.agent.config_push is not None
        return self.agent.config_push

    def push(self, blob: bytes) -> str | None:
        self.receiver.offer(blob)
        return self.receiver.tick()

    def reports(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.agent.outbox.claim(10_000) if r.kind == CONFIG_STATUS_KIND]

    def idle_min(self) -> float:
        return self.agent.pipeline.detectors["idle"].min_duration_s  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.agent.close()


def test_start_without_a_pushed_config_reports_version_0(rig: Rig) -> None:
    assert rig.receiver.version == 0 and rig.idle_min() == 300
    assert rig.reports() == [{"applied_version": 0, "result": "running", "offered_version": None, "reason": ""}]


def test_thresholds_and_geofences_apply_without_restart(rig: Rig) -> None:
    pipeline = rig.agent.pipeline
    assert "geofence" not in pipeline.detectors
    blob = rig.seal(1, thresholds={"idle_min_duration_s": 42}, geofences=FENCES)
    assert rig.push(blob) == "applied"
    assert rig.agent.pipeline is pipeline  # no restart: same decoders, detectors swapped
    assert rig.idle_min() == 42 and "geofence" in pipeline.detectors
    assert (rig.data / "config" / "current.cfg").read_bytes() == blob
    assert rig.reports()[-1] == {"applied_version": 1, "result": "applied", "offered_version": 1, "reason": ""}
    assert rig.agent.counters.get("config_applied") == 1
    # The retained message again after a reconnect: ignored, not a refusal.
    assert rig.push(blob) == "already_applied"
    assert rig.agent.counters.get("config_rejected") == 0


def test_profile_change_restarts_the_pipeline_in_process(rig: Rig) -> None:
    old = rig.agent.pipeline
    assert rig.push(rig.seal(1, profile="light_obd2")) == "applied"
    assert rig.agent.pipeline is not old and rig.agent.pipeline.profile.name == "light_obd2"
    assert rig.agent.profile.name == "light_obd2" and rig.agent.poller is not None
    assert rig.idle_min() == 300  # agent.toml's override still applies on top of the new profile


def _cases(rig: Rig) -> dict[str, tuple[bytes, str]]:
    good = rig.seal(3, thresholds={"idle_min_duration_s": 7})
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x20
    return {
        "forged": (rig.seal(3, key=Ed25519PrivateKey.generate()), "bad_signature"),
        "other_device": (rig.seal(3, device="truck-8"), "other_device"),
        "older": (rig.seal(1), "rollback"),
        "same_version": (rig.seal(2, thresholds={"idle_min_duration_s": 1}), "not_newer"),
        "expired": (rig.seal(3, expires_in=-1.0), "expired"),
        "oversized": (good + bytes(MAX_CONFIG_BYTES), "oversized"),
        "corrupt_flipped": (bytes(flipped), "bad_signature"),
        "corrupt_truncated": (good[:40], "truncated"),
        "corrupt_garbage": (b"\x00" * 200, "bad_magic"),
        "invalid_geojson": (rig.seal(3, geofences=BAD_FENCES), "invalid_content"),
        "unknown_profile": (rig.seal(3, profile="no_such_profile"), "invalid_content"),
    }


@pytest.mark.parametrize("case", ["forged", "other_device", "older", "same_version", "expired", "oversized",
                                  "corrupt_flipped", "corrupt_truncated", "corrupt_garbage", "invalid_geojson",
                                  "unknown_profile"])
def test_refused_configs_leave_the_last_good_one_running(rig: Rig, case: str) -> None:
    good = rig.seal(2, thresholds={"idle_min_duration_s": 55}, geofences=FENCES)
    assert rig.push(good) == "applied"
    pipeline, detectors = rig.agent.pipeline, dict(rig.agent.pipeline.detectors)
    rig.reports()  # drain
    blob, reason = _cases(rig)[case]
    assert rig.push(blob) == reason
    assert rig.receiver.version == 2 and rig.agent.pipeline is pipeline and pipeline.detectors == detectors
    assert rig.idle_min() == 55 and rig.agent.profile.name == "heavy_truck_j1939"
    assert (rig.data / "config" / "current.cfg").read_bytes() == good
    c = rig.agent.counters
    assert (c.get("config_rejected"), c.get(f"config_rejected_{reason}"), c.get("config_applied")) == (1, 1, 1)
    [report] = rig.reports()
    assert report["applied_version"] == 2 and report["result"] == "rejected" and report["reason"].startswith(reason)
    assert rig.receiver.status()["last_rejection"]["reason"] == reason


def test_restart_runs_the_saved_config_and_falls_back_to_the_last_good(rig: Rig) -> None:
    v1 = rig.seal(1, geofences=FENCES)
    v2 = rig.seal(2, thresholds={"idle_min_duration_s": 9})
    assert rig.push(v1) == "applied" and rig.push(v2) == "applied"
    files = rig.data / "config"
    assert (files / "current.cfg").read_bytes() == v2 and (files / "last_good.cfg").read_bytes() == v1
    rig.restart()
    assert rig.receiver.version == 2 and rig.idle_min() == 9 and "geofence" not in rig.agent.pipeline.detectors
    # Damage the saved config: the next start verifies it, refuses it and runs the last known good one.
    damaged = bytearray(v2)
    damaged[-1] ^= 1
    (files / "current.cfg").write_bytes(bytes(damaged))
    rig.restart()
    assert rig.receiver.version == 1 and "geofence" in rig.agent.pipeline.detectors and rig.idle_min() == 300
    assert rig.agent.counters.get("config_fallbacks") == 1
    assert (files / "current.cfg").read_bytes() == v1
    last = rig.reports()[-1]
    assert (last["applied_version"], last["result"]) == (1, "fallback") and "bad_signature" in last["reason"]


def test_a_newer_message_supersedes_an_unhandled_one(rig: Rig) -> None:
    rig.receiver.offer(rig.seal(1, thresholds={"idle_min_duration_s": 1}))
    rig.receiver.offer(rig.seal(2, thresholds={"idle_min_duration_s": 2}))
    assert rig.receiver.tick() == "applied" and rig.receiver.tick() is None
    assert rig.receiver.version == 2 and rig.agent.counters.get("config_superseded") == 1


def test_missing_fleet_key_fails_at_start(rig: Rig) -> None:
    rig.doc["config_push"]["fleet_key"] = "nope.pub"
    with pytest.raises(ConfigError, match=r"config_push\.fleet_key"):
        rig.build()


def test_every_rejection_counter_is_documented() -> None:
    for reason in (*CONFIG_REASONS, *POLICY_REASONS):
        assert f"config_rejected_{reason}" in COUNTER_DOCS


def test_sighup_reload_keeps_the_pushed_config_on_top(rig: Rig) -> None:
    from edge_agent.daemon import Daemon

    assert rig.push(rig.seal(1, thresholds={"idle_min_duration_s": 42}, geofences=FENCES)) == "applied"
    path = rig.data / "agent.toml"
    path.write_text(f"""
[agent]
device_id = "{DEVICE}"
profile = "heavy_truck_j1939"
data_dir = "{rig.data}"
[can]
interface = "virtual"
channel = "reload"
[detection.thresholds]
idle_min_duration_s = 600
idle_engine_speed_rpm = 700
[config_push]
fleet_key = "fleet-config.pub"
""")
    daemon = Daemon(rig.agent, str(path))
    daemon.reload()
    detectors = rig.agent.pipeline.detectors
    assert rig.idle_min() == 42 and "geofence" in detectors  # the push wins over agent.toml
    assert detectors["idle"].engine_rpm == 700  # type: ignore[attr-defined]  # agent.toml's new value below it
    assert rig.agent.config.thresholds["idle_engine_speed_rpm"] == 700
    status = daemon.status()["config"]
    assert isinstance(status, dict) and status["applied_version"] == 1


def test_fleet_agent_status_shows_the_config(rig: Rig) -> None:
    from edge_agent.daemon import Daemon
    from edge_agent.status import format_status

    rig.push(rig.seal(4, thresholds={"idle_min_duration_s": 42}))
    rig.push(rig.seal(5, expires_in=-5))
    text = format_status(Daemon(rig.agent, "unused").status())
    assert "config          v4 pushed by the cloud; last push refused (expired: expired" in text


@pytest.mark.parametrize("fences", [
    {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": "x", "radius_m": "far"},
                                                "geometry": {"type": "Point", "coordinates": ["a", None]}}]},
    {"type": "FeatureCollection", "features": "not a list"},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[500, 0], [0, 0], [0, 1], [500, 0]]]}},
    {"type": "Topology"},
])
def test_odd_geojson_is_refused_never_a_crash(rig: Rig, fences: dict[str, Any]) -> None:
    assert rig.push(rig.seal(1, geofences=fences)) == "invalid_content"
    assert rig.receiver.version == 0 and "geofence" not in rig.agent.pipeline.detectors
