"""Choosing a drone for a delivery: eligibility by payload and an energy model, then a score.

Pure: the dispatcher gathers candidates (live state from Redis, specs from the registry) and
the distances; this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.domain.remote_id import missing_remote_id

DISPATCHABLE_STATUSES = frozenset({"idle", "charging"})


@dataclass(frozen=True, slots=True)
class PendingOrder:
    """What dispatching needs of a pending delivery (it never changes while pending)."""

    station: str  # the pickup station's code
    lat: float  # the destination
    lon: float
    kg: float
    km: float | None  # pickup to destination, as quoted
    accepted_at: float  # epoch seconds: when the API had the order stored


@dataclass(frozen=True, slots=True)
class Trip:
    """Distances a delivery asks of a drone, in km."""

    to_pickup_km: float
    pickup_to_destination_km: float
    destination_to_station_km: float

    @property
    def total_km(self) -> float:
        return self.to_pickup_km + self.pickup_to_destination_km + self.destination_to_station_km


@dataclass(frozen=True, slots=True)
class Candidate:
    spec: DroneSpec
    battery_pct: float
    flight_status: str | None
    to_pickup_km: float


@dataclass(frozen=True, slots=True)
class Verdict:
    drone_id: str
    eligible: bool
    reason: str
    needed_pct: float = 0.0
    score: float = float("inf")


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    reserve_pct: float = 20.0
    # Seconds of time-to-pickup one percentage point of spare battery is worth: prefer the
    # nearer drone, but not one that would land nearly empty.
    seconds_per_spare_pct: float = 6.0
    # SKYHIVE_REMOTE_ID__REQUIRED: only drones with a UAS ID and an operator ID fly.
    require_remote_id: bool = False


def energy_needed_pct(spec: DroneSpec, trip: Trip, policy: DispatchPolicy) -> float:
    """Battery the whole trip takes, plus the reserve that must remain on landing."""
    return trip.total_km * spec.pct_per_km + policy.reserve_pct


def judge(
    c: Candidate, trip: Trip, weight_kg: float, policy: DispatchPolicy, claimed: bool = False
) -> Verdict:
    spec = c.spec
    if spec.status != "active":
        return Verdict(spec.drone_id, False, f"registry status {spec.status}")
    if policy.require_remote_id and (missing := missing_remote_id(spec.uas_id, spec.operator_id)):
        return Verdict(spec.drone_id, False, f"no Remote ID: {missing} not in the registry")
    if claimed:
        return Verdict(spec.drone_id, False, "already assigned to a delivery")
    if c.flight_status not in DISPATCHABLE_STATUSES:
        return Verdict(spec.drone_id, False, f"flight status {c.flight_status or 'unknown'}")
    if weight_kg > spec.max_payload_kg:
        return Verdict(
            spec.drone_id, False, f"payload {weight_kg:g} kg > max {spec.max_payload_kg:g} kg"
        )
    needed = energy_needed_pct(spec, trip, policy)
    if c.battery_pct < needed:
        return Verdict(
            spec.drone_id,
            False,
            f"battery {c.battery_pct:.0f}% < {needed:.1f}% needed "
            f"({trip.total_km:.1f} km + {policy.reserve_pct:g}% reserve)",
            needed,
        )
    time_to_pickup_s = trip.to_pickup_km * 1000.0 / spec.cruise_speed_mps
    spare = c.battery_pct - needed
    score = time_to_pickup_s - policy.seconds_per_spare_pct * spare
    reason = (
        f"{trip.to_pickup_km:.2f} km to pickup ({time_to_pickup_s:.0f} s), "
        f"battery {c.battery_pct:.0f}% vs {needed:.1f}% needed"
    )
    return Verdict(spec.drone_id, True, reason, needed, score)


def rank(verdicts: list[Verdict]) -> list[Verdict]:
    """Eligible verdicts, best (lowest score) first; drone id breaks ties for determinism."""
    return sorted((v for v in verdicts if v.eligible), key=lambda v: (v.score, v.drone_id))


DEFAULT_CRUISE_MPS: float = DroneSpec.model_fields["cruise_speed_mps"].default


LatLon = tuple[float, float]


def remaining_km(status: str, here: LatLon, pickup: LatLon, destination: LatLon) -> float:
    """What a delivery's drone still has to fly: via the pickup until it has the package."""
    if status == "assigned":
        return (haversine_m(*here, *pickup) + haversine_m(*pickup, *destination)) / 1000.0
    return haversine_m(*here, *destination) / 1000.0


def eta_seconds(remaining_km: float, cruise_speed_mps: float) -> float:
    return remaining_km * 1000.0 / cruise_speed_mps


# What the ETA promised at assignment adds to the cruise (the on-time rate's yardstick): at
# each stop a climb to cruise altitude (110 m at 3 m/s) and a descent (at 2 m/s), and the
# handling (loading, the drop). The tracker's later ETAs count only the cruise left.
STOP_S = 95.0
HANDLING_S = 15.0
AT_PICKUP_KM = 0.1  # a drone this close to the pickup is on its pad: no flight to it


def promised_eta_seconds(to_pickup_km: float, leg_km: float, cruise_speed_mps: float) -> float:
    """Assignment to delivery: the flight to the pickup (if any) and the leg, with stops."""
    stops = 1 + (to_pickup_km > AT_PICKUP_KM)
    flying = eta_seconds(to_pickup_km + leg_km, cruise_speed_mps)
    return flying + stops * STOP_S + HANDLING_S
