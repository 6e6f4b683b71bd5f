"""A long-lived paho client for processes that send commands to drones (QoS 1)."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)


class MqttPublisher:
    def __init__(
        self, host: str, port: int, client_id: str, login: tuple[str, str] | None = None
    ) -> None:
        """``login``: (username, password) of the service; None connects without one (only
        a broker with insecure devices admits that)."""
        self._host, self._port = host, port
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if login is not None:
            self._client.username_pw_set(*login)
        self._client.on_connect = self._on_connect
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    @staticmethod
    def _on_connect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            log.error("the MQTT broker refused the command publisher: %s", rc)

    def start(self) -> None:
        # connect_async + loop_start: paho keeps reconnecting; publishes made while the
        # broker is away are queued and sent on reconnect.
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Queue a QoS 1 message; its ``is_published()`` turns true once the broker has
        acknowledged it (PUBACK)."""
        return self._client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
