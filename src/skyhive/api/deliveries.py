"""Delivery orders: create (idempotent by ``order_id``), list, read, track, cancel.

The rules live in :class:`DeliveryService`; this blueprint maps its outcomes to HTTP
(a rejected order is 422 naming the field, a refused transition 409).
"""

from __future__ import annotations

from typing import Any, get_args

from flask import Blueprint, Response

from skyhive.adapters.deliveries_repo import RESOURCE
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.errors import ApiError, error_response
from skyhive.api.params import (
    choice_param,
    drone_id_param,
    json_body,
    limit_param,
    pattern_param,
)
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.deliveries import ID_PATTERN, DeliveryRejected, DeliveryRequest, DeliveryStatus
from skyhive.services.deliveries import (
    DeliveryNotFound,
    DeliveryService,
    TransitionRefused,
    serialize,
)

bp = Blueprint("deliveries", __name__, url_prefix="/api/v1/deliveries")

DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


def _service() -> DeliveryService:
    return DeliveryService(current_clients())


@bp.errorhandler(DeliveryNotFound)
def _not_found(exc: DeliveryNotFound) -> Response:
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


@bp.post("")
def create_delivery() -> Response:
    """201 with a new delivery; 200 with the existing one when ``order_id`` was used before."""
    req = json_body(DeliveryRequest)
    doc, created = _service().create(req)
    if not created and doc["customer_id"] != req.customer_id:
        # Order ids are global: never hand one customer's delivery to another.
        raise ApiError(409, "order_id is already used by another customer", "order_id")
    headers = {"Location": f"{bp.url_prefix}/{doc['_id']}"}
    return json_response(serialize(doc), status=201 if created else 200, headers=headers)


@bp.get("")
def list_deliveries() -> Response:
    """Newest first."""
    status = choice_param("status", DELIVERY_STATUSES)
    customer_id = pattern_param("customer_id", ID_PATTERN)
    drone_id = drone_id_param()
    limit = limit_param()

    def view() -> dict[str, Any]:
        docs = current_clients().deliveries.find(status, customer_id, drone_id, limit)
        return {"items": [serialize(d) for d in docs], "count": len(docs)}

    return cached_list(RESOURCE, view)


@bp.get("/<delivery_id>")
def get_delivery(delivery_id: str) -> Response:
    def view() -> dict[str, Any] | None:
        doc = current_clients().deliveries.get(delivery_id)
        return serialize(doc) if doc else None

    not_found = ApiError(404, f"delivery {delivery_id[:80]!r} not found", "delivery_id")
    return cached_document(RESOURCE, delivery_id, view, not_found)


@bp.get("/<delivery_id>/track")
def track_delivery(delivery_id: str) -> Response:
    return json_response(_service().track(delivery_id))


@bp.post("/<delivery_id>/cancel")
def cancel_delivery(delivery_id: str) -> Response:
    """Pending or assigned only; an assigned drone is sent back to a station."""
    return json_response(serialize(_service().cancel(delivery_id)))
