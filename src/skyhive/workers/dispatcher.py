"""`skyhive dispatcher`: assigns pending deliveries on every tick or order (the wake channel),
relays queued commands to the drones over MQTT, records assignments on a thread of its own."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, TypeVar

from skyhive.adapters.dispatch_queue import WAKE
from skyhive.adapters.mqtt_publisher import MqttPublisher
from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.domain.device_access import Service
from skyhive.services.device_credentials import service_login
from skyhive.services.dispatcher import Dispatcher, Publish
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner

log = logging.getLogger(__name__)
D = TypeVar("D", bound=Dispatcher)


def command_publisher(settings: Settings) -> MqttPublisher:
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    login = service_login(settings, Service.dispatcher)
    return MqttPublisher(
        host,
        port,
        # Host and pid: in containers every dispatcher is pid 1, and two with one client id
        # would take each other's connection.
        client_id=f"skyhive-dispatcher-{socket.gethostname()}-{os.getpid()}",
        login=(login.username, login.password) if login else None,
    )


def build_dispatcher(
    clients: Clients,
    publish: Publish,
    consumer: str,
    settings: Settings | None = None,
    kind: type[D] = Dispatcher,  # type: ignore[assignment]
) -> D:
    """``kind``: the dispatcher class (a test's subclass may stand in)."""
    return kind(
        settings or clients.settings,
        queue=clients.dispatch_queue,
        records=clients.deliveries,
        live=clients.live,
        fleet=clients.fleet,
        stations=clients.stations,
        bus=clients.bus,
        clock=clients.clock,
        publish=publish,
        consumer=consumer,
    )


def worker(clients: Clients) -> runner.Worker:
    s = clients.settings
    publisher = command_publisher(s)
    dispatcher: Dispatcher = build_dispatcher(clients, publisher.publish, runner.consumer_name())
    wake: list[Any] = []  # the subscription to new orders, made once the servers answer
    tick_s = s.dispatch_tick_ms / 1000.0

    def setup() -> None:
        dispatcher.setup()
        if not wake:
            wake.append(clients.redis_text.pubsub(ignore_subscribe_messages=True))  # type: ignore[no-untyped-call]
            wake[0].subscribe(WAKE)

    def until_next_tick(_: None, _stop: threading.Event) -> None:
        """Sleep until the next tick, or until an order arrives."""
        if wake[0].get_message(timeout=tick_s) is not None:
            while wake[0].get_message(timeout=0) is not None:
                pass

    def close() -> None:
        try:
            dispatcher.recorder.drain()  # what is left stays journaled for the next dispatcher
        except Exception as exc:
            log.warning("could not record the last assignments on the way out: %s", exc)
        for pubsub in wake:
            pubsub.close()
        publisher.stop()

    publisher.start()
    name = f"dispatcher {dispatcher.consumer}"
    tick = runner.loop(name, dispatcher.tick, pause=until_next_tick, retry_s=(0.5, 10.0))
    return runner.Worker(
        name,
        [
            ("dispatcher", tick),
            ("recorder", dispatcher.recorder.run),
            # Registry specs are refreshed here, so the dispatch path finds them cached.
            ("specs", runner.every(1.0, dispatcher.refresh_specs)),
        ],
        setup=setup,
        close=close,
    )


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
