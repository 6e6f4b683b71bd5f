"""The delivery services built on a test's clients, as the workers and the API build them."""

from __future__ import annotations

from typing import TypeVar

from skyhive.services.billing import BillingService
from skyhive.services.deliveries import DeliveryService
from skyhive.services.dispatcher import Dispatcher, Publish
from skyhive.services.tracker import DeliveryTracker
from skyhive.settings import Settings
from skyhive.wiring import Clients

D = TypeVar("D", bound=Dispatcher)


def delivery_service(clients: Clients) -> DeliveryService:
    return DeliveryService(
        clients.settings,
        records=clients.deliveries,
        stations=clients.stations,
        fleet=clients.fleet,
        customers=clients.customers,
        live=clients.live,
        bus=clients.bus,
        clock=clients.clock,
    )


def dispatcher(
    clients: Clients,
    publish: Publish,
    consumer: str,
    settings: Settings | None = None,
    kind: type[D] = Dispatcher,  # type: ignore[assignment]
) -> D:
    """``kind``: a test's subclass of the dispatcher."""
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


def tracker(clients: Clients, consumer: str, settings: Settings | None = None) -> DeliveryTracker:
    return DeliveryTracker(
        settings or clients.settings,
        records=clients.deliveries,
        queue=clients.dispatch_queue,
        live=clients.live,
        fleet=clients.fleet,
        stations=clients.stations,
        bus=clients.bus,
        clock=clients.clock,
        consumer=consumer,
    )


def billing(clients: Clients) -> BillingService:
    return BillingService(
        clients.settings,
        deliveries=clients.delivery_billing,
        invoices=clients.invoices,
        money=clients.money,
        clock=clients.clock,
    )
