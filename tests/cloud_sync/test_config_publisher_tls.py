"""The config publisher on the fleet's mutual-TLS Mosquitto (``fleet-cloud broker-config``): with the ingest
service's certificate it may write every device's config topic, retained; the broker refuses the rest, and
``publish`` says so. A device cannot write its own config topic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.config_push.publisher import MqttConfigPublisher
from edge_agent.wire.config import config_topic
from tests.cloud_sync.test_broker_config import NOT_AUTHORIZED, Fleet

WAIT_S = 30.0


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.broker.stop()


def test_publisher_with_the_ingest_identity(fleet: Fleet) -> None:
    pub = MqttConfigPublisher("127.0.0.1", fleet.broker.port, client_id="config-publisher",
                              tls_ca=str(fleet.files.ca), tls_cert=str(fleet.files.ingest_cert),
                              tls_key=str(fleet.files.ingest_key))
    pub.start()
    a = None
    try:
        deadline = time.monotonic() + WAIT_S
        while not pub.connected:
            assert time.monotonic() < deadline, "the publisher did not connect"
            time.sleep(0.01)
        assert pub.publish(config_topic("truck-a"), b"sealed config for a")
        assert not pub.publish("fleet/v1/truck-a/batch", b"not the publisher's to write")  # PUBACK 0x87
        a = fleet.device("truck-a")
        assert a.connected.is_set(), a.connack
        assert not a.subscribe(config_topic("truck-a")).is_failure
        a.wait("the retained config", lambda: bool(a.received(config_topic("truck-a"))))
        assert a.received(config_topic("truck-a")) == [b"sealed config for a"]
        assert a.publish(config_topic("truck-a"), b"a device writing its own config").value == NOT_AUTHORIZED
    finally:
        if a is not None:
            a.close()
        pub.close()
