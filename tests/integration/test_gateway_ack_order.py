"""The gateway acknowledges a message to the broker only once its batch is on the bus.

A gateway whose bus write fails, and which then stops (or dies), has acknowledged nothing:
the broker still holds the readings for its persistent session and hands them to the next
gateway of that session. Acknowledged before the write, they would be gone from the broker
and never on the bus: lost, though the drone had its PUBACK.

Real embedded broker and Redis (and the test Kafka broker); the failing bus is a Redis URL or a
Kafka bootstrap nothing listens on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from polling import wait_for
from skyhive.bootstrap import bootstrap
from skyhive.embedded import free_port
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.gateway import mqtt_gateway

pytestmark = pytest.mark.mqtt

BASE_MS = 1795428000000
DRONE = "ack-1"
TOPIC = f"skyhive/drones/{DRONE}/telemetry"
READINGS = 5


def reading(seq: int) -> bytes:
    return orjson.dumps(
        {"seq": seq, "ts": BASE_MS + seq * 1000, "battery_pct": 80.0, "lat": 37.8, "lon": -122.27}
    )


class Running:
    """A gateway on its own thread, as ``skyhive gateway`` runs it."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.clients = Clients(settings)
        self.gateway = mqtt_gateway(settings, self.clients.ingest, client_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.gateway.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive()
        self.clients.close()


def publish_as_drone(settings: Settings) -> None:
    """QoS 1, each one PUBACKed by the broker to the drone."""
    host, port = settings.mqtt_url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"drone-{uuid.uuid4().hex[:8]}")
    c.connect(host, int(port))
    c.loop_start()
    try:
        for info in [c.publish(TOPIC, reading(s), qos=1) for s in range(1, READINGS + 1)]:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        c.disconnect()
        c.loop_stop()


def refused_then_redelivered(
    down: Settings, up: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway on the ``down`` bus reads the drone's readings, fails to write them and
    stops; the next gateway of the same session, on the ``up`` bus, gets them all."""
    client_id = f"gw-{uuid.uuid4().hex[:8]}"  # one persistent session for both gateways
    caplog.set_level(logging.ERROR, logger="skyhive.services.gateway")
    first = Running(down, client_id)
    try:
        wait_for(lambda: first.gateway.connected, "the first gateway subscribed")
        publish_as_drone(up)
        # It read them and tried to write them: every attempt failed.
        wait_for(
            lambda: any(
                f"could not write {READINGS} messages" in r.getMessage() for r in caplog.records
            ),
            "a failed bus write of the whole batch",
            timeout=20,
        )
        assert first.gateway.accepted == 0
    finally:
        first.stop()  # what it holds is still unwritten: nothing may have been acked
    second = Running(up, client_id)  # same session, a bus that works
    try:
        wait_for(
            lambda: second.gateway.accepted >= READINGS,
            "the broker redelivered the unacknowledged readings to the session",
        )
    finally:
        second.stop()


def test_readings_the_bus_refused_are_not_acknowledged_and_reach_the_next_gateway(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    clients = Clients(settings)
    try:
        bootstrap(clients)
        # The first gateway's bus: a Redis that is down (nothing listens on the port).
        down = make_settings(
            mongodb_db=settings.mongodb_db, redis_url=f"redis://127.0.0.1:{free_port()}/0"
        )
        refused_then_redelivered(down, settings, caplog)
        entries = clients.redis_bytes.xrange(settings.telemetry_stream)
        seqs = sorted(orjson.loads(fields[b"v"])["seq"] for _, fields in entries)
        assert seqs == list(range(1, READINGS + 1))
    finally:
        clients.close()


def test_on_kafka_too_nothing_is_acknowledged_before_the_brokers_have_it(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, embedded_kafka: str
) -> None:
    """The same with the bus on Kafka: the first gateway's Kafka is down (its batch is not
    acknowledged within the bus timeout), the second's is the test broker."""
    stream = f"ack-{uuid.uuid4().hex[:8]}"
    kafka = {"timeout_ms": 1500, "session_timeout_ms": 6000}
    settings = make_settings(
        bus="kafka", kafka={**kafka, "bootstrap": embedded_kafka}, telemetry_stream=stream
    )
    down = make_settings(
        mongodb_db=settings.mongodb_db,
        bus="kafka",
        kafka={**kafka, "bootstrap": f"127.0.0.1:{free_port()}"},
        telemetry_stream=stream,
    )
    clients = Clients(settings)
    try:
        refused_then_redelivered(down, settings, caplog)
        clients.bus.ensure_group(stream, "check")
        got: list[int] = []
        deadline = time.monotonic() + 30
        while len(got) < READINGS and time.monotonic() < deadline:
            msgs = clients.bus.consume(stream, "check", "c1", 100, 500)
            got += [orjson.loads(m.value)["seq"] for m in msgs]
        assert sorted(got) == list(range(1, READINGS + 1))
    finally:
        clients.close()
