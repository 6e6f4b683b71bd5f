"""Customers: create, list, read, edit, delete; and what each has been billed.

Reads go through the read cache; the repository invalidates on every write. An address
belongs to one customer (409 otherwise); a customer with unpaid invoices cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response

from skyhive.adapters.customers_repo import RESOURCE, DuplicateEmail
from skyhive.adapters.mongo import Document
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.errors import ApiError
from skyhive.api.params import json_body, limit_param, pattern_param
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.customers import CustomerCreate, CustomerPatch
from skyhive.services.deliveries import utc_now

bp = Blueprint("customers", __name__, url_prefix="/api/v1/customers")


def customer_view(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "email": doc["email"],
        "phone": doc.get("phone"),
        "address": doc.get("address"),
        "created_at": doc["created_at"],
        "updated_at": doc.get("updated_at"),
    }


def _not_found(customer_id: str) -> ApiError:
    return ApiError(404, f"customer {customer_id[:80]!r} not found", "customer_id")


def _taken(email: str) -> ApiError:
    return ApiError(409, f"a customer with email {email!r} already exists", "email")


@bp.post("")
def create_customer() -> Response:
    req = json_body(CustomerCreate)
    now = utc_now()
    doc: Document = {
        "_id": f"cus-{uuid.uuid4().hex[:16]}",
        **req.model_dump(),
        "created_at": now,
        "updated_at": now,
    }
    try:
        current_clients().customers.insert(doc)
    except DuplicateEmail:
        raise _taken(req.email) from None
    headers = {"Location": f"{bp.url_prefix}/{doc['_id']}"}
    return json_response(customer_view(doc), status=201, headers=headers)


@bp.get("")
def list_customers() -> Response:
    """By id; ``email`` finds the customer with that address (any case)."""
    email = pattern_param("email", r"^\S{1,254}$")
    limit = limit_param()

    def view() -> dict[str, Any]:
        docs = current_clients().customers.find(email, limit)
        return {"items": [customer_view(d) for d in docs], "count": len(docs)}

    return cached_list(RESOURCE, view)


@bp.get("/<customer_id>")
def get_customer(customer_id: str) -> Response:
    def view() -> dict[str, Any] | None:
        doc = current_clients().customers.get(customer_id)
        return customer_view(doc) if doc else None

    return cached_document(RESOURCE, customer_id, view, _not_found(customer_id))


@bp.patch("/<customer_id>")
def patch_customer(customer_id: str) -> Response:
    """Change some fields; absent or null fields keep their values."""
    fields = json_body(CustomerPatch).model_dump(exclude_none=True)
    if not fields:
        names = ", ".join(CustomerPatch.model_fields)
        raise ApiError(400, f"nothing to change: send at least one of {names}")
    try:
        doc = current_clients().customers.update(customer_id, fields, utc_now())
    except DuplicateEmail:
        raise _taken(str(fields["email"])) from None
    if doc is None:
        raise _not_found(customer_id)
    return json_response(customer_view(doc))


@bp.delete("/<customer_id>")
def delete_customer(customer_id: str) -> Response:
    """204; 409 while the customer has pending or overdue invoices."""
    clients = current_clients()
    if not clients.customers.exists(customer_id):
        raise _not_found(customer_id)
    unpaid = clients.invoices.unpaid_count(customer_id)
    if unpaid:
        raise ApiError(
            409,
            f"customer {customer_id!r} has {unpaid} unpaid invoice(s); "
            "they must be paid before the customer can be deleted",
        )
    clients.customers.delete(customer_id)
    return Response(status=204)


@bp.get("/<customer_id>/revenue")
def customer_revenue(customer_id: str) -> Response:
    """What the customer has been billed: revenue before tax, tax, total, paid, outstanding."""
    clients = current_clients()
    if not clients.customers.exists(customer_id):
        raise _not_found(customer_id)
    totals = clients.invoices.customer_revenue(customer_id)
    amounts = {k: str(v) for k, v in totals.items() if k != "invoices"}
    body = {
        "customer_id": customer_id,
        "currency": clients.settings.pricing.currency,
        **amounts,
        "invoices": totals["invoices"],
    }
    return json_response(body)
