"""The gateway's MQTT connection (paho): a persistent session, QoS 1, manual acknowledgement.

paho reads one packet per call; ``read`` takes everything readable, lingering for a fuller
batch, all on the caller's thread (no network thread, no lock).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from skyhive.ports.inbox import InboxLost, Received

log = logging.getLogger(__name__)


class MqttSubscriber:
    def __init__(
        self, host: str, port: int, client_id: str, topics: list[str], username: str,
        password: str | None,
    ) -> None:  # fmt: skip
        """``username``: a named (non-anonymous) session, so brokers queue messages while
        the subscriber restarts; without a password only a broker with insecure devices
        admits it."""
        self._host, self._port = host, port
        self._topics = topics
        self._buffer: list[Received] = []
        self._connected = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,  # the broker keeps our subscription and queued QoS 1 messages
            manual_ack=True,
        )
        self._client_id, self._login = client_id, (username, password)
        self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object = None
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.error("the MQTT broker refused the gateway: %s", rc)
            return
        log.info("gateway connected to MQTT (%s); subscribing %s", rc, ", ".join(self._topics))
        client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[Any], _p: object
    ) -> None:
        """The SUBACK: from now on the broker queues for this session (the port's promise)."""
        refused = [c for c in codes if getattr(c, "is_failure", False)]
        if refused:
            log.error("the MQTT broker refused the gateway's subscription: %s", refused)
            return
        self._connected = True

    def _on_disconnect(self, *_args: object) -> None:
        self._connected = False

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        self._buffer.append(Received(m.topic, bytes(m.payload), m.mid, m.qos))

    def connect(self) -> None:
        self._client.connect(self._host, self._port, keepalive=30)

    def reconnect(self) -> None:
        self._client.reconnect()

    def read(self, room: int, linger_s: float) -> list[Received]:
        rc = self._client.loop(timeout=0.05)
        deadline = time.monotonic() + linger_s
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and 0 < len(self._buffer) < room:
            before = len(self._buffer)
            rc = self._client.loop_read()
            if len(self._buffer) == before:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                rc = self._client.loop(timeout=remaining)
        got, self._buffer = self._buffer, []
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise InboxLost(str(rc), got)
        return got

    def ack(self, msg: Received) -> None:
        if msg.qos > 0:
            self._client.ack(msg.mid, msg.qos)

    def close(self) -> None:
        self._client.loop(timeout=0.1)  # send the last acknowledgements
        self._client.disconnect()

    def leave(self) -> None:
        self._client.unsubscribe(self._topics)  # sent by the next read's loop

    def end_session(self) -> None:
        """A clean-session connection under the same client id: MQTT 3.1.1's way to make the
        broker discard the persistent session."""
        ended = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id)
        ended.username_pw_set(*self._login)
        answered: list[object] = []
        ended.on_connect = lambda _c, _u, _f, rc, _p=None: answered.append(rc)
        ended.connect(self._host, self._port, keepalive=30)
        deadline = time.monotonic() + 10
        while not answered and time.monotonic() < deadline:
            ended.loop(timeout=0.1)
        ended.disconnect()
        if not answered or getattr(answered[0], "is_failure", False):
            raise OSError(f"the broker did not end session {self._client_id}: {answered}")
