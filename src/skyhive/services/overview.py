"""The operations overview: one read of the figures a dispatcher watches all day, computed
by the stores (Redis live state, MongoDB aggregations) instead of from a page of records.

"Today" is the UTC day. The delivery figures count deliveries *created* today, by their
current status; the average delivery time is order to drop (``delivery_s``, recorded when a
delivery is delivered) over those of them that are delivered. Revenue is the invoiced
revenue (before tax) of the deliveries delivered this month, from the revenue analytics;
invoices are issued once a month has ended, so for the running month ``unbilled`` says what
its deliveries so far will add (their final prices, before tax).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, get_args

from skyhive.domain.alert_config import Severity
from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED
from skyhive.domain.deliveries import DeliveryStatus
from skyhive.domain.telemetry import DroneStatus
from skyhive.ports.alert_store import AlertStore
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_billing import DeliveryBilling
from skyhive.ports.fleet_snapshot import FleetSnapshot
from skyhive.ports.money import Money
from skyhive.ports.revenue import RevenueReport

DRONE_STATUSES: tuple[str, ...] = get_args(DroneStatus)
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
SEVERITIES: tuple[str, ...] = get_args(Severity)
UNKNOWN = "unknown"  # a drone that has not reported a status


def drones_by_status(states: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Every status, zero included; an emergency flag counts as ``emergency`` whatever the
    reported status (as the map draws it)."""
    counts = dict.fromkeys((*DRONE_STATUSES, UNKNOWN), 0)
    for s in states:
        status = "emergency" if s.get("emergency") else s.get("status")
        counts[status if status in counts else UNKNOWN] += 1
    return counts


@dataclass(frozen=True)
class OverviewReader:
    live: FleetSnapshot
    deliveries: DeliveryBilling
    alerts: AlertStore
    invoices: RevenueReport
    money: Money
    clock: Clock
    currency: str

    def read(self) -> dict[str, Any]:
        now = self.clock.now()
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        month = now.strftime("%Y-%m")

        drones = drones_by_status(self.live.all())
        created = self.deliveries.created_by_status(day, day + timedelta(days=1))
        delivered = created.get("delivered", {})
        alerts = self.alerts.count_by_severity("open")
        unacknowledged = sum(self.alerts.count_by_severity(UNACKNOWLEDGED).values())
        unbilled, unbilled_n = self.deliveries.unbilled_value(month)
        revenue = next(
            (r["revenue"] for r in self.invoices.revenue_by("month") if r["month"] == month),
            None,
        )
        return {
            "as_of": now,
            "drones": {"total": sum(drones.values()), "by_status": drones},
            "deliveries_today": {
                "day": day.date().isoformat(),
                "total": sum(g["count"] for g in created.values()),
                "by_status": {s: created.get(s, {}).get("count", 0) for s in DELIVERY_STATUSES},
                "avg_delivery_s": delivered.get("avg_delivery_s"),
            },
            "open_alerts": {
                "total": sum(alerts.values()),
                "by_severity": {s: alerts.get(s, 0) for s in SEVERITIES},
                "unacknowledged": unacknowledged,
            },
            "revenue_this_month": {
                "month": month,
                "revenue": str(revenue) if revenue is not None else "0.00",
                "unbilled": str(self.money.decode(unbilled) or Decimal("0.00")),
                "unbilled_deliveries": unbilled_n,
                "currency": self.currency,
            },
        }
