"""Deliveries in every end state, made through the real service and repository (the
tracker's own ``delivered_fields``), for the billing, revenue and cache tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from customer_seed import add_customers

from skyhive.bootstrap import bootstrap
from skyhive.domain.deliveries import Delivery, DeliveryRequest, delivered_fields
from skyhive.domain.stations import bart_stations
from skyhive.services.deliveries import DeliveryService
from skyhive.wiring import Clients

STATIONS = {s.code: s for s in bart_stations()}


def world(clients: Clients, *customers: str) -> DeliveryService:
    bootstrap(clients)
    add_customers(clients, *customers)
    return clients.delivery_service


def order(
    svc: DeliveryService,
    customer: str,
    station: str,
    at: datetime,
    kg: float = 1.0,
    size: str = "small",
    km: float = 0.02,
) -> Delivery:
    s = STATIONS[station]
    req = DeliveryRequest.model_validate(
        {
            "customer_id": customer,
            "pickup_station": station,
            "destination": {"lat": s.lat + km, "lon": s.lon},
            "package": {"weight_kg": kg, "size": size},
        }
    )
    delivery, _ = svc.create(req, now=at)
    return delivery


def finish(clients: Clients, delivery: Delivery, end: str, at: datetime) -> str:
    """Take a pending delivery to ``end``: delivered, failed or cancelled."""
    repo, delivery_id = clients.deliveries, delivery.id
    if end == "cancelled":
        repo.transition(delivery_id, "cancelled", at, "test")
        return delivery_id
    repo.transition(delivery_id, "assigned", at, "test", {"drone_id": "d-1"})
    repo.transition(delivery_id, "picked_up", at, "test")
    if end == "delivered":
        repo.transition(delivery_id, "delivered", at, "test", delivered_fields(delivery, at))
    else:
        repo.transition(delivery_id, "failed", at, "test")
    return delivery_id


def delivered(
    clients: Clients, svc: DeliveryService, customer: str, station: str, at: datetime, **kw: Any
) -> str:
    return finish(clients, order(svc, customer, station, at, **kw), "delivered", at)
