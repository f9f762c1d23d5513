"""``MqttConfigPublisher``: the API process's MQTT client that publishes sealed configs, retained, QoS 1.

Retained, so a device that is offline now gets its newest config the moment it subscribes; QoS 1 and a
wait for the PUBACK, so ``publish`` returns True only once the broker has taken it (an MQTT v5 PUBACK
reason code >= 0x80, e.g. 0x87 "not authorised" by the ACL, is False). paho's own thread keeps the
connection and reconnects with backoff; ``on_connect`` lets the owner publish what waited meanwhile.
Foreign types (paho) stay in this module.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
#: Reconnect backoff of paho's thread (it doubles from the minimum up to the maximum).
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
#: Longest ``publish`` waits for the broker's PUBACK; an HTTP request waits on it.
PUBLISH_TIMEOUT_S = 10.0


class Publisher(Protocol):
    """What ``ConfigPush`` needs: publish retained and say whether the broker took it."""

    def start(self) -> None: ...

    def publish(self, topic: str, payload: bytes) -> bool: ...

    def close(self) -> None: ...


class MqttConfigPublisher:
    def __init__(self, host: str, port: int, *, client_id: str, tls_ca: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 on_connect: Callable[[], None] | None = None) -> None:
        self.host, self.port = host, port
        self.on_connect = on_connect
        self._connected = threading.Event()
        self._done = threading.Condition()
        self._results: dict[int, ReasonCode] = {}
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key, cert_reqs=ssl.CERT_REQUIRED,
                                 tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def publish(self, topic: str, payload: bytes, timeout: float = PUBLISH_TIMEOUT_S) -> bool:
        """Publish retained at QoS 1; True once the broker's PUBACK says it took it."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("config publish to %s not sent: %s", topic, mqtt.error_string(info.rc))
            return False
        with self._done:
            self._done.wait_for(lambda: info.mid in self._results or not self._connected.is_set(), timeout)
            reason = self._results.pop(info.mid, None)
        if reason is None:
            log.warning("config publish to %s: no PUBACK within %.0f s", topic, timeout)
            return False
        if reason.is_failure:
            log.error("broker refused the config on %s: PUBACK %s", topic, reason)
            return False
        return True

    # -- paho's thread ---------------------------------------------------------------------------------

    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                    _properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.error("config publisher: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        log.info("config publisher connected to %s:%d", self.host, self.port)
        self._connected.set()
        if self.on_connect is not None:
            self.on_connect()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode,
                       _properties: Properties | None) -> None:
        if self._connected.is_set():
            log.warning("config publisher disconnected from %s:%d: %s", self.host, self.port, reason_code)
        self._connected.clear()
        with self._done:
            self._done.notify_all()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: ReasonCode,
                    _properties: Properties | None) -> None:
        with self._done:
            self._results[mid] = reason_code
            self._done.notify_all()
