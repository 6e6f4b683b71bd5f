"""The registry cache against the real embedded MongoDB and Redis."""

from __future__ import annotations

from manual_clock import ManualClock
from skyhive.domain.fleet import DroneSpec
from skyhive.services.spec_cache import SpecCache
from skyhive.wiring import Clients


def test_an_unregistered_drone_is_remembered_as_such_for_a_while(clients: Clients) -> None:
    clock = ManualClock()
    cache = SpecCache(clients.fleet, clock, absent_ttl_s=0.3)
    assert cache.get_many(["late"]) == {}
    clients.fleet.register(DroneSpec(drone_id="late", home_station="12TH"))
    clock.advance(0.29)
    assert cache.get_many(["late"]) == {}  # not read again within the time it is trusted
    clock.advance(0.02)
    assert cache.get_many(["late"])["late"].drone_id == "late"


def test_refresh_loads_drones_registered_since_so_lookups_read_nothing(clients: Clients) -> None:
    cache = SpecCache(clients.fleet, clients.clock)
    clients.fleet.register(DroneSpec(drone_id="new", home_station="12TH", max_payload_kg=4.0))
    cache.refresh()
    clients.db.drones.delete_one({"_id": "new"})  # a lookup now could only come from the cache
    assert cache.get_many(["new"])["new"].max_payload_kg == 4.0
