"""Deliveries through the real path, for the dispatch and billing tests: drones made live by
telemetry through ingest and the processor, orders through ``DeliveryService``, commands
sent by the real ``MqttPublisher`` to the embedded broker and received by a subscriber on
the drone's commands topic, drone events through ingest onto the bus for the tracker.

Readings are stamped from a fixed base, never from today's date.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from customer_seed import add_customers
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.adapters.mqtt_publisher import MqttPublisher
from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.bootstrap import bootstrap
from skyhive.domain.commands import commands_topic
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import bart_stations
from skyhive.services.ingest import RawMessage
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers.processor import build_processor

BASE_MS = 1795428000000  # 2026-11-23T12:00:00Z
STATIONS = {s.code: s for s in bart_stations()}
PICKUP = STATIONS["12TH"]


class World:
    """One customer ``c1``; drones registered at 12TH and reporting through the processor."""

    def __init__(self, clients: Clients) -> None:
        bootstrap(clients)
        add_customers(clients, "c1")
        self.clients = clients
        self.svc = clients.delivery_service
        self._seq: dict[str, int] = {}
        self._proc = build_processor(clients, "world")
        self._proc.setup()

    def register(self, drone: str, **spec: Any) -> None:
        self.clients.fleet.register(DroneSpec(drone_id=drone, home_station="12TH", **spec))

    def fly(self, drone: str, lat: float, lon: float, battery: float, status: str) -> None:
        """One reading through the real ingest and processor, a second after the last."""
        seq = self._seq[drone] = self._seq.get(drone, 0) + 1
        body = {
            "drone_id": drone,
            "seq": seq,
            "ts": BASE_MS + seq * 1000,
            "lat": lat,
            "lon": lon,
            "battery_pct": battery,
            "status": status,
        }
        self.clients.ingest.submit([RawMessage(orjson.dumps(body), "test")])
        while self._proc.poll():
            pass

    def order(self, lat: float, lon: float, kg: float = 1.0) -> str:
        req = DeliveryRequest.model_validate(
            {
                "customer_id": "c1",
                "pickup_station": PICKUP.code,
                "destination": {"lat": lat, "lon": lon},
                "package": {"weight_kg": kg, "size": "small"},
            }
        )
        doc, _ = self.svc.create(req)
        return doc.id

    def report(self, drone: str, delivery_id: str, event: str, **extra: Any) -> None:
        """A drone event as the gateway puts it on the bus (the tracker reads it there)."""
        seq = self._seq[drone] = self._seq.get(drone, 0) + 1
        body = {"delivery_id": delivery_id, "event": event, "ts": BASE_MS + seq * 1000, **extra}
        raw = RawMessage(orjson.dumps(body), f"mqtt:skyhive/drones/{drone}/events", drone, "event")
        res = self.clients.ingest.submit([raw])
        assert res.accepted == 1, res.errors


class DroneRadio:
    """What drones hear: a subscriber on their commands topics on the embedded broker."""

    def __init__(self, settings: Settings, drones: list[str]) -> None:
        self.heard: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        host, port = parse_mqtt_url(settings.mqtt_url_or_default())
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"radio-{uuid.uuid4().hex[:8]}")

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            drone = m.topic.split("/")[2]
            with self._lock:
                self.heard.append((drone, orjson.loads(m.payload)))

        c.on_message = on_message
        c.on_subscribe = lambda *_a: subscribed.set()
        c.on_connect = lambda cl, *_a: cl.subscribe([(commands_topic(d), 1) for d in drones])
        c.connect(host, port)
        c.loop_start()
        assert subscribed.wait(10), "subscribed to the drones' commands"
        self._client = c

    def commands(self, drone: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [cmd for d, cmd in self.heard if drone is None or d == drone]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def command_publisher(settings: Settings) -> Iterator[Callable[[str, bytes], None]]:
    """The dispatcher's real command sender (``run_dispatcher`` makes the same one)."""
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    publisher = MqttPublisher(host, port, client_id=f"dispatcher-{uuid.uuid4().hex[:8]}")
    publisher.start()
    try:
        yield publisher.publish
    finally:
        publisher.stop()
