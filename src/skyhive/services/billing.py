"""Billing: invoices per customer per month, overdue marking, payments.

A run for a period is idempotent and safe to repeat or to run twice at once:
1. repair: deliveries that an invoice of the period bills but that do not say so yet (a run
   that died between writing its invoices and marking their deliveries) are marked now;
2. the period's delivered, unbilled deliveries are grouped by customer, one invoice each,
   with an id derived from customer and period (a second run finds it and adds nothing);
3. the deliveries are marked with their invoice, only where none is marked, so a delivery is
   billed exactly once.
Only ``delivered`` deliveries are billed (failed and cancelled never), by the month they were
delivered, and only once that month has ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from skyhive.domain.billing import (
    BillableDelivery,
    BillingError,
    Period,
    build_invoice,
)
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_billing import DeliveryBilling
from skyhive.ports.invoices import InvoiceStore
from skyhive.ports.money import Money
from skyhive.settings import Settings

log = logging.getLogger(__name__)

# The scheduled run bills a month this long after it ended: a delivery reported in its last
# second is recorded by then.
SETTLE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class BillingRun:
    period: str
    invoices_created: int
    deliveries_billed: int
    repaired: int
    customers: int


def billable_delivery(doc: dict[str, Any], price: Decimal | None) -> BillableDelivery:
    """``doc`` as billing reads it, with its ``price_final`` decoded (``price``)."""
    if price is None:
        raise BillingError(f"delivery {doc['_id']} was delivered without a final price")
    package = doc.get("package") or {}
    return BillableDelivery(
        delivery_id=str(doc["_id"]),
        pickup_station=str(doc["pickup_station"]),
        delivered_month=str(doc["delivered_month"]),
        price=price,
        description=(
            f"Delivery {doc['_id']} from {doc['pickup_station']}, "
            f"{doc.get('distance_km', 0):g} km, {package.get('weight_kg', 0):g} kg "
            f"{package.get('size', '')}".rstrip()
        ),
    )


class BillingService:
    def __init__(
        self,
        settings: Settings,
        *,
        deliveries: DeliveryBilling,
        invoices: InvoiceStore,
        money: Money,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._deliveries = deliveries
        self._invoices = invoices
        self._money = money
        self._clock = clock

    def run(self, period: Period, now: datetime | None = None) -> BillingRun:
        """Bill ``period``; raises :class:`BillingError` if it has not ended. With nothing
        left to bill this is one indexed query."""
        now = now or self._clock.now()
        period.check_closed(now)
        deliveries, invoices = self._deliveries, self._invoices
        unbilled = deliveries.billable(period.label)
        if not unbilled:
            return BillingRun(period.label, 0, 0, 0, 0)
        # Repair: an invoice lists the delivery, the delivery does not name it (a run that
        # died between its two writes).
        listed = {
            d: inv for inv, ds in invoices.billed_deliveries(period.label).items() for d in ds
        }
        repair: dict[str, list[str]] = {}
        by_customer: dict[str, list[BillableDelivery]] = {}
        for doc in unbilled:
            if (inv_id := listed.get(str(doc["_id"]))) is not None:
                repair.setdefault(inv_id, []).append(str(doc["_id"]))
            else:
                line = billable_delivery(doc, self._money.decode(doc.get("price_final")))
                by_customer.setdefault(str(doc["customer_id"]), []).append(line)
        repaired = deliveries.mark_billed(repair)
        pricing = self._s.pricing
        built = [
            build_invoice(cust, period, ds, pricing.tax_rate, now, self._s.invoice_due_days)
            for cust, ds in sorted(by_customer.items())
        ]
        created = invoices.insert_new(built, pricing.currency)
        # Mark by what the stored invoices bill: one that existed already (made by a
        # concurrent run) keeps its own lines.
        stored = invoices.billed_deliveries(period.label, [b.id for b in built])
        billed = deliveries.mark_billed({b.id: stored.get(b.id, []) for b in built})
        for inv in built:
            late = {line.delivery_id for line in inv.items} - set(stored.get(inv.id, []))
            if late:  # delivered in the period but recorded after its invoice was made
                log.warning("%s already issued; not billed: %s", inv.id, sorted(late))
        return BillingRun(period.label, len(created), billed, repaired, len(by_customer))

    def mark_overdue(self, now: datetime | None = None) -> int:
        return len(self._invoices.mark_overdue(now or self._clock.now()))

    def pay(
        self, invoice_id: str, payment: dict[str, Any], now: datetime | None = None
    ) -> dict[str, Any] | None:
        """Record a payment in full; None if there is no such invoice. Raises
        :class:`AlreadyPaid`, or :class:`BillingError` for an amount other than the total."""
        now = now or self._clock.now()
        invoice = self._invoices.get(invoice_id)
        if invoice is None:
            return None
        total = self._money.decode(invoice["total_amount"])
        assert total is not None
        amount = payment.get("amount")
        if amount is not None and amount != total:
            raise BillingError(f"the payment must be the invoice total, {total}; got {amount}")
        record = {**payment, "amount": self._money.encode(total), "at": now}
        return self._invoices.pay(invoice_id, record, now)

    def scheduled(self, now: datetime | None = None) -> None:
        """What ``skyhive up`` runs periodically: bill the last month once it has settled,
        and mark overdue invoices. Both are idempotent."""
        now = now or self._clock.now()
        last = Period.of(now - SETTLE).previous()
        result = self.run(last, now)
        if result.invoices_created or result.repaired:
            log.info("billing %s: %s", last.label, result)
        overdue = self.mark_overdue(now)
        if overdue:
            log.info("%d invoices are now overdue", overdue)
