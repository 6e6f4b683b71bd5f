"""Pricing and invoice arithmetic: Decimal, half up to the cent, never negative, and an
invoice's total always the sum of its lines plus the tax on them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhive.domain.billing import (
    BillableDelivery,
    BillingError,
    Period,
    build_invoice,
    invoice_id,
)
from skyhive.domain.pricing import PricingConfig, SizeSurcharges, invoice_totals, to_cents

MONEY = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False)
RATE = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False)
SIZES = st.sampled_from(["small", "medium", "large"])


def test_price_is_base_plus_distance_weight_and_size() -> None:
    p = PricingConfig()
    assert p.delivery_price(0.0, 0.0, "small") == Decimal("3.50")
    # 3.50 + 1.20 * 2.345 + 0.40 * 1.5 + 1.00 = 7.914 → 7.91
    assert p.delivery_price(2.345, 1.5, "medium") == Decimal("7.91")
    # 3.50 + 1.20 * 1 + 0.40 * 0.0375 = 4.715 → 4.72 (half up, not to even)
    assert p.delivery_price(1.0, 0.0375, "small") == Decimal("4.72")
    assert p.delivery_price(0.0, 0.0, "large") == Decimal("6.00")


def test_the_model_is_configurable() -> None:
    p = PricingConfig(
        base_fee=Decimal("2"),
        per_km=Decimal("0.5"),
        per_kg=Decimal("1"),
        size_surcharge=SizeSurcharges(large=Decimal("10")),
        tax_rate=Decimal("0.1"),
    )
    assert p.delivery_price(4.0, 2.0, "large") == Decimal("16.00")
    assert p.tax(Decimal("16.00")) == Decimal("1.60")


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("0.005", "0.01"), ("0.015", "0.02"), ("2.345", "2.35"), ("2.344", "2.34"), ("1", "1.00")],
)
def test_rounding_is_half_up(amount: str, cents: str) -> None:
    assert to_cents(Decimal(amount)) == Decimal(cents)


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        PricingConfig(per_km=Decimal("-1"))
    with pytest.raises(ValueError):
        PricingConfig(tax_rate=Decimal("1.5"))


@given(
    st.floats(min_value=0, max_value=500, allow_nan=False),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    SIZES,
)
def test_a_price_is_cents_and_never_below_the_base_fee(km: float, kg: float, size: str) -> None:
    price = PricingConfig().delivery_price(km, kg, size)  # type: ignore[arg-type]
    assert price == to_cents(price) and price >= Decimal("3.50")


@given(st.lists(MONEY, max_size=60), RATE)
def test_invoice_total_is_the_sum_of_lines_plus_tax(lines: list[Decimal], rate: Decimal) -> None:
    t = invoice_totals(lines, rate)
    assert t.subtotal == sum(lines, Decimal("0"))
    assert t.total == t.subtotal + t.tax
    assert t.tax == to_cents(t.subtotal * rate)
    assert min(t.subtotal, t.tax, t.total) >= 0
    assert all(x == to_cents(x) for x in (t.subtotal, t.tax, t.total))


@given(st.lists(MONEY, min_size=1, max_size=30), RATE)
def test_an_invoice_bills_each_delivery_once_in_a_stable_order(
    prices: list[Decimal], rate: Decimal
) -> None:
    deliveries = [
        BillableDelivery(f"dlv-{i:03d}", "12TH", "2026-10", p, f"Delivery {i}")
        for i, p in enumerate(prices)
    ]
    issued = datetime(2026, 11, 1, 1, tzinfo=UTC)
    inv = build_invoice("cust-1", Period(2026, 10), deliveries[::-1], rate, issued, 30)
    assert [line.delivery_id for line in inv.items] == [d.delivery_id for d in deliveries]
    assert inv.totals.subtotal == sum((line.total for line in inv.items), Decimal("0"))
    assert inv.totals.total == inv.totals.subtotal + inv.totals.tax >= 0
    assert inv.id == invoice_id("cust-1", Period(2026, 10)) == "inv-2026-10-cust-1"
    assert (inv.due_date - inv.invoice_date).days == 30


def test_periods() -> None:
    p = Period.parse("2026-12")
    assert (p.start, p.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert Period.parse("2026-01").previous() == Period(2025, 12)
    assert Period.of(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)).label == "2026-11"
    for bad in ("2026-13", "2026-1", "26-11", "november"):
        with pytest.raises(BillingError):
            Period.parse(bad)


def test_an_open_period_cannot_be_billed() -> None:
    with pytest.raises(BillingError, match="has not ended"):
        Period(2026, 11).check_closed(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    Period(2026, 11).check_closed(datetime(2026, 12, 1, tzinfo=UTC))
