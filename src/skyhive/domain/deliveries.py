"""Delivery orders: request validation, the lifecycle, and the price estimate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStatus = Literal[
    "pending", "assigned", "picked_up", "in_transit", "delivered", "failed", "cancelled"
]
PackageSize = Literal["small", "medium", "large"]
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

# What may follow what. "assigned → pending" is a re-dispatch (the drone went silent or
# refused before pickup).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"assigned", "cancelled", "failed"}),
    "assigned": frozenset({"picked_up", "pending", "cancelled", "failed"}),
    "picked_up": frozenset({"in_transit", "delivered", "failed"}),
    "in_transit": frozenset({"delivered", "failed"}),
    "delivered": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
ACTIVE = frozenset({"assigned", "picked_up", "in_transit"})
TERMINAL = frozenset({"delivered", "failed", "cancelled"})


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Package(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    weight_kg: float = Field(gt=0, le=1000)
    size: PackageSize


class DeliveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer_id: str = Field(pattern=ID_PATTERN)
    pickup_station: str = Field(min_length=1, max_length=16)
    destination: Point
    package: Package
    order_id: str | None = Field(default=None, pattern=ID_PATTERN)


class DeliveryRejected(ValueError):
    """A request that is well-formed but cannot be served; ``field`` says which part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_serviceable(
    req: DeliveryRequest,
    station_known: bool,
    distance_km: float | None,
    max_distance_km: float,
    max_payload_kg: float,
) -> None:
    """Business checks beyond the schema: a real station, in range, liftable by the fleet."""
    if not station_known:
        raise DeliveryRejected("pickup_station", f"unknown station {req.pickup_station!r}")
    if distance_km is not None and distance_km > max_distance_km:
        raise DeliveryRejected(
            "destination",
            f"destination is {distance_km:.1f} km from {req.pickup_station}; the service area "
            f"reaches {max_distance_km:g} km from the pickup station",
        )
    if req.package.weight_kg > max_payload_kg:
        raise DeliveryRejected(
            "package.weight_kg",
            f"{req.package.weight_kg:g} kg is over the largest payload the fleet can carry "
            f"({max_payload_kg:g} kg)",
        )


@dataclass(frozen=True, slots=True)
class PriceModel:
    """Estimate = base + per km (pickup → destination) + per kg + size surcharge, to the cent,
    half up. Tax and invoicing come with billing."""

    base: Decimal = Decimal("3.50")
    per_km: Decimal = Decimal("1.20")
    per_kg: Decimal = Decimal("0.40")
    small: Decimal = Decimal("0.00")
    medium: Decimal = Decimal("1.00")
    large: Decimal = Decimal("2.50")

    def estimate(self, distance_km: float, weight_kg: float, size: PackageSize) -> Decimal:
        surcharge = {"small": self.small, "medium": self.medium, "large": self.large}[size]
        km = Decimal(str(round(distance_km, 3)))
        kg = Decimal(str(weight_kg))
        total = self.base + self.per_km * km + self.per_kg * kg + surcharge
        return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
