"""Invoices: list, read, pay. They are made by the billing run (``skyhive billing run``, and
on a schedule in ``skyhive up``), never through the API. Reads go through the read cache.

Admins see every invoice; a customer key sees only its own customer's (the list is narrowed
to them, another customer's invoice is a 404 like a missing one). Only admins record payments.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import RawModel
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.invoices_repo import RESOURCE
from skyhive.adapters.money import money_text
from skyhive.adapters.mongo import Document
from skyhive.api.auth import own_customer
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.errors import ApiError
from skyhive.api.fields import Items, Open, PagedQuery, PathModel
from skyhive.api.operation import ADMIN, ADMIN_OR_OWN_CUSTOMER, json_body, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.billing import AlreadyPaid, BillingError, InvoiceStatus
from skyhive.domain.deliveries import ID_PATTERN

bp = APIBlueprint(
    "invoices", __name__, url_prefix="/api/v1/invoices", abp_tags=[Tag(name="invoices")]
)

# What the API shows an amount as (``money_text``): a decimal string, never a float.
Money = Annotated[
    str, Field(pattern=r"^-?\d+\.\d{2}$", description='Decimal amount, e.g. `"7.90"`.')
]


class PaymentRequest(BaseModel):
    """A payment of the whole invoice; every field optional, and so is the body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    amount: str | None = Field(
        default=None,
        pattern=r"^\d{1,12}(\.\d{1,2})?$",
        description="Must be the invoice total when given.",
    )
    method: str | None = Field(default=None, min_length=1, max_length=40)
    reference: str | None = Field(default=None, min_length=1, max_length=120)


class PaymentUpload(RawModel):
    """The optional payment body, read by the view (an empty body is no details)."""

    mimetypes = ["application/json"]


PAYMENT_CONTENT = {"application/json": {"schema": PaymentRequest.model_json_schema()}}


class InvoiceLine(BaseModel):
    delivery_id: str = Field(description="The delivery billed.")
    description: str
    quantity: int = Field(ge=1)
    unit_price: Money
    total: Money
    station: str = Field(description="Pickup station.")
    month: str = Field(description="Month delivered, YYYY-MM.")


class PaymentRecord(Open):
    """The payment as recorded: always the invoice total."""

    amount: Money | None
    method: str | None = None
    reference: str | None = None
    at: datetime | None = None


class Invoice(BaseModel):
    id: str = Field(description="`inv-{period}-{customer_id}`.")
    customer_id: str
    period: str = Field(description="The month billed, YYYY-MM.")
    invoice_date: datetime
    due_date: datetime
    currency: str
    items: list[InvoiceLine]
    subtotal: Money
    tax: Money
    total_amount: Money
    status: InvoiceStatus
    paid_at: datetime | None
    payment: PaymentRecord | None


class InvoicePath(PathModel):
    invoice_id: str


class InvoicesQuery(PagedQuery):
    customer_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Only this customer's invoices (a customer key: only its own anyway).",
    )
    status: InvoiceStatus | None = Field(
        default=None, description="Only invoices in this status (default: all)."
    )


def invoice_view(doc: Document) -> dict[str, Any]:
    payment = doc.get("payment")
    if payment:
        payment = {**payment, "amount": money_text(payment.get("amount"))}
    return {
        "id": doc["_id"],
        "customer_id": doc["customer_id"],
        "period": doc["period"],
        "invoice_date": doc["invoice_date"],
        "due_date": doc["due_date"],
        "currency": doc.get("currency", "USD"),
        "items": [
            {
                "delivery_id": i["delivery_id"],
                "description": i["description"],
                "quantity": i["quantity"],
                "unit_price": money_text(i["unit_price"]),
                "total": money_text(i["total"]),
                "station": i["station"],
                "month": i["month"],
            }
            for i in doc.get("items", [])
        ],
        "subtotal": money_text(doc["subtotal"]),
        "tax": money_text(doc["tax"]),
        "total_amount": money_text(doc["total_amount"]),
        "status": doc["status"],
        "paid_at": doc.get("paid_at"),
        "payment": payment,
    }


def _not_found(invoice_id: str) -> ApiError:
    return ApiError(404, f"invoice {invoice_id[:80]!r} not found", "invoice_id")


@operation(bp.get, "", access=ADMIN_OR_OWN_CUSTOMER, ok=Items[Invoice])
def list_invoices(query: InvoicesQuery) -> Response:
    """Newest first (then by id); `before` pages on. A customer key sees only its own."""
    own = own_customer()
    customer_id = own or query.customer_id
    others = own is not None and query.customer_id not in (None, own)

    def view() -> dict[str, Any]:
        if others:  # a customer key asking for another customer's: it has none
            return {"items": [], "count": 0}
        docs = current_clients().invoices.find(customer_id, query.status, query.limit, query.before)
        return {"items": [invoice_view(d) for d in docs], "count": len(docs)}

    return cached_list(RESOURCE, view, query, forced={"customer_id": own})


@operation(bp.get, "/<invoice_id>", access=ADMIN_OR_OWN_CUSTOMER, ok=Invoice, errors=(404,))
def get_invoice(path: InvoicePath) -> Response:
    """One invoice, with its lines."""
    invoice_id = path.invoice_id

    def view() -> dict[str, Any] | None:
        doc = current_clients().invoices.get(invoice_id)
        return invoice_view(doc) if doc else None

    return cached_document(RESOURCE, invoice_id, view, _not_found(invoice_id), own_customer())


@operation(
    bp.post,
    "/<invoice_id>/pay",
    access=ADMIN,
    ok=Invoice,
    errors=(404, 409, 413, 415, 422),
    request_content=PAYMENT_CONTENT,
    body_required=False,
)
def pay_invoice(path: InvoicePath, raw: PaymentUpload) -> Response:
    """Record the payment of the whole invoice; the body (amount, method, reference) is
    optional. 409 if it is paid already; 422 when `amount` is not the total."""
    invoice_id = path.invoice_id
    req = json_body(PaymentRequest) if request.content_length else PaymentRequest()
    payment: dict[str, Any] = {
        "amount": Decimal(req.amount) if req.amount is not None else None,
        "method": req.method,
        "reference": req.reference,
    }
    try:
        doc = current_clients().billing.pay(invoice_id, payment)
    except AlreadyPaid:
        raise ApiError(409, f"invoice {invoice_id!r} is paid already") from None
    except BillingError as exc:
        raise ApiError(422, str(exc), "amount") from None
    if doc is None:
        raise _not_found(invoice_id)
    return json_response(invoice_view(doc))
