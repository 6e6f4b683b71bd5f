"""Delivery orders: create (idempotent by ``order_id``), list, read, track, cancel.

The rules live in :class:`DeliveryService`; this blueprint maps its outcomes to HTTP
(a rejected order is 422 naming the field, a refused transition 409).

Operators order and cancel, the staff read. A customer key orders only for its own customer
(403 naming ``customer_id`` otherwise) and reads only its own deliveries: the list is narrowed
to them, and another customer's delivery is a 404 like a missing one, so ids can't be probed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from skyhive.adapters.delivery_records import RESOURCE
from skyhive.api.auth import own_customer
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.drones import DroneState
from skyhive.api.errors import ApiError, error_response
from skyhive.api.fields import DroneId, Items, PagedQuery, PathModel
from skyhive.api.invoices import Money
from skyhive.api.operation import (
    OPERATOR,
    OPERATOR_OR_OWN_CUSTOMER,
    VIEWER_OR_OWN_CUSTOMER,
    operation,
)
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.conformance import Declaration
from skyhive.domain.deliveries import (
    ID_PATTERN,
    DeliveryRejected,
    DeliveryRequest,
    DeliveryStatus,
    Package,
    Point,
    TransitionRefused,
)
from skyhive.domain.deliveries import Delivery as DeliveryRecord
from skyhive.domain.pricing import to_cents
from skyhive.services.deliveries import DeliveryNotFound, iso

bp = APIBlueprint(
    "deliveries", __name__, url_prefix="/api/v1/deliveries", abp_tags=[Tag(name="deliveries")]
)


def _absent(schema: JsonDict) -> None:
    """A field left out of the answer when it does not apply (never ``null``)."""
    schema.pop("default", None)


class TimelineEntry(BaseModel):
    status: DeliveryStatus
    at: datetime
    note: str


class LineString(BaseModel):
    type: Literal["LineString"]
    coordinates: list[tuple[float, float]] = Field(description="[lon, lat] pairs, GeoJSON's order.")


class FlightDeclaration(BaseModel):
    """The flight the delivery declared at assignment: the corridor from the drone's position
    through the pickup station, the destination and the return station, `buffer_m` either
    side, between `alt_min_m` and `alt_max_m`, from `start` to `end`. A reading off it makes
    the delivery `non_conforming`; a breach that lasts, `contingent`."""

    drone_id: str
    corridor: LineString
    buffer_m: float
    alt_min_m: float
    alt_max_m: float
    start: datetime
    end: datetime
    declared_at: datetime


class Delivery(BaseModel):
    """A delivery order and every status it went through."""

    id: str = Field(description="`ord-{order_id}`, or `dlv-…` without one.")
    order_id: str | None
    customer_id: str
    pickup_station: str = Field(description="Station code.")
    destination: Point
    package: Package
    status: DeliveryStatus
    drone_id: str | None = Field(description="Once assigned.")
    return_station: str | None = Field(description="Where the drone goes after the drop-off.")
    distance_km: float | None = Field(
        description="Great-circle distance, pickup station to destination."
    )
    price_estimate: Money | None = Field(description="Before tax, in `currency`.")
    price_final: Money | None = Field(
        description="The price billed (before tax), fixed on delivery."
    )
    invoice_id: str | None = Field(description="The invoice that bills it, once billed.")
    currency: str = Field(examples=["USD"])
    eta: datetime | None
    dispatch: dict[str, Any] | None = Field(description="How the drone was chosen, once assigned.")
    waiting_reason: str | None = Field(description="Why a pending delivery has no drone yet.")
    declaration: FlightDeclaration | None = Field(description="Its declared flight, once assigned.")
    created_at: datetime
    updated_at: datetime | None
    timeline: list[TimelineEntry] = Field(
        description="Every status the delivery went through, oldest first."
    )


class DeliveryTracking(BaseModel):
    """Where the delivery's drone is and how far it still has to fly."""

    id: str
    status: DeliveryStatus
    drone_id: str | None
    drone: DroneState | None
    remaining_km: float | None = Field(
        description="Flight distance still to go (via the pickup station while assigned); "
        "null unless the delivery is under way and the drone reports a position."
    )
    eta_seconds: float | SkipJsonSchema[None] = Field(
        default=None,
        description="At cruise speed; present when `remaining_km` is.",
        json_schema_extra=_absent,
    )
    eta: datetime | None = Field(
        default=None, description="The stored ETA; present when `remaining_km` is null."
    )


class DeliveryPath(PathModel):
    delivery_id: str


class DeliveriesQuery(PagedQuery):
    status: DeliveryStatus | None = Field(
        default=None, description="Only deliveries in this status (default: all)."
    )
    customer_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Only this customer's deliveries (a customer key: only its own anyway).",
    )
    drone_id: DroneId | None = Field(default=None, description="Only those assigned to this drone.")


def delivery_view(d: DeliveryRecord) -> dict[str, Any]:
    """The API's view of a delivery (:class:`Delivery` is its schema)."""
    out = {
        "id": d.id,
        "order_id": d.order_id,
        "customer_id": d.customer_id,
        "pickup_station": d.pickup_station,
        "destination": {"lat": d.destination.lat, "lon": d.destination.lon},
        "package": d.package.model_dump(),
        "status": d.status,
        "drone_id": d.drone_id,
        "return_station": d.return_station,
        "distance_km": d.distance_km,
        "price_estimate": _money(d.price_estimate),
        "price_final": _money(d.price_final),
        "invoice_id": d.invoice_id,
        "currency": d.currency,
        "eta": iso(d.eta),
        "dispatch": d.dispatch,
        "waiting_reason": d.waiting_reason,
        "declaration": _declaration_view(d.declaration),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "timeline": [{"status": t.status, "at": iso(t.at), "note": t.note} for t in d.timeline],
    }
    if d.dispatch and "assigned_at" in d.dispatch:
        out["dispatch"] = {**d.dispatch, "assigned_at": iso(d.dispatch["assigned_at"])}
    return out


