"""Delivery orders: request validation and the lifecycle (prices: ``domain/pricing.py``)."""

from __future__ import annotations

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
