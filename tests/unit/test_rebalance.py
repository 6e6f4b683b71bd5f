"""The rebalancing plan (``domain/rebalance.py``): spare drones go to the stations whose
forecast exceeds what is docked, nearest donor first, within battery, pad and distance
limits, never a drone that just moved, and every move says why."""

from __future__ import annotations

from skyhive.domain.rebalance import DockedDrone, RebalancePolicy, StationOutlook, plan

POLICY = RebalancePolicy(max_moves=10, max_km=10, min_battery_pct=50, reserve_pct=20, keep=1)


def station(
    code: str, lon: float, forecast: float, *batteries: float, pads: int = 4, incoming: int = 0
) -> StationOutlook:
    docked = tuple(DockedDrone(f"{code}-{i}", b) for i, b in enumerate(batteries))
    return StationOutlook(code, 37.80, lon, pads, forecast, docked, incoming)


def test_spare_drones_go_to_the_busiest_station_from_the_nearest_donor() -> None:
    busy = station("BUSY", -122.270, 3.2, 90)
    near = station("NEAR", -122.280, 0.4, 80, 95, 70)  # ~0.9 km away, 2 spare (keeps 1)
    far = station("FAR", -122.330, 0.0, 99, 99)  # ~5 km
    moves = plan([busy, near, far], POLICY)
    assert [(m.drone_id, m.from_station, m.to_station) for m in moves] == [
        ("NEAR-1", "NEAR", "BUSY"),  # best battery first
        ("NEAR-0", "NEAR", "BUSY"),
        ("FAR-0", "FAR", "BUSY"),
    ]
    assert "BUSY expects 3.2 orders next hour with 1 drones there" in moves[0].reason
    assert "NEAR keeps 2 for 0.4" in moves[0].reason
    assert 0.8 < moves[0].km < 1.0


def test_no_move_without_need_and_a_station_keeps_its_own_forecast() -> None:
    assert plan([station("A", -122.27, 1.0, 90), station("B", -122.28, 2.0, 90, 90)], POLICY) == []
    # B needs its two: it gives none to A even though A's need is bigger.
    assert plan([station("A", -122.27, 5.0), station("B", -122.28, 2.0, 90, 90)], POLICY) == []


def test_limits_battery_distance_pads_moves_and_cooldown() -> None:
    low = station("LOW", -122.28, 0.0, 45, 60)  # 45 % is below min_battery; keeps one
    busy = station("BUSY", -122.27, 2.0)
    assert [m.drone_id for m in plan([busy, low], POLICY)] == ["LOW-1"]
    too_far = station("FAR", -122.50, 0.0, 99, 99)  # ~20 km
    assert plan([busy, too_far], POLICY) == []
    full = station("FULL", -122.27, 6.0, 90, 90, pads=2)
    assert plan([full, station("D", -122.28, 0, 99, 99, 99)], POLICY) == []
    spare = station("D", -122.28, 0, 99, 99, 99, 99)
    capped = RebalancePolicy(max_moves=1, max_km=10, keep=1)
    assert len(plan([station("BUSY", -122.27, 9.0), spare], capped)) == 1
    moves = plan([station("BUSY", -122.27, 2.0), spare], POLICY, cooling={"D-0": 1, "D-1": 1})
    assert [m.drone_id for m in moves] == ["D-2", "D-3"]


def test_drones_already_on_their_way_count_and_the_reserve_bounds_the_hop() -> None:
    coming = station("BUSY", -122.27, 2.0, incoming=2)
    assert plan([coming, station("D", -122.28, 0, 99, 99)], POLICY) == []
    thirsty = RebalancePolicy(max_km=10, min_battery_pct=50, reserve_pct=20, default_pct_per_km=40)
    # ~0.9 km at 40 %/km is 35 %: 60 % lands under the reserve, 99 % does not.
    moves = plan([station("BUSY", -122.27, 1.0), station("D", -122.28, 0, 60, 60, 99)], thirsty)
    assert [m.drone_id for m in moves] == ["D-2"]
