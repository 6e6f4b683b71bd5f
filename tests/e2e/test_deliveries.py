"""Deliveries end to end: `skyhive up` plus the simulator; orders through the API; drones fly
them (faster than real time) and every one is delivered."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from e2e.harness import Up, wait_for
from e2e.test_up_redis_cluster import on_cluster
from skyhive.domain.geo import destination_point, haversine_m
from skyhive.domain.stations import bart_stations

pytestmark = pytest.mark.e2e
DRONES, ORDERS = 24, 20


def at(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


@pytest.mark.parametrize("redis", ["embedded", "cluster"])
def test_twenty_deliveries_are_flown_and_delivered(
    tmp_path: Path, redis: str, request: pytest.FixtureRequest
) -> None:
    """On `up`'s own Redis, and on a Redis Cluster of three masters."""
    env = (
        on_cluster(request.getfixturevalue("embedded_redis_cluster"))
        if redis == "cluster"
        else None
    )
    up = Up(tmp_path / "data", env=env)
    up.start()
    sim = up.skyhive(
        "simulate",
        "--drones",
        str(DRONES),
        "--rate",
        "2",
        "--no-autonomous-legs",
        "--time-scale",
        "10",
        "--seed",
        "7",
    )
    try:
        wait_for(lambda: len(up.get("/api/v1/fleet/drones")["items"]) == DRONES, 60, "registry")
        wait_for(lambda: len(up.get("/api/v1/drones")["items"]) == DRONES, 60, "drones live")
        stations = bart_stations()
        customers = []
        for i in range(4):  # an order for an unknown customer is refused
            customer = {"name": f"E2E customer {i}", "email": f"e2e-{i}@example.com"}
            status, body = up.post("/api/v1/customers", customer)
            assert status == 201, body
            customers.append(body["id"])
        ids = []
        for i in range(ORDERS):  # drone i starts at station i: a pickup next to a drone
            s = stations[i]
            lat, lon = destination_point(s.lat, s.lon, (i * 37) % 360, 1500)
            status, body = up.post(
                "/api/v1/deliveries",
                {
                    "customer_id": customers[i % 4],
                    "pickup_station": s.code,
                    "order_id": f"e2e-{i}",
                    "destination": {"lat": lat, "lon": lon},
                    "package": {"weight_kg": 1.0, "size": "small"},
                },
            )
            assert status == 201, body
            ids.append(body["id"])

        def all_delivered() -> bool:
            items = up.get("/api/v1/deliveries?limit=100")["items"]
            return sum(d["status"] == "delivered" for d in items) == ORDERS

        wait_for(all_delivered, 240, "all deliveries delivered")
        deliveries = [up.get(f"/api/v1/deliveries/{i}") for i in ids]

        per_drone: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for d in deliveries:
            steps = [t["status"] for t in d["timeline"]]
            assert steps[0] == "pending" and steps[-1] == "delivered"
            assert steps.index("assigned") < steps.index("picked_up") < steps.index("delivered")
            times = [at(t["at"]) for t in d["timeline"]]
            assert times == sorted(times), d["timeline"]
            assert d["drone_id"] and d["dispatch"]["reason"]
            assert d["price_estimate"] is not None
            assigned = at(next(t["at"] for t in d["timeline"] if t["status"] == "assigned"))
            per_drone[d["drone_id"]].append((assigned, times[-1]))
        for spans in per_drone.values():  # no drone flew two deliveries at once
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert end <= start

        def all_docked() -> bool:
            live = up.get("/api/v1/drones")["items"]
            return all(
                d["status"] in ("idle", "charging")
                and min(haversine_m(d["lat"], d["lon"], s.lat, s.lon) for s in stations) < 50
                for d in live
            )

        wait_for(all_docked, 120, "every drone back at a station")
        # Flown at ten times real time, stamped with simulated time: no position looks like a
        # jump, no drone like a speeder.
        for kind in ("gps_jump", "overspeed"):
            assert up.get(f"/api/v1/alerts?type={kind}")["items"] == [], kind
    finally:
        sim.terminate()
        sim.wait(20)
        up.stop()
