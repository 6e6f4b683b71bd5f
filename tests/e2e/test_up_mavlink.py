"""MAVLink end to end: `skyhive up` with the gateway listening on UDP, and the simulator
flying its drones as signed MAVLink 2 vehicles. Orders go in through the API; the gateway
turns each `deliver` into a mission upload, the vehicles fly it, and their frames come back as
telemetry until every order is delivered."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from e2e.harness import Up, wait_for
from skyhive.domain.geo import destination_point
from skyhive.domain.stations import bart_stations

pytestmark = pytest.mark.e2e
DRONES, ORDERS = 4, 3
KEY = "ab" * 32


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_signed_mavlink_vehicles_fly_missions_to_delivery(tmp_path: Path) -> None:
    port = free_udp_port()
    up = Up(tmp_path / "data", env={"SKYHIVE_MAVLINK__LISTEN": f"udp:127.0.0.1:{port}"})
    up.start()
    sim = up.skyhive(
        "simulate",
        "--protocol",
        "mavlink",
        "--mavlink-to",
        f"udp:127.0.0.1:{port}",
        "--mavlink-signing-key",
        KEY,
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
        wait_for(lambda: len(up.get("/api/v1/drones")["items"]) == DRONES, 60, "drones live")
        fleet = up.get("/api/v1/fleet/drones")["items"]
        assert all(d["mavlink_sysid"] and d["has_signing_key"] for d in fleet), fleet
        status, customer = up.post(
            "/api/v1/customers", {"name": "MAVLink customer", "email": "mav@example.com"}
        )
        assert status == 201, customer
        stations = bart_stations()
        ids = []
        for i in range(ORDERS):  # drone i starts at station i
            s = stations[i]
            lat, lon = destination_point(s.lat, s.lon, (i * 53) % 360, 1200)
            status, body = up.post(
                "/api/v1/deliveries",
                {
                    "customer_id": customer["id"],
                    "pickup_station": s.code,
                    "order_id": f"mav-{i}",
                    "destination": {"lat": lat, "lon": lon},
                    "package": {"weight_kg": 1.0, "size": "small"},
                },
            )
            assert status == 201, body
            ids.append(body["id"])

        def delivered() -> bool:
            return all(up.get(f"/api/v1/deliveries/{i}")["status"] == "delivered" for i in ids)

        wait_for(delivered, 240, "every order delivered over MAVLink")
        for i in ids:
            timeline = up.get(f"/api/v1/deliveries/{i}")["timeline"]
            notes = " | ".join(t.get("note") or "" for t in timeline)
            assert "MAVLink mission" in notes, notes  # the upload's outcome is on the timeline
        # The readings came through the gateway, none refused.
        dead = up.get("/api/v1/deadletters?limit=100")["items"]
        assert [d for d in dead if "mavlink" in d["source"]] == [], dead
    finally:
        sim.terminate()
        sim.wait(20)
        up.stop()
