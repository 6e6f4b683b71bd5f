"""Dispatch decisions: the energy model, eligibility and scoring, edge cases included."""

from __future__ import annotations

import pytest

from skyhive.domain.dispatch import (
    Candidate,
    DispatchPolicy,
    Trip,
    energy_needed_pct,
    eta_seconds,
    judge,
    rank,
    remaining_km,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m

POLICY = DispatchPolicy(reserve_pct=20.0)
TRIP = Trip(to_pickup_km=1.0, pickup_to_destination_km=3.0, destination_to_station_km=1.0)


def spec(drone_id: str = "d1", **changes: object) -> DroneSpec:
    return DroneSpec(drone_id=drone_id, home_station="12TH", **changes)  # type: ignore[arg-type]


def cand(
    battery: float = 90.0, status: str | None = "idle", km: float = 1.0, **kw: object
) -> Candidate:
    return Candidate(spec(**kw), battery, status, km)


def test_energy_model_is_distance_times_consumption_plus_reserve() -> None:
    s = spec(consumption_wh_per_km=10.0, battery_capacity_wh=500.0)  # 2 % per km
    assert s.pct_per_km == pytest.approx(2.0)
    assert energy_needed_pct(s, TRIP, POLICY) == pytest.approx(5 * 2.0 + 20.0)


def test_exactly_at_the_reserve_is_eligible_just_below_is_not() -> None:
    needed = energy_needed_pct(spec(), TRIP, POLICY)
    assert judge(cand(battery=needed), TRIP, 1.0, POLICY).eligible
    below = judge(cand(battery=needed - 0.01), TRIP, 1.0, POLICY)
    assert not below.eligible and below.reason.startswith("battery")


def test_package_exactly_at_payload_limit_is_eligible() -> None:
    assert judge(cand(max_payload_kg=2.5), TRIP, 2.5, POLICY).eligible
    over = judge(cand(max_payload_kg=2.5), TRIP, 2.51, POLICY)
    assert not over.eligible and "payload" in over.reason


@pytest.mark.parametrize("status", ["in_flight", "returning", "emergency", None])
def test_only_idle_or_charging_drones_are_candidates(status: str | None) -> None:
    assert not judge(cand(status=status), TRIP, 1.0, POLICY).eligible
    assert judge(cand(status="charging"), TRIP, 1.0, POLICY).eligible


def test_claimed_and_non_active_drones_are_not_eligible() -> None:
    assert judge(cand(), TRIP, 1.0, POLICY, claimed=True).reason == "already assigned to a delivery"
    maintenance = Candidate(spec(status="maintenance"), 90, "idle", 1.0)
    assert judge(maintenance, TRIP, 1.0, POLICY).reason == "registry status maintenance"


def test_nearer_drone_wins_unless_it_would_land_nearly_empty() -> None:
    near = judge(Candidate(spec("near"), 60, "idle", 0.5), Trip(0.5, 3, 1), 1.0, POLICY)
    far = judge(Candidate(spec("far"), 60, "idle", 3.0), Trip(3.0, 3, 1), 1.0, POLICY)
    assert [v.drone_id for v in rank([far, near])] == ["near", "far"]
    # A drone 200 m nearer but with far less spare battery loses.
    nearly_empty = judge(Candidate(spec("low"), 34, "idle", 0.3), Trip(0.3, 3, 1), 1.0, POLICY)
    full = judge(Candidate(spec("full"), 100, "idle", 0.5), Trip(0.5, 3, 1), 1.0, POLICY)
    assert nearly_empty.eligible and rank([nearly_empty, full])[0].drone_id == "full"


def test_no_drone_or_all_busy_ranks_nothing() -> None:
    assert rank([]) == []
    busy = [judge(cand(status="in_flight"), TRIP, 1.0, POLICY) for _ in range(3)]
    assert rank(busy) == []


def test_ties_are_broken_by_drone_id() -> None:
    a = judge(Candidate(spec("b"), 80, "idle", 1.0), TRIP, 1.0, POLICY)
    b = judge(Candidate(spec("a"), 80, "idle", 1.0), TRIP, 1.0, POLICY)
    assert [v.drone_id for v in rank([a, b])] == ["a", "b"]


def test_eta_from_distance_and_cruise_speed() -> None:
    assert eta_seconds(3.0, 15.0) == pytest.approx(200.0)


def test_remaining_distance_goes_via_the_pickup_until_the_package_is_on_board() -> None:
    here, pickup, dest = (37.80, -122.27), (37.81, -122.27), (37.83, -122.27)
    to_pickup, leg = haversine_m(*here, *pickup) / 1000, haversine_m(*pickup, *dest) / 1000
    assert remaining_km("assigned", here, pickup, dest) == pytest.approx(to_pickup + leg)
    for status in ("picked_up", "in_transit"):
        direct = haversine_m(*here, *dest) / 1000
        assert remaining_km(status, here, pickup, dest) == pytest.approx(direct)


def test_the_promised_eta_counts_the_stops_and_not_a_flight_to_a_pickup_it_is_on() -> None:
    from skyhive.domain.dispatch import HANDLING_S, STOP_S, promised_eta_seconds

    # 3 km to the pickup and a 6 km leg at 15 m/s: 600 s of cruise, two stops.
    assert promised_eta_seconds(3.0, 6.0, 15.0) == 600.0 + 2 * STOP_S + HANDLING_S
    # Docked at the pickup (50 m off its pad): one stop.
    assert promised_eta_seconds(0.05, 6.0, 15.0) == pytest.approx(6050 / 15 + STOP_S + HANDLING_S)
