"""Revenue analytics over the invoices (MongoDB aggregation pipelines): by month, by pickup
station, and the top customers. Revenue is what was billed for deliveries, before tax.
Admins only: it is every customer's billing."""

from __future__ import annotations

from typing import Literal, get_args

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from skyhive.api.fields import QueryModel
from skyhive.api.invoices import Money
from skyhive.api.operation import ADMIN, operation
from skyhive.api.responses import current_clients, json_response

bp = APIBlueprint(
    "revenue", __name__, url_prefix="/api/v1/analytics", abp_tags=[Tag(name="analytics")]
)

Group = Literal["month", "station"]
GROUPS: tuple[str, ...] = get_args(Group)
TOP_DEFAULT = 10
TOP_MAX = 100


def _absent(schema: JsonDict) -> None:
    """A field left out of the answer when it does not apply (never ``null``)."""
    schema.pop("default", None)


class RevenueQuery(QueryModel):
    group_by: Group = Field(description="Group by the month delivered or the pickup station.")


class TopCustomersQuery(QueryModel):
    limit: int = Field(
        default=TOP_DEFAULT, ge=1, le=TOP_MAX, description=f"At most this many (1-{TOP_MAX})."
    )


class RevenueGroup(BaseModel):
    """One group: `month` (YYYY-MM) or `station` (code), as grouped."""

    month: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent)
    station: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent)
    revenue: Money
    invoices: int = Field(ge=0, description="Invoices with a line in the group.")
    items: int = Field(ge=0, description="Invoice lines in the group.")


class RevenueGroups(BaseModel):
    """Revenue before tax, per group, in key order."""

    group_by: Group
    currency: str
    items: list[RevenueGroup]
    count: int = Field(ge=0, description="Length of `items`.")


class TopCustomer(BaseModel):
    customer_id: str
    name: str | None = Field(description="`null` once the customer is deleted.")
    revenue: Money
    invoices: int = Field(ge=0)


class TopCustomers(BaseModel):
    """Most revenue (before tax) first."""

    currency: str
    items: list[TopCustomer]
    count: int = Field(ge=0, description="Length of `items`.")


@operation(bp.get, "/revenue", access=ADMIN, ok=RevenueGroups)
def revenue_by(query: RevenueQuery) -> Response:
    """Revenue by month delivered or by pickup station."""
    clients = current_clients()
    rows = clients.invoices.revenue_by(query.group_by)
    items = [{**r, "revenue": str(r["revenue"])} for r in rows]
    body = {
        "group_by": query.group_by,
        "currency": clients.settings.pricing.currency,
        "items": items,
        "count": len(items),
    }
    return json_response(body)


@operation(bp.get, "/top-customers", access=ADMIN, ok=TopCustomers)
def top_customers(query: TopCustomersQuery) -> Response:
    """The customers with the most revenue, with each one's name (`null` once deleted)."""
    clients = current_clients()
    rows = clients.invoices.top_customers(query.limit)
    names = clients.customers.names([str(r["customer_id"]) for r in rows])
    items = [
        {**r, "name": names.get(str(r["customer_id"])), "revenue": str(r["revenue"])} for r in rows
    ]
    body = {"currency": clients.settings.pricing.currency, "items": items, "count": len(items)}
    return json_response(body)
