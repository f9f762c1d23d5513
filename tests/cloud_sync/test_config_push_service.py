"""``ConfigPush`` on a real SQLite store; the broker (outside the process) is a publisher that records or refuses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cloud_sync.config_push import ConfigPush, ConfigPushSettings, ConfigRefused
from cloud_sync.config_push.service import REISSUE_ACTOR, REISSUE_BEFORE_S
from cloud_sync.store import make_engine, migrate
from cloud_sync.store.configs import latest_config
from cloud_sync.store.devices import revoke_device
from edge_agent.wire.config import config_topic, open_config
from tests.cloud_sync.helpers import SimDevice


class Recorder:
    """A broker that takes (or, with ``accept`` False, refuses) every publish."""

    def __init__(self, on_connect: Callable[[], None]) -> None:
        self.on_connect = on_connect
        self.accept = True
        self.sent: list[tuple[str, bytes]] = []

    def start(self) -> None:
        self.on_connect()

    def publish(self, topic: str, payload: bytes) -> bool:
        if self.accept:
            self.sent.append((topic, payload))
        return self.accept

    def close(self) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    migrate(eng)
    SimDevice("truck-1").register(eng)
    SimDevice("truck-2").register(eng)
    yield eng
    eng.dispose()


def _push(engine: Engine, tmp_path: Path, factory: Callable[..., Recorder] | None = None) -> ConfigPush:
    return ConfigPush(engine, ConfigPushSettings(tmp_path / "ca" / "config.key"), publisher_factory=factory)


def test_only_the_newest_pending_config_of_each_device_goes_out(engine: Engine, tmp_path: Path) -> None:
    push = _push(engine, tmp_path)
    for a in (1, 2, 3):
        assert push.save("truck-1", actor="t", thresholds={"a": a}).published_at is None  # no publisher yet
    push.save("truck-2", actor="t", thresholds={"b": 1})
    recorders: list[Recorder] = []
    push._factory = lambda wake: recorders.append(Recorder(wake)) or recorders[-1]
    push.start()  # connect -> the sweeper publishes what waited
    try:
        deadline = time.monotonic() + 30
        while len(recorders[0].sent) < 2:
            assert time.monotonic() < deadline, "the sweeper did not publish"
            time.sleep(0.01)
    finally:
        push.close()
    sent = {topic: open_config(blob, push.key.public_key()) for topic, blob in recorders[0].sent}
    assert sent[config_topic("truck-1")].version == 3 and sent[config_topic("truck-1")].thresholds == {"a": 3.0}
    assert sent[config_topic("truck-2")].version == 1 and len(recorders[0].sent) == 2
    with engine.connect() as conn:
        assert latest_config(conn, "truck-1").published_at is not None  # type: ignore[union-attr]


def test_a_refused_publish_stays_pending_and_republish_says_so(engine: Engine, tmp_path: Path) -> None:
    rec: list[Recorder] = []
    push = _push(engine, tmp_path, lambda wake: rec.append(Recorder(wake)) or rec[-1])
    push.start()
    try:
        rec[0].accept = False
        assert push.save("truck-1", actor="t").published_at is None
        with pytest.raises(ConfigRefused) as info:
            push.republish("truck-1", actor="t")
        assert info.value.status == 503
        rec[0].accept = True
        assert push.republish("truck-1", actor="t").published_at is not None
        assert push.publish_pending() == 0
    finally:
        push.close()


def test_republishing_an_expiring_config_issues_it_again_as_a_new_version(engine: Engine, tmp_path: Path) -> None:
    rec: list[Recorder] = []
    push = _push(engine, tmp_path, lambda wake: rec.append(Recorder(wake)) or rec[-1])
    push.start()
    try:
        first = push.save("truck-1", actor="t", profile="light_obd2", ttl_s=2 * REISSUE_BEFORE_S)
        assert push.republish("truck-1", actor="t").version == 1  # plenty of life left: the same bytes again
        assert rec[0].sent[-1][1] == first.sealed
        push.clock = lambda: time.time() + REISSUE_BEFORE_S + 1
        again = push.republish("truck-1", actor="ops")
        config = open_config(again.sealed, push.key.public_key())
        assert (again.version, config.profile, again.created_by) == (2, "light_obd2", "ops")
        assert config.expires_at - config.issued_at == 2 * REISSUE_BEFORE_S
    finally:
        push.close()


def test_the_signing_key_is_made_once_and_kept(engine: Engine, tmp_path: Path) -> None:
    push = _push(engine, tmp_path)
    with pytest.raises(ConfigRefused):
        push.public_key_pem(create=False)
    assert push.enrolment_key_pem() is None  # no CA directory yet: nothing made in a stray place
    (tmp_path / "ca").mkdir()
    pem = push.enrolment_key_pem()
    assert pem is not None and _push(engine, tmp_path).public_key_pem(create=False) == pem


DAY = 86400.0
GEOFENCES = {"type": "FeatureCollection", "features": []}


def test_configs_are_reissued_before_they_expire_once_and_never_for_a_revoked_device(engine: Engine,
                                                                                      tmp_path: Path) -> None:
    now = [time.time()]
    rec: list[Recorder] = []
    push = _push(engine, tmp_path, lambda wake: rec.append(Recorder(wake)) or rec[-1])
    push.clock = lambda: now[0]
    push.publisher = Recorder(lambda: None)  # published synchronously; no sweeper thread here
    push.save("truck-1", actor="staff", profile="light_obd2", thresholds={"idle_s": 300}, geofences=GEOFENCES,
              ttl_s=10 * DAY)  # re-issued at half its life: 5 days before it expires
    push.save("truck-2", actor="staff", thresholds={"idle_s": 600})  # 30 days: re-issued 7 days before
    now[0] += 4.9 * DAY
    assert push.reissue_due() == []
    now[0] += 0.2 * DAY
    (again,) = push.reissue_due()
    config = open_config(again.sealed, push.key.public_key())
    assert (again.device_id, again.version, again.created_by) == ("truck-1", 2, REISSUE_ACTOR)
    assert (config.profile, config.thresholds, config.geofences) == ("light_obd2", {"idle_s": 300.0}, GEOFENCES)
    assert config.expires_at - config.issued_at == 10 * DAY and again.published_at is not None
    assert push.reissue_due() == []  # done once
    with engine.begin() as conn:
        revoke_device(conn, "truck-2")
    now[0] += 40 * DAY  # both long expired: only the device still in service gets a fresh one
    assert [(s.device_id, s.version) for s in push.reissue_due()] == [("truck-1", 3)]
    with engine.connect() as conn:
        assert latest_config(conn, "truck-2").version == 1  # type: ignore[union-attr]


def test_the_api_process_sweeper_reissues_by_itself(engine: Engine, tmp_path: Path) -> None:
    now = [time.time()]
    rec: list[Recorder] = []
    push = _push(engine, tmp_path, lambda wake: rec.append(Recorder(wake)) or rec[-1])
    push.clock = lambda: now[0]
    push.save("truck-1", actor="staff", thresholds={"idle_s": 300}, ttl_s=DAY)
    now[0] += 0.75 * DAY
    push.start()  # its first round re-issues what is due, then publishes
    try:
        deadline = time.monotonic() + 30
        while not any(open_config(b, push.key.public_key()).version == 2 for _t, b in rec[0].sent):
            assert time.monotonic() < deadline, "the sweeper did not re-issue"
            time.sleep(0.01)
    finally:
        push.close()
    with engine.connect() as conn:
        newest = latest_config(conn, "truck-1")
    assert newest is not None and newest.created_by == REISSUE_ACTOR and newest.published_at is not None
