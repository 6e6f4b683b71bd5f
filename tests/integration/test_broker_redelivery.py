"""The embedded broker redelivers what a subscriber received but never acknowledged: a gateway
killed with QoS 1 messages in flight gets them again (flagged DUP) when its persistent session
reconnects, so readings the drones had PUBACKs for are not lost (adapters/amqtt_broker.py,
fix 3). Before the fix amqtt forgot them the moment the connection dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.embedded import BrokerAccess, Server, free_port, mqtt_broker

pytestmark = pytest.mark.mqtt  # a broker of its own

HOST = "127.0.0.1"
TOPIC = "skyhive/drones/d1/telemetry"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    port = free_port(HOST)
    server: Server = mqtt_broker(tmp_path, HOST, port, BrokerAccess(insecure_devices=True))
    server.start()
    try:
        yield port
    finally:
        server.stop()


class Subscriber:
    """A gateway-like client: persistent session, manual acknowledgements."""

    def __init__(self, port: int, ack: bool) -> None:
        self.got: list[tuple[bytes, bool]] = []
        self.subscribed = threading.Event()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="gw", clean_session=False, manual_ack=True
        )
        c.username_pw_set("gateway-like")  # a named session: amqtt keeps it across connections

        def on_message(client: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            self.got.append((m.payload, bool(m.dup)))
            if ack:
                client.ack(m.mid, m.qos)

        c.on_message = on_message
        c.on_connect = lambda cl, _u, _f, _rc, _p: cl.subscribe("skyhive/drones/+/telemetry", 1)
        c.on_subscribe = lambda *_a: self.subscribed.set()
        c.connect(HOST, port)
        c.loop_start()
        self.client = c

    def die(self) -> None:
        """Like kill -9: the socket goes, no DISCONNECT, nothing acknowledged."""
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.client.loop_stop()


def test_unacknowledged_messages_come_back_to_the_reconnected_session(broker: int) -> None:
    first = Subscriber(broker, ack=False)
    assert first.subscribed.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="drone")
    pub.connect(HOST, broker)
    pub.loop_start()
    for i in range(20):
        pub.publish(TOPIC, f"r{i}", qos=1).wait_for_publish(5)  # PUBACKed to the drone
    deadline = time.monotonic() + 10
    while len(first.got) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(first.got) == 20
    first.die()
    time.sleep(6)  # past amqtt's 5 s wait for a PUBACK: kept anyway
    second = Subscriber(broker, ack=True)
    pub.publish(TOPIC, "after", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 20
    while len(second.got) < 21 and time.monotonic() < deadline:
        time.sleep(0.05)
    payloads = {p.decode() for p, _ in second.got}
    assert payloads == {f"r{i}" for i in range(20)} | {"after"}
    assert all(dup for p, dup in second.got if p != b"after")
    second.die()
    pub.loop_stop()
