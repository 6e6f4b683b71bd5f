"""`skyhive gateway`: MQTT (the device inbox) → the bus."""

from __future__ import annotations

import threading

from skyhive.adapters.mqtt_subscriber import MqttSubscriber
from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.domain.device_access import Service
from skyhive.services.device_credentials import service_login
from skyhive.services.gateway import Gateway
from skyhive.services.ingest import Ingest
from skyhive.settings import Settings
from skyhive.wiring import Clients
from skyhive.workers import runner


def subscriptions(settings: Settings) -> list[str]:
    """The gateway's topic filters: as members of the shared subscription group, if set."""
    topics = [settings.telemetry_topic, settings.events_topic]
    group = settings.gateway_share_group
    return [f"$share/{group}/{t}" for t in topics] if group else topics


def mqtt_gateway(settings: Settings, ingest: Ingest, client_id: str | None = None) -> Gateway:
    """A gateway on its MQTT session: signed in as the gateway service (the login `skyhive
    up` writes), or, without one, under just a name (admitted only by a broker with insecure
    devices)."""
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    login = service_login(settings, Service.gateway)
    inbox = MqttSubscriber(
        host,
        port,
        client_id or settings.gateway_client_id,
        subscriptions(settings),
        login.username if login else settings.gateway_client_id,
        login.password if login else None,
    )
    return Gateway(settings, ingest, inbox)


def worker(clients: Clients) -> runner.Worker:
    gateway = mqtt_gateway(clients.settings, clients.ingest)
    return runner.Worker("gateway", [("gateway", gateway.run)], setup=gateway.connect)


def run_gateway(settings: Settings, stop: threading.Event) -> None:
    runner.run(settings, stop, worker)


def retire_gateway(settings: Settings, client_id: str, stop: threading.Event) -> int:
    """Drain and end the session of gateway ``client_id`` (``Gateway.retire``); returns the
    messages written to the bus."""
    clients = Clients(settings)
    try:
        return mqtt_gateway(settings, clients.ingest, client_id).retire(stop)
    finally:
        clients.close()
