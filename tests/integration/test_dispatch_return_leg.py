"""The dispatcher's battery check covers the whole trip: to the pickup, to the destination,
and on to the station the drone returns to (plus the reserve).

A drone that can reach the destination with the reserve to spare but not a station after it
is not given the delivery; with the return leg covered it is, and told which station to
return to. Real embedded Redis, MongoDB and broker; the drone is live through telemetry.
"""

from __future__ import annotations

import delivery_wiring as wire
import pytest
from dispatch_world import PICKUP, STATIONS, DroneRadio, World, command_publisher

from polling import wait_for
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.wiring import Clients

pytestmark = pytest.mark.mqtt  # the drones and the dispatcher talk over the broker

# South-west of 12TH, out over the estuary: 5 km from the pickup, and the nearest station
# (where the drone must return) is several km further on.
DEST = (PICKUP.lat - 0.045, PICKUP.lon - 0.01)


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(*a, *b) / 1000.0


@pytest.fixture
def world(clients: Clients) -> World:
    return World(clients)


def test_a_drone_that_could_not_get_back_from_the_destination_is_not_sent(
    world: World, clients: Clients
) -> None:
    spec = DroneSpec(drone_id="ret-1", home_station="12TH")
    reserve = clients.settings.dispatch_reserve_pct
    leg_km = km((PICKUP.lat, PICKUP.lon), DEST)
    back = min(STATIONS.values(), key=lambda s: km(DEST, (s.lat, s.lon)))
    back_km = km(DEST, (back.lat, back.lon))
    assert back_km > 3.0 and back.code != PICKUP.code  # the return leg matters here
    out_pct = leg_km * spec.pct_per_km + reserve  # there, with the reserve left
    needed_pct = (leg_km + back_km) * spec.pct_per_km + reserve  # and back
    margin = back_km * spec.pct_per_km / 2  # half the return leg's share

    world.register("ret-1")
    world.fly("ret-1", PICKUP.lat, PICKUP.lon, out_pct + margin, "idle")
    did = world.order(*DEST)
    radio = DroneRadio(clients.settings, ["ret-1"])
    try:
        with command_publisher(clients.settings) as publish:
            d = wire.dispatcher(clients, publish, "ret")
            d.setup()
            assert d.dispatch_pending(retry_all=True) == 0
            d.recorder.drain()
            doc = world.svc.get(did)
            assert doc is not None and doc.status == "pending"
            assert doc.drone_id is None
            reason = doc.waiting_reason
            assert "1 battery too low" in reason, reason
            assert clients.dispatch_queue.claimed(["ret-1"]) == {}

            # Charged enough for the return leg too: sent, and told where to return.
            world.fly("ret-1", PICKUP.lat, PICKUP.lon, needed_pct + margin, "idle")
            assert d.dispatch_pending(retry_all=True) == 1
            d.recorder.drain()
            wait_for(lambda: bool(radio.commands("ret-1")), "the deliver command at the drone")
        doc = world.svc.get(did)
        assert doc is not None and doc.status == "assigned" and doc.drone_id == "ret-1"
        assert doc.return_station == back.code
        assert doc.dispatch["needed_pct"] == pytest.approx(needed_pct, abs=0.2)
        [cmd] = radio.commands("ret-1")
        assert cmd["type"] == "deliver" and cmd["delivery_id"] == did
        assert cmd["return_station"]["station"] == back.code, cmd
    finally:
        radio.close()
