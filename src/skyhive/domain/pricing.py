"""What a delivery costs and what an invoice adds up to. Money is :class:`~decimal.Decimal`,
rounded half up to the cent at each step a person would see (a line, a subtotal, the tax),
never a float: a customer must be able to check every figure on an invoice by hand.

Price of a delivery = base fee + per km (pickup station to destination, great-circle)
+ per kg + a surcharge by package size. Tax is charged on an invoice's subtotal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, ConfigDict, Field

from skyhive.domain.deliveries import PackageSize

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half up to the cent (2.345 → 2.35, not banker's 2.34)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


class SizeSurcharges(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    small: Decimal = Field(default=Decimal("0.00"), ge=0)
    medium: Decimal = Field(default=Decimal("1.00"), ge=0)
    large: Decimal = Field(default=Decimal("2.50"), ge=0)


class PricingConfig(BaseModel):
    """The price model (``SKYHIVE_PRICING__*``, e.g. ``SKYHIVE_PRICING__PER_KM=1.35``,
    ``SKYHIVE_PRICING__SIZE_SURCHARGE__LARGE=3``, ``SKYHIVE_PRICING__TAX_RATE=0.0925``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    base_fee: Decimal = Field(default=Decimal("3.50"), ge=0)
    per_km: Decimal = Field(default=Decimal("1.20"), ge=0)
    per_kg: Decimal = Field(default=Decimal("0.40"), ge=0)
    size_surcharge: SizeSurcharges = SizeSurcharges()
    tax_rate: Decimal = Field(default=Decimal("0.0875"), ge=0, le=1)

    def delivery_price(self, distance_km: float, weight_kg: float, size: PackageSize) -> Decimal:
        """Before tax. Distance counts to the metre and weight as given (decimal, not
        binary: ``str`` of the float), so the same order always costs the same."""
        km = Decimal(str(round(distance_km, 3)))
        kg = Decimal(str(weight_kg))
        surcharge: Decimal = getattr(self.size_surcharge, size)
        return to_cents(self.base_fee + self.per_km * km + self.per_kg * kg + surcharge)

    def tax(self, subtotal: Decimal) -> Decimal:
        return to_cents(subtotal * self.tax_rate)


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def line_total(quantity: int, unit_price: Decimal) -> Decimal:
    return to_cents(unit_price * quantity)


def invoice_totals(line_totals: Iterable[Decimal], tax_rate: Decimal) -> Totals:
    """Subtotal = the sum of the lines; tax on the subtotal, rounded once; total = both."""
    subtotal = to_cents(sum(line_totals, Decimal("0")))
    tax = to_cents(subtotal * tax_rate)
    return Totals(subtotal, tax, subtotal + tax)
