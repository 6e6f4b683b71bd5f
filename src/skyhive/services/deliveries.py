"""Delivery orders as the API sees them: create (idempotent by order id), read, cancel, track."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from skyhive.adapters.deliveries_repo import TransitionRefused
from skyhive.adapters.money import money_text
from skyhive.domain.commands import return_command
from skyhive.domain.deliveries import (
    ACTIVE,
    DeliveryRejected,
    DeliveryRequest,
    check_serviceable,
)
from skyhive.domain.dispatch import DEFAULT_CRUISE_MPS, eta_seconds, remaining_km
from skyhive.domain.geo import haversine_m, point_lat_lon
from skyhive.wiring import Clients


def utc_now() -> datetime:
    """Now, to the millisecond: what MongoDB stores, so a response equals a later read."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class DeliveryNotFound(KeyError):
    pass


def iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def serialize(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's view of a delivery document."""
    lat, lon = point_lat_lon(doc["destination"])
    out = {
        "id": doc["_id"],
        "order_id": doc.get("order_id"),
        "customer_id": doc["customer_id"],
        "pickup_station": doc["pickup_station"],
        "destination": {"lat": lat, "lon": lon},
        "package": doc["package"],
        "status": doc["status"],
        "drone_id": doc.get("drone_id"),
        "return_station": doc.get("return_station"),
        "distance_km": doc.get("distance_km"),
        "price_estimate": money_text(doc.get("price_estimate")),
        "price_final": money_text(doc.get("price_final")),
        "invoice_id": doc.get("invoice_id"),
        "currency": doc.get("currency", "USD"),
        "eta": iso(doc.get("eta")),
        "dispatch": doc.get("dispatch"),
        "waiting_reason": doc.get("waiting_reason"),
        "created_at": iso(doc["created_at"]),
        "updated_at": iso(doc.get("updated_at")),
        "timeline": [
            {"status": t["status"], "at": iso(t["at"]), "note": t.get("note", "")}
            for t in doc.get("timeline", [])
        ],
    }
    if out["dispatch"] and "assigned_at" in out["dispatch"]:
        out["dispatch"] = {**out["dispatch"], "assigned_at": iso(out["dispatch"]["assigned_at"])}
    return out


class DeliveryService:
    def __init__(self, clients: Clients) -> None:
        self._c = clients
        self._s = clients.settings

    def create(
        self, req: DeliveryRequest, now: datetime | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Validate and store a new delivery (status pending, queued for dispatch).

        The same ``order_id`` twice returns the first delivery and ``created=False``.
        Raises :class:`DeliveryRejected` with the field at fault.
        """
        now = now or utc_now()
        station = self._c.stations.get(req.pickup_station)
        dest = req.destination
        distance_km = (
            haversine_m(station.lat, station.lon, dest.lat, dest.lon) / 1000.0 if station else None
        )
        fleet_max = self._c.fleet.max_payload_kg()
        check_serviceable(
            req,
            station is not None,
            distance_km,
            self._s.service_radius_km,
            fleet_max or self._s.max_package_kg,
        )
        assert station is not None and distance_km is not None
        if not self._c.customers.exists(req.customer_id):
            raise DeliveryRejected(
                "customer_id",
                f"unknown customer {req.customer_id!r}; create it first (POST /api/v1/customers)",
            )
        delivery_id = f"ord-{req.order_id}" if req.order_id else f"dlv-{uuid.uuid4().hex[:16]}"
        pricing = self._s.pricing
        price = pricing.delivery_price(distance_km, req.package.weight_kg, req.package.size)
        doc: dict[str, Any] = {
            "_id": delivery_id,
            "order_id": req.order_id,
            "customer_id": req.customer_id,
            "pickup_station": station.code,
            "pickup_location": {"type": "Point", "coordinates": [station.lon, station.lat]},
            "destination": {"type": "Point", "coordinates": [dest.lon, dest.lat]},
            "package": req.package.model_dump(),
            "status": "pending",
            "timeline": [{"status": "pending", "at": now, "note": "order accepted"}],
            "drone_id": None,
            "distance_km": round(distance_km, 3),
            # Before tax; fixed as the final price on delivery (tax is added on the invoice).
            "price_estimate": self._c.money.encode(price),
            "currency": pricing.currency,
            "created_at": now,
            "updated_at": now,
            "version": 0,
        }
        return self._c.deliveries.insert(doc)

    def get(self, delivery_id: str) -> dict[str, Any]:
        doc = self._c.deliveries.get(delivery_id)
        if doc is None:
            raise DeliveryNotFound(delivery_id)
        return doc

    def cancel(self, delivery_id: str, now: datetime | None = None) -> dict[str, Any]:
        """Cancel a pending or assigned delivery; an assigned drone is sent back to a station.

        Raises :class:`TransitionRefused` once the package is picked up.
        """
        now = now or utc_now()
        self.get(delivery_id)
        doc = self._c.deliveries.transition(delivery_id, "cancelled", now, "cancelled by request")
        drone_id = doc.get("drone_id")
        if drone_id and doc.get("return_station"):
            station = self._c.stations.get(str(doc["return_station"]))
            if station is not None:
                cmd = return_command(station, now, f"delivery {delivery_id} cancelled")
                self._c.bus.publish(self._s.commands_stream, [(str(drone_id), orjson.dumps(cmd))])
        return doc

    def track(self, delivery_id: str) -> dict[str, Any]:
        """Where the assigned drone is now and how far it still has to go."""
        doc = self.get(delivery_id)
        out: dict[str, Any] = {
            "id": delivery_id,
            "status": doc["status"],
            "drone_id": doc.get("drone_id"),
        }
        drone_id = doc.get("drone_id")
        state = self._c.live.get(str(drone_id)) if drone_id else None
        out["drone"] = state
        if state is None or state.get("lat") is None or doc["status"] not in ACTIVE:
            out["remaining_km"] = None
            out["eta"] = iso(doc.get("eta"))
            return out
        remaining = remaining_km(
            doc["status"],
            (state["lat"], state["lon"]),
            point_lat_lon(doc["pickup_location"]),
            point_lat_lon(doc["destination"]),
        )
        out["remaining_km"] = round(remaining, 3)
        spec = self._c.fleet.get(str(drone_id))
        speed = spec.cruise_speed_mps if spec else DEFAULT_CRUISE_MPS
        out["eta_seconds"] = round(eta_seconds(remaining, speed), 1)
        return out


__all__ = ["DeliveryNotFound", "DeliveryService", "TransitionRefused", "serialize"]
