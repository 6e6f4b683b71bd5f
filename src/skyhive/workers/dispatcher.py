"""`skyhive dispatcher`: assigns pending deliveries on every tick or order (the wake channel),
relays queued commands to the drones over MQTT, records assignments on a thread of its own,
and moves idle drones toward forecast demand (``services/rebalancer.py``)."""

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
from skyhive.services.drone_commands import DroneCommands
from skyhive.services.rebalancer import Rebalancer
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


REBALANCE_LEASE = "rebalance:lease"


def build_rebalancer(clients: Clients, consumer: str) -> Rebalancer:
    """The rebalancing pass; one dispatcher at a time takes it (a lease of 90 % of a period,
    so the next period's pass finds it free)."""
    s = clients.settings
    commands = DroneCommands(
        clients.live, clients.stations, clients.bus, clients.clock, s.commands_stream
    )

    def lease(period_s: float) -> bool:
        ms = max(1, int(period_s * 900))
        return bool(clients.redis_text.set(REBALANCE_LEASE, consumer, nx=True, px=ms))

    return Rebalancer(
        s.rebalance,
        s.dispatch_reserve_pct,
        forecasts=clients.forecasts,
        stations=clients.stations,
        live=clients.live,
        queue=clients.dispatch_queue,
        specs=clients.fleet.specs,
        send_to=lambda drone, reason, station: commands.return_to_station(drone, reason, station),
        moves=clients.rebalance_moves,
        lease=lease,
        clock=clients.clock,
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
    works = [
        ("dispatcher", tick),
        ("recorder", dispatcher.recorder.run),
        # Registry specs are refreshed here, so the dispatch path finds them cached.
        ("specs", runner.every(1.0, dispatcher.refresh_specs)),
    ]
    if s.rebalance.enabled:
        rebalancer = build_rebalancer(clients, dispatcher.consumer)
        works.append(("rebalancer", runner.every(s.rebalance.every_s, rebalancer.run)))
    return runner.Worker(
        name,
        works,
        setup=setup,
        close=close,
    )


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)
