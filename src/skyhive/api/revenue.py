"""Revenue analytics over the invoices (MongoDB aggregation pipelines): by month, by pickup
station, and the top customers. Revenue is what was billed for deliveries, before tax."""

from __future__ import annotations

from flask import Blueprint, Response

from skyhive.api.errors import ApiError
from skyhive.api.params import choice_param, limit_param
from skyhive.api.responses import current_clients, json_response

bp = Blueprint("revenue", __name__, url_prefix="/api/v1/analytics")

GROUPS = ("month", "station")


@bp.get("/revenue")
def revenue() -> Response:
    group_by = choice_param("group_by", GROUPS)
    if group_by is None:
        raise ApiError(400, "query parameter 'group_by' is required (month or station)", "group_by")
    clients = current_clients()
    rows = clients.invoices.revenue_by(group_by)
    items = [{**r, "revenue": str(r["revenue"])} for r in rows]
    body = {
        "group_by": group_by,
        "currency": clients.settings.pricing.currency,
        "items": items,
        "count": len(items),
    }
    return json_response(body)


@bp.get("/top-customers")
def top_customers() -> Response:
    """Most revenue first, with each customer's name (``null`` once deleted)."""
    limit = limit_param(default=10, maximum=100)
    clients = current_clients()
    rows = clients.invoices.top_customers(limit)
    names = clients.customers.names([str(r["customer_id"]) for r in rows])
    items = [
        {**r, "name": names.get(str(r["customer_id"])), "revenue": str(r["revenue"])} for r in rows
    ]
    body = {"currency": clients.settings.pricing.currency, "items": items, "count": len(items)}
    return json_response(body)
