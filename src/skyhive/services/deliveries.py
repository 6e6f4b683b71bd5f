"""Delivery orders as the API sees them: create (idempotent by order id), read, cancel, track."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from skyhive.domain.commands import return_command
from skyhive.domain.deliveries import (
    ACTIVE,
    Delivery,
    DeliveryRejected,
    DeliveryRequest,
    Point,
    TimelineEntry,
    check_serviceable,
)
from skyhive.domain.dispatch import DEFAULT_CRUISE_MPS, eta_seconds, remaining_km
from skyhive.domain.geo import haversine_m
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.customers import CustomerDirectory
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.ports.live_fleet import LiveFleet
from skyhive.ports.stations import StationLookup
from skyhive.settings import Settings


def to_millisecond(value: datetime) -> datetime:
    """To the millisecond: what MongoDB stores, so a response equals a later read."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class DeliveryNotFound(KeyError):
    pass


def iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


class DeliveryService:
    def __init__(
        self,
        settings: Settings,
        *,
        records: DeliveryRecords,
        stations: StationLookup,
        fleet: DroneSpecs,
        customers: CustomerDirectory,
        live: LiveFleet,
        bus: Bus,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._records = records
        self._stations = stations
        self._fleet = fleet
        self._customers = customers
        self._live = live
        self._bus = bus
        self._clock = clock

    def _now(self) -> datetime:
        return to_millisecond(self._clock.now())

    def create(self, req: DeliveryRequest, now: datetime | None = None) -> tuple[Delivery, bool]:
        """Validate and store a new delivery (status pending, queued for dispatch).

        The same ``order_id`` twice returns the first delivery and ``created=False``.
        Raises :class:`DeliveryRejected` with the field at fault.
        """
        now = now or self._now()
        station = self._stations.get(req.pickup_station)
        dest = req.destination
        distance_km = (
            haversine_m(station.lat, station.lon, dest.lat, dest.lon) / 1000.0 if station else None
        )
        fleet_max = self._fleet.max_payload_kg()
        check_serviceable(
            req,
            station is not None,
            distance_km,
            self._s.service_radius_km,
            fleet_max or self._s.max_package_kg,
        )
        assert station is not None and distance_km is not None
        if not self._customers.exists(req.customer_id):
            raise DeliveryRejected(
                "customer_id",
                f"unknown customer {req.customer_id!r}; create it first (POST /api/v1/customers)",
            )
        delivery_id = f"ord-{req.order_id}" if req.order_id else f"dlv-{uuid.uuid4().hex[:16]}"
        pricing = self._s.pricing
        price = pricing.delivery_price(distance_km, req.package.weight_kg, req.package.size)
        delivery = Delivery(
            id=delivery_id,
            order_id=req.order_id,
            customer_id=req.customer_id,
            pickup_station=station.code,
            pickup_location=Point(lat=station.lat, lon=station.lon),
            destination=dest,
            package=req.package,
            status="pending",
            timeline=[TimelineEntry(status="pending", at=now, note="order accepted")],
            drone_id=None,
            distance_km=round(distance_km, 3),
            # Before tax; fixed as the final price on delivery (tax is added on the invoice).
            price_estimate=price,
            currency=pricing.currency,
            created_at=now,
            updated_at=now,
            version=0,
        )
        return self._records.insert(delivery)

    def get(self, delivery_id: str) -> Delivery:
        delivery = self._records.get(delivery_id)
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        return delivery

    def cancel(self, delivery_id: str, now: datetime | None = None) -> Delivery:
        """Cancel a pending or assigned delivery; an assigned drone is sent back to a station.

        Raises :class:`TransitionRefused` once the package is picked up.
        """
        now = now or self._now()
        self.get(delivery_id)
        delivery = self._records.transition(delivery_id, "cancelled", now, "cancelled by request")
        drone_id = delivery.drone_id
        if drone_id and delivery.return_station:
            station = self._stations.get(delivery.return_station)
            if station is not None:
                cmd = return_command(station, now, f"delivery {delivery_id} cancelled")
                self._bus.publish(self._s.commands_stream, [(drone_id, cmd.to_json())])
        return delivery

    def track(self, delivery_id: str) -> dict[str, Any]:
        """Where the assigned drone is now and how far it still has to go."""
        delivery = self.get(delivery_id)
        drone_id = delivery.drone_id
        out: dict[str, Any] = {"id": delivery_id, "status": delivery.status, "drone_id": drone_id}
        state = self._live.get(drone_id) if drone_id else None
        out["drone"] = state
        if (
            drone_id is None
            or state is None
            or state.get("lat") is None
            or delivery.status not in ACTIVE
        ):
            out["remaining_km"] = None
            out["eta"] = iso(delivery.eta)
            return out
        pickup, dest = delivery.pickup_location, delivery.destination
        remaining = remaining_km(
            delivery.status,
            (state["lat"], state["lon"]),
            (pickup.lat, pickup.lon),
            (dest.lat, dest.lon),
        )
        out["remaining_km"] = round(remaining, 3)
        spec = self._fleet.get(drone_id)
        speed = spec.cruise_speed_mps if spec else DEFAULT_CRUISE_MPS
        out["eta_seconds"] = round(eta_seconds(remaining, speed), 1)
        return out
