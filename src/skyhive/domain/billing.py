"""Billing periods and invoices, pure: what an invoice for a customer and a month holds.

An invoice's id is derived from the customer and the period, so billing the same period again
finds the invoice it made before instead of making a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from skyhive.domain.pricing import Totals, invoice_totals, line_total

InvoiceStatus = Literal["pending", "paid", "overdue"]
UNPAID: tuple[InvoiceStatus, ...] = ("pending", "overdue")
PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class BillingError(ValueError):
    pass


class AlreadyPaid(Exception):
    """The invoice is paid already: a payment is recorded once."""


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month in UTC, ``[start, end)``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = PERIOD_RE.fullmatch(text.strip())
        if m is None:
            raise BillingError(f"a billing period is a month, YYYY-MM (e.g. 2026-11), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, at: datetime) -> Period:
        at = at.astimezone(UTC)
        return cls(at.year, at.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def check_closed(self, now: datetime) -> None:
        """Billing an open month would miss what is still to be delivered in it."""
        if now < self.end:
            raise BillingError(
                f"period {self.label} has not ended yet (it ends {self.end:%Y-%m-%d} 00:00 UTC)"
            )


def invoice_id(customer_id: str, period: Period) -> str:
    return f"inv-{period.label}-{customer_id}"


@dataclass(frozen=True, slots=True)
class BillableDelivery:
    delivery_id: str
    pickup_station: str
    delivered_month: str
    price: Decimal
    description: str


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    delivery_id: str
    description: str
    quantity: int
    unit_price: Decimal
    total: Decimal
    station: str  # the pickup station: revenue by station needs no join
    month: str  # the month delivered: revenue by month needs no date arithmetic


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    customer_id: str
    period: str
    invoice_date: datetime
    due_date: datetime
    items: tuple[InvoiceLine, ...]
    totals: Totals


def build_invoice(
    customer_id: str,
    period: Period,
    deliveries: list[BillableDelivery],
    tax_rate: Decimal,
    issued_at: datetime,
    due_days: int,
) -> Invoice:
    """One line per delivery (quantity 1), in delivery-id order so a rebuild is identical."""
    lines = tuple(
        InvoiceLine(
            d.delivery_id,
            d.description,
            1,
            d.price,
            line_total(1, d.price),
            d.pickup_station,
            d.delivered_month,
        )
        for d in sorted(deliveries, key=lambda d: d.delivery_id)
    )
    return Invoice(
        id=invoice_id(customer_id, period),
        customer_id=customer_id,
        period=period.label,
        invoice_date=issued_at,
        due_date=issued_at + timedelta(days=due_days),
        items=lines,
        totals=invoice_totals((line.total for line in lines), tax_rate),
    )
