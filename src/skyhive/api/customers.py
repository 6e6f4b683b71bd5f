"""Customers: create, list, read, edit, delete; and what each has been billed.

Reads go through the read cache; the repository invalidates on every write. An address
belongs to one customer (409 otherwise); a customer with unpaid invoices cannot be deleted.

Operators read customers (they place orders for them); only admins change them. A customer
key reads only its own revenue (another customer's is a 404, like a missing one).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.adapters.customers_repo import RESOURCE, DuplicateEmail
from skyhive.adapters.mongo import Document
from skyhive.api.auth import own_customer
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.errors import ApiError
from skyhive.api.fields import Items, LimitQuery, PathModel
from skyhive.api.invoices import Money
from skyhive.api.operation import ADMIN, ADMIN_OR_OWN_CUSTOMER, OPERATOR, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.customers import Address, CustomerCreate, CustomerPatch
from skyhive.services.deliveries import to_millisecond

bp = APIBlueprint(
    "customers", __name__, url_prefix="/api/v1/customers", abp_tags=[Tag(name="customers")]
)


class Customer(BaseModel):
    id: str
    name: str
    email: str
    phone: str | None
    address: Address | None
    created_at: datetime
    updated_at: datetime | None


class CustomerRevenue(BaseModel):
    """Totals over the customer's invoices."""

    customer_id: str
    currency: str
    revenue: Money = Field(description="Billed for deliveries, before tax.")
    tax: Money
    billed: Money = Field(description="Invoice totals, tax included.")
    paid: Money
    outstanding: Money
    invoices: int = Field(ge=0)


class CustomerPath(PathModel):
    customer_id: str


class CustomersQuery(LimitQuery):
    email: str | None = Field(
        default=None,
        pattern=r"^\S{1,254}$",
        description="Only the customer with this address (any case).",
    )


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


@operation(bp.post, "", access=ADMIN, ok=Customer, status=201, errors=(409,))
def create_customer(body: CustomerCreate) -> Response:
    """Create a customer; `Location` is its URL. 409 when another customer has the address
    (any case)."""
    now = to_millisecond(current_clients().clock.now())
    doc: Document = {
        "_id": f"cus-{uuid.uuid4().hex[:16]}",
        **body.model_dump(),
        "created_at": now,
        "updated_at": now,
    }
    try:
        current_clients().customers.insert(doc)
    except DuplicateEmail:
        raise _taken(body.email) from None
    headers = {"Location": f"{bp.url_prefix}/{doc['_id']}"}
    return json_response(customer_view(doc), status=201, headers=headers)


@operation(bp.get, "", access=OPERATOR, ok=Items[Customer])
def list_customers(query: CustomersQuery) -> Response:
    """By id; `email` finds the customer with that address (any case)."""

    def view() -> dict[str, Any]:
        docs = current_clients().customers.find(query.email, query.limit)
        return {"items": [customer_view(d) for d in docs], "count": len(docs)}

    return cached_list(RESOURCE, view, query)


@operation(bp.get, "/<customer_id>", access=OPERATOR, ok=Customer, errors=(404,))
def get_customer(path: CustomerPath) -> Response:
    customer_id = path.customer_id

    def view() -> dict[str, Any] | None:
        doc = current_clients().customers.get(customer_id)
        return customer_view(doc) if doc else None

    return cached_document(RESOURCE, customer_id, view, _not_found(customer_id))


@operation(bp.patch, "/<customer_id>", access=ADMIN, ok=Customer, errors=(404, 409))
def patch_customer(path: CustomerPath, body: CustomerPatch) -> Response:
    """Change some fields; absent or null fields keep their values. 400 when nothing is
    to change."""
    customer_id = path.customer_id
    fields = body.model_dump(exclude_none=True)
    if not fields:
        names = ", ".join(CustomerPatch.model_fields)
        raise ApiError(400, f"nothing to change: send at least one of {names}")
    try:
        doc = current_clients().customers.update(
            customer_id, fields, to_millisecond(current_clients().clock.now())
        )
    except DuplicateEmail:
        raise _taken(str(fields["email"])) from None
    if doc is None:
        raise _not_found(customer_id)
    return json_response(customer_view(doc))


@operation(bp.delete, "/<customer_id>", access=ADMIN, ok=None, status=204, errors=(404, 409))
def delete_customer(path: CustomerPath) -> Response:
    """204; 409 while the customer has pending or overdue invoices."""
    customer_id = path.customer_id
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


@operation(
    bp.get,
    "/<customer_id>/revenue",
    access=ADMIN_OR_OWN_CUSTOMER,
    ok=CustomerRevenue,
    errors=(404,),
)
def customer_revenue(path: CustomerPath) -> Response:
    """What the customer has been billed: revenue before tax, tax, total, paid, outstanding.
    A customer key: its own only."""
    customer_id = path.customer_id
    own = own_customer()
    clients = current_clients()
    if (own is not None and customer_id != own) or not clients.customers.exists(customer_id):
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
