"""The operations overview (``services/overview.py``): fleet, today's deliveries, open alerts
and this month's revenue in one small response, for the dashboard."""

from __future__ import annotations

from datetime import date, datetime

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from skyhive.api.operation import VIEWER, operation
from skyhive.api.responses import current_clients, json_response

bp = APIBlueprint(
    "overview", __name__, url_prefix="/api/v1/overview", abp_tags=[Tag(name="dashboard")]
)

MONEY_PATTERN = r"^-?\d+\.\d{2}$"


class FleetFigures(BaseModel):
    """Live drones (Redis) by status, every status listed; a drone flagging an emergency
    counts as `emergency`, one without a status as `unknown`."""

    total: int = Field(ge=0)
    by_status: dict[str, int]


class DeliveriesToday(BaseModel):
    """Deliveries created today, by their current status."""

    day: date
    total: int = Field(ge=0)
    by_status: dict[str, int]
    avg_delivery_s: float | None = Field(
        description="Mean seconds from order to drop of those of today's deliveries that are "
        "delivered; null when none is."
    )


class OpenAlerts(BaseModel):
    """Alerts in state `open` (not acknowledged), by severity."""

    total: int = Field(ge=0)
    by_severity: dict[str, int]
    unacknowledged: int = Field(
        ge=0,
        description="Critical alerts resolved by themselves that nobody has acknowledged yet "
        "(`resolved_unacknowledged`): they need a person too.",
    )


class RevenueThisMonth(BaseModel):
    """Invoiced revenue (before tax) of the deliveries delivered this month, as
    `/api/v1/analytics/revenue?group_by=month` gives it. Invoices are issued once a month has
    ended, so for the running month `unbilled` is what its deliveries so far will add."""

    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    revenue: str = Field(pattern=MONEY_PATTERN, description="Decimal amount.")
    unbilled: str = Field(
        pattern=MONEY_PATTERN,
        description="Final prices (before tax) of this month's delivered deliveries that no "
        "invoice bills yet.",
    )
    unbilled_deliveries: int = Field(ge=0)
    currency: str


class Overview(BaseModel):
    """The operations overview. Today is the UTC day."""

    as_of: datetime
    drones: FleetFigures
    deliveries_today: DeliveriesToday
    open_alerts: OpenAlerts
    revenue_this_month: RevenueThisMonth


@operation(bp.get, "", access=VIEWER, ok=Overview)
def get_overview() -> Response:
    """The operations overview: fleet, today's deliveries, open alerts, revenue, computed by
    the stores at `as_of`."""
    return json_response(current_clients().overview.read())