def _declaration_view(d: Declaration | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "drone_id": d.drone_id,
        "corridor": {"type": "LineString", "coordinates": [list(p) for p in d.corridor]},
        "buffer_m": d.buffer_m,
        "alt_min_m": d.alt_min_m,
        "alt_max_m": d.alt_max_m,
        "start": iso(d.start),
        "end": iso(d.end),
        "declared_at": iso(d.declared_at),
    }


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(to_cents(amount))


def _not_found(delivery_id: str) -> ApiError:
    return ApiError(404, f"delivery {delivery_id[:80]!r} not found", "delivery_id")


@bp.errorhandler(DeliveryNotFound)
def _missing(exc: DeliveryNotFound) -> Response:
    return error_response(404, f"delivery {str(exc.args[0])[:80]!r} not found", "delivery_id")


@bp.errorhandler(DeliveryRejected)
def _rejected(exc: DeliveryRejected) -> Response:
    return error_response(422, exc.message, exc.field)


@bp.errorhandler(TransitionRefused)
def _refused(exc: TransitionRefused) -> Response:
    if exc.current == "busy":  # lost every optimistic-concurrency retry
        return error_response(409, "the delivery is being updated concurrently; retry")
    return error_response(
        409, f"the delivery is {exc.current}; a {exc.current} delivery cannot be {exc.wanted}"
    )


@operation(bp.post, "", access=OPERATOR_OR_OWN_CUSTOMER, ok=Delivery, status=201, errors=(409,))
def create_delivery(body: DeliveryRequest) -> Response:
    """Order a delivery: 201 with a new one, pending dispatch (`Location` is its URL); 200
    with the existing one when `order_id` was used before by this customer, 409 when by
    another. 422 when the order cannot be served, with the field at fault: `pickup_station`
    (unknown station), `destination` (outside the service radius of the pickup station),
    `package.weight_kg` (heavier than any active drone can lift), `customer_id` (unknown).
    A customer key orders only for its own customer (403 otherwise)."""
    own = own_customer()
    if own is not None and body.customer_id != own:
        raise ApiError(403, "a customer key may order only for its own customer", "customer_id")
    delivery, created = current_clients().delivery_service.create(body)
    if not created and delivery.customer_id != body.customer_id:
        # Order ids are global: never hand one customer's delivery to another.
        raise ApiError(409, "order_id is already used by another customer", "order_id")
    headers = {"Location": f"{bp.url_prefix}/{delivery.id}"}
    return json_response(delivery_view(delivery), status=201 if created else 200, headers=headers)


@operation(bp.get, "", access=VIEWER_OR_OWN_CUSTOMER, ok=Items[Delivery])
def list_deliveries(query: DeliveriesQuery) -> Response:
    """Newest first (then by id); `before` pages on. A customer key sees only its own."""
    own = own_customer()
    customer_id = own or query.customer_id
    others = own is not None and query.customer_id not in (None, own)

    def view() -> dict[str, Any]:
        if others:  # a customer key asking for another customer's: it has none
            return {"items": [], "count": 0}
        found = current_clients().deliveries.find(
            query.status, customer_id, query.drone_id, query.limit, query.before
        )
        return {"items": [delivery_view(d) for d in found], "count": len(found)}

    return cached_list(RESOURCE, view, query, forced={"customer_id": own})


@operation(bp.get, "/<delivery_id>", access=VIEWER_OR_OWN_CUSTOMER, ok=Delivery, errors=(404,))
def get_delivery(path: DeliveryPath) -> Response:
    """One delivery, with its timeline."""
    delivery_id = path.delivery_id

    def view() -> dict[str, Any] | None:
        delivery = current_clients().deliveries.get(delivery_id)
        return delivery_view(delivery) if delivery else None

    return cached_document(
        RESOURCE, delivery_id, view, _not_found(delivery_id), owner=own_customer()
    )


@operation(
    bp.get,
    "/<delivery_id>/track",
    access=VIEWER_OR_OWN_CUSTOMER,
    ok=DeliveryTracking,
    errors=(404,),
)
def track_delivery(path: DeliveryPath) -> Response:
    """The live position of the delivery's drone and the remaining distance."""
    delivery_id = path.delivery_id
    own = own_customer()
    if own is not None:
        delivery = current_clients().deliveries.get(delivery_id)
        if delivery is None or delivery.customer_id != own:
            raise _not_found(delivery_id)
    return json_response(current_clients().delivery_service.track(delivery_id))


@operation(bp.post, "/<delivery_id>/cancel", access=OPERATOR, ok=Delivery, errors=(404, 409))
def cancel_delivery(path: DeliveryPath) -> Response:
    """Pending or assigned only; an assigned drone is sent back to a station. 409 once the
    package is picked up, or when the delivery is already finished (the message gives its
    current status)."""
    return json_response(delivery_view(current_clients().delivery_service.cancel(path.delivery_id)))
