"""Invoices: list, read, pay. They are made by the billing run (``skyhive billing run``, and
on a schedule in ``skyhive up``), never through the API. Reads go through the read cache."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field

from skyhive.adapters.invoices_repo import RESOURCE
from skyhive.adapters.money import money_text
from skyhive.adapters.mongo import Document
from skyhive.api.cached import cached_document, cached_list
from skyhive.api.errors import ApiError
from skyhive.api.params import choice_param, json_body, limit_param, pattern_param
from skyhive.api.responses import current_clients, json_response
from skyhive.domain.billing import InvoiceStatus
from skyhive.domain.deliveries import ID_PATTERN
from skyhive.services.billing import AlreadyPaid, BillingError, BillingService

bp = Blueprint("invoices", __name__, url_prefix="/api/v1/invoices")

INVOICE_STATUSES: tuple[str, ...] = get_args(InvoiceStatus)


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: str | None = Field(default=None, pattern=r"^\d{1,12}(\.\d{1,2})?$")
    method: str | None = Field(default=None, min_length=1, max_length=40)
    reference: str | None = Field(default=None, min_length=1, max_length=120)


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


@bp.get("")
def list_invoices() -> Response:
    """Newest first."""
    customer_id = pattern_param("customer_id", ID_PATTERN)
    status = choice_param("status", INVOICE_STATUSES)
    limit = limit_param()

    def view() -> dict[str, Any]:
        docs = current_clients().invoices.find(customer_id, status, limit)
        return {"items": [invoice_view(d) for d in docs], "count": len(docs)}

    return cached_list(RESOURCE, view)


@bp.get("/<invoice_id>")
def get_invoice(invoice_id: str) -> Response:
    def view() -> dict[str, Any] | None:
        doc = current_clients().invoices.get(invoice_id)
        return invoice_view(doc) if doc else None

    return cached_document(RESOURCE, invoice_id, view, _not_found(invoice_id))


@bp.post("/<invoice_id>/pay")
def pay_invoice(invoice_id: str) -> Response:
    """Record the payment of the whole invoice; the body (amount, method, reference) is
    optional. 409 if it is paid already."""
    req = json_body(PaymentRequest) if request.content_length else PaymentRequest()
    payment: dict[str, Any] = {
        "amount": Decimal(req.amount) if req.amount is not None else None,
        "method": req.method,
        "reference": req.reference,
    }
    try:
        doc = BillingService(current_clients()).pay(invoice_id, payment)
    except AlreadyPaid:
        raise ApiError(409, f"invoice {invoice_id!r} is paid already") from None
    except BillingError as exc:
        raise ApiError(422, str(exc), "amount") from None
    if doc is None:
        raise _not_found(invoice_id)
    return json_response(invoice_view(doc))
