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


def test_refresh_vouches_for_absences_and_picks_up_late_registrations(clients: Clients) -> None:
    clock = ManualClock()
    cache = SpecCache(clients.fleet, clock, absent_ttl_s=0.3)
    assert cache.get_many(["ghost", "later"]) == {}
    clock.advance(1.0)
    cache.refresh()  # both still absent: vouched for, so a lookup reads nothing
    clients.fleet.register(DroneSpec(drone_id="ghost", home_station="12TH"))
    assert cache.get_many(["ghost"]) == {}
    clients.fleet.register(DroneSpec(drone_id="later", home_station="12TH"))
    cache.refresh()  # "later" is registered now: loaded, as is "ghost"
    clients.db.drones.delete_many({"_id": {"$in": ["ghost", "later"]}})
    assert set(cache.get_many(["ghost", "later"])) == {"ghost", "later"}
    clock.advance(0.31)  # without a refresh, absences expire as before
    assert cache.get_many(["nobody"]) == {}
    clock.advance(0.31)
    clients.fleet.register(DroneSpec(drone_id="nobody", home_station="12TH"))
    assert cache.get_many(["nobody"])["nobody"].drone_id == "nobody"
