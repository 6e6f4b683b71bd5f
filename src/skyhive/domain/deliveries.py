"""Delivery orders: request validation and the lifecycle (prices: ``domain/pricing.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyhive.domain.conformance import Declaration

DeliveryStatus = Literal[
    "pending",
    "assigned",
    "picked_up",
    "in_transit",
    "non_conforming",
    "contingent",
    "delivered",
    "failed",
    "cancelled",
]
PackageSize = Literal["small", "medium", "large"]
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

# What may follow what. "assigned → pending" is a re-dispatch (the drone went silent or
# refused before pickup). A flight off its declared corridor is ``non_conforming`` until it
# conforms again (back to the status it left: :func:`resumed_status`) or the breach lasts
# and it becomes ``contingent`` (its drone sent to the nearest station); either may still be
# delivered (and billed as such), failed or cancelled (domain/conformance.py), or go back to
# ``pending`` when its drone is given up before the pickup (:func:`loaded`).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"assigned", "cancelled", "failed"}),
    "assigned": frozenset({"picked_up", "pending", "cancelled", "failed", "non_conforming"}),
    "picked_up": frozenset({"in_transit", "delivered", "failed", "non_conforming"}),
    "in_transit": frozenset({"delivered", "failed", "non_conforming"}),
    "non_conforming": frozenset(
        {
            "assigned",
            "picked_up",
            "in_transit",
            "contingent",
            "pending",
            "delivered",
            "failed",
            "cancelled",
        }
    ),
    "contingent": frozenset({"pending", "delivered", "failed", "cancelled"}),
    "delivered": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
FLYING = ("assigned", "picked_up", "in_transit")  # the lifecycle of a conforming flight
OFF_CORRIDOR = frozenset({"non_conforming", "contingent"})  # a flight in breach
ACTIVE = frozenset({*FLYING, *OFF_CORRIDOR})
TERMINAL = frozenset({"delivered", "failed", "cancelled"})


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def loaded(statuses: list[str]) -> bool:
    """Whether the package is on board, by the statuses the timeline (oldest first) went
    through: a flight off its corridor is judged by the status it left."""
    return resumed_status(statuses) != "assigned"


def resumed_status(statuses: list[str]) -> str:
    """Where a ``non_conforming`` delivery goes back to when it conforms again: the last
    status of a conforming flight its timeline (``statuses``, oldest first) went through."""
    return next((s for s in reversed(statuses) if s in FLYING), "assigned")


class TransitionRefused(Exception):
    """The lifecycle does not allow the change (``current`` is ``"busy"`` when every retry
    of an optimistic write lost to a concurrent one)."""

    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"a {current} delivery cannot become {wanted}")
        self.current = current
        self.wanted = wanted


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


class TimelineEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: DeliveryStatus
    at: datetime
    note: str = ""


class Delivery(BaseModel):
    """A delivery order and what has been recorded of it since, as every layer sees it:
    amounts as Decimal and places as points, whatever the store keeps (the record adapter
    maps its documents to and from this)."""

    model_config = ConfigDict(frozen=True)

    id: str
    order_id: str | None = None
    customer_id: str
    pickup_station: str
    pickup_location: Point
    destination: Point
    package: Package
    status: DeliveryStatus
    timeline: list[TimelineEntry] = Field(default_factory=list)
    drone_id: str | None = None
    return_station: str | None = None  # where the drone goes after the drop-off
    distance_km: float | None = None
    price_estimate: Decimal | None = None  # before tax, quoted at the order
    price_final: Decimal | None = None  # the price billed, fixed on delivery
    currency: str = "USD"
    eta: datetime | None = None
    dispatch: dict[str, Any] | None = None  # how the drone was chosen
    declaration: Declaration | None = None  # the declared flight, once assigned
    waiting_reason: str | None = None  # why a pending delivery has no drone yet
    invoice_id: str | None = None
    delivered_at: datetime | None = None
    delivered_month: str | None = None  # YYYY-MM, the billing period
    delivery_s: float | None = None  # order to drop
    created_at: datetime
    updated_at: datetime | None = None
    version: int = 0  # bumped by every transition (optimistic concurrency)


@dataclass(frozen=True, slots=True)
class Flight:
    """What watching an active delivery needs of its record (not its timeline)."""

    id: str
    status: str
    drone_id: str | None
    pickup: Point
    destination: Point
    eta: datetime | None
    updated_at: datetime  # of the last transition
    return_station: str | None = None
    declared: bool = False  # its flight is declared (domain/conformance.py)


def delivered_fields(delivery: Delivery, at: datetime) -> dict[str, Any]:
    """What a delivery records when it is delivered: the price quoted at the order becomes
    the price billed, and the month it is billed in. ``delivery_s`` (order to drop) is kept
    as a number so an aggregation can average it: the embedded server cannot subtract a
    ``$set`` date."""
    return {
        "price_final": delivery.price_estimate,
        "delivered_at": at,
        "delivery_s": (at - delivery.created_at).total_seconds(),
        "delivered_month": at.strftime("%Y-%m"),
        "eta": None,
    }


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
