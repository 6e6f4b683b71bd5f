"""The dispatcher's and the tracker's logic on in-memory ports and a clock the test moves:
assignment, waiting and retrying, the silent-drone policy, drone events and ETAs. The
adapters, and these services on them, are tested against real servers in the integration
tier (test_dispatcher.py and its neighbours)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from memory_deliveries import MemoryLive, MemoryQueue, MemoryRecords
from memory_ports import MemoryBus, Registry, Stations

from manual_clock import ManualClock
from skyhive.domain.commands import DroneEvent, commands_topic
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.fleet import DroneSpec
from skyhive.services.deliveries import DeliveryService
from skyhive.services.dispatcher import Dispatcher
from skyhive.services.tracker import DeliveryTracker
from skyhive.settings import Settings

STATION = Stations().all()["12TH"]


class Customers:
    def exists(self, customer_id: str) -> bool:
        return customer_id == "c1"


@dataclass
class World:
    settings: Settings
    clock: ManualClock
    live: MemoryLive
    queue: MemoryQueue
    records: MemoryRecords
    sent: list[tuple[str, dict[str, object]]]
    dispatcher: Dispatcher
    tracker: DeliveryTracker
    orders: DeliveryService

    def drone(self, drone_id: str, battery: float = 90.0, status: str = "idle") -> None:
        """A drone reporting from the pickup station now."""
        self.live.put(drone_id, STATION.lat, STATION.lon, battery, status, self.clock.now())

    def order(self) -> str:
        req = DeliveryRequest.model_validate(
            {
                "customer_id": "c1",
                "pickup_station": "12TH",
                "destination": {"lat": STATION.lat + 0.02, "lon": STATION.lon + 0.01},
                "package": {"weight_kg": 1.0, "size": "small"},
            }
        )
        return self.orders.create(req)[0].id

    def dispatch(self) -> int:
        """One dispatch pass, its assignments recorded."""
        n = self.dispatcher.dispatch_pending()
        self.dispatcher.recorder.drain()
        return n

    def event(self, delivery_id: str, drone: str, event: str, reason: str | None = None) -> None:
        body = {
            "drone_id": drone,
            "delivery_id": delivery_id,
            "event": event,
            "ts": int(self.clock.now().timestamp() * 1000),
            "reason": reason,
        }
        self.tracker.apply_event(DroneEvent.model_validate(body, strict=False))


@pytest.fixture
def world() -> World:
    settings = Settings()
    clock, bus, live, stations = ManualClock(), MemoryBus(), MemoryLive(), Stations()
    queue = MemoryQueue(bus, live)
    records = MemoryRecords(queue)
    fleet = Registry([DroneSpec(drone_id=d, home_station="12TH") for d in ("d1", "d2")])
    sent: list[tuple[str, dict[str, object]]] = []
    dispatcher = Dispatcher(
        settings,
        queue=queue,
        records=records,
        live=live,
        fleet=fleet,
        stations=stations,
        bus=bus,
        clock=clock,
        publish=lambda topic, payload: sent.append((topic, orjson.loads(payload))),
        consumer="t",
    )
    tracker = DeliveryTracker(
        settings,
        records=records,
        queue=queue,
        live=live,
        grounding=queue.grounding,
        fleet=fleet,
        stations=stations,
        bus=bus,
        clock=clock,
        consumer="t",
    )
    orders = DeliveryService(
        settings,
        records=records,
        stations=stations,
        fleet=fleet,
        customers=Customers(),
        live=live,
        bus=bus,
        clock=clock,
    )
    return World(settings, clock, live, queue, records, sent, dispatcher, tracker, orders)


def test_the_able_drone_is_assigned_commanded_and_recorded(world: World) -> None:
    world.drone("d1", battery=5.0)
    world.drone("d2", battery=90.0)
    did = world.order()
    assert world.dispatch() == 1
    assert world.queue.claims == {"d2": did}
    [(topic, cmd)] = world.sent
    assert topic == commands_topic("d2") and cmd["type"] == "deliver" and cmd["delivery_id"] == did
    d = world.records.get(did)
    assert d is not None and d.status == "assigned" and d.drone_id == "d2"
    assert d.return_station and d.eta is not None and d.eta > d.created_at
    assert d.dispatch is not None and d.dispatch["candidates_considered"] == 2
    assert world.queue.journaled == {}


def test_a_waiting_delivery_says_why_and_is_tried_again_a_second_later(world: World) -> None:
    world.drone("d1", battery=5.0)
    did = world.order()
    assert world.dispatch() == 0
    d = world.records.get(did)
    assert d is not None and d.status == "pending" and "1 battery too low" in str(d.waiting_reason)
    world.drone("d1", battery=90.0)
    assert world.dispatch() == 0  # not looked at again within the second
    world.clock.advance(1.0)
    assert world.dispatch() == 1


def test_one_drone_is_never_given_two_deliveries(world: World) -> None:
    world.drone("d1")
    first, second = world.order(), world.order()
    assert world.dispatch() == 1
    assert world.queue.claims == {"d1": first}
    d = world.records.get(second)
    assert d is not None and d.status == "pending" and "already assigned" in str(d.waiting_reason)


def assigned(world: World) -> str:
    world.drone("d1")
    did = world.order()
    assert world.dispatch() == 1
    return did


def test_a_drone_silent_before_pickup_gives_the_delivery_back(world: World) -> None:
    did = assigned(world)
    limit = world.settings.dispatch_silent_assigned_s
    world.clock.advance(limit - 1)
    world.tracker.monitor()
    assert world.records.get(did).status == "assigned"  # type: ignore[union-attr]
    world.clock.advance(2)
    world.tracker.monitor()
    d = world.records.get(did)
    assert d is not None and d.status == "pending" and d.drone_id is None
    assert "silent" in d.timeline[-1].note and world.queue.claims == {}


def test_a_drone_silent_with_the_package_fails_the_delivery(world: World) -> None:
    did = assigned(world)
    world.event(did, "d1", "picked_up")
    world.clock.advance(world.settings.dispatch_silent_loaded_s - 1)
    world.tracker.monitor()
    assert world.records.get(did).status == "picked_up"  # type: ignore[union-attr]
    world.clock.advance(2)
    world.tracker.monitor()
    assert world.records.get(did).status == "failed"  # type: ignore[union-attr]


@pytest.mark.parametrize("picked_up", [False, True])
def test_a_silent_drone_off_its_corridor_is_judged_by_the_status_it_left(
    world: World, picked_up: bool
) -> None:
    did = assigned(world)
    if picked_up:
        world.event(did, "d1", "picked_up")
    world.records.transition(did, "non_conforming", world.clock.now(), "d1 conformance: lateral")
    world.clock.advance(world.settings.dispatch_silent_loaded_s + 1)
    world.tracker.monitor()
    d = world.records.get(did)
    assert d is not None
    if picked_up:
        assert d.status == "failed" and "package on board" in str(d.timeline[-1].note)
    else:  # the package is still at the station: another drone takes it
        assert d.status == "pending" and d.drone_id is None
        assert "before pickup" in str(d.timeline[-1].note)


def test_a_drone_in_flight_with_the_package_is_in_transit_with_an_eta(world: World) -> None:
    did = assigned(world)
    world.event(did, "d1", "picked_up")
    world.drone("d1", status="in_flight")
    world.tracker.monitor()
    d = world.records.get(did)
    assert d is not None and d.status == "in_transit" and d.eta is not None
    eta = d.eta
    world.clock.advance(3)  # the same position 3 s later: an ETA 3 s later is not written
    world.drone("d1", status="in_flight")
    world.tracker.monitor()
    assert world.records.get(did).eta == eta  # type: ignore[union-attr]
    world.clock.advance(10)
    world.drone("d1", status="in_flight")
    world.tracker.monitor()
    later = world.records.get(did).eta  # type: ignore[union-attr]
    assert later is not None and later - eta > timedelta(seconds=5)


def test_a_drop_reported_before_the_pickup_delivers_and_fixes_the_price(world: World) -> None:
    did = assigned(world)
    world.clock.advance(60)
    world.event(did, "d1", "delivered")
    d = world.records.get(did)
    assert d is not None and [t.status for t in d.timeline][-2:] == ["picked_up", "delivered"]
    assert d.price_final == d.price_estimate and isinstance(d.price_final, Decimal)
    assert d.delivered_month == world.clock.now().strftime("%Y-%m")
    assert d.delivery_s == pytest.approx(60.0)
    assert world.queue.claims == {} and world.queue.active() == []


def test_events_from_a_drone_that_does_not_hold_the_delivery_are_ignored(world: World) -> None:
    did = assigned(world)
    world.event(did, "d2", "delivered")
    assert world.records.get(did).status == "assigned"  # type: ignore[union-attr]


def test_a_failure_before_pickup_redispatches_after_pickup_fails(world: World) -> None:
    did = assigned(world)
    world.event(did, "d1", "failed", "low battery")
    d = world.records.get(did)
    assert d is not None and d.status == "pending" and d.drone_id is None
    assert "low battery" in d.timeline[-1].note and world.queue.claims == {}
    world.clock.advance(1.0)
    assert world.dispatch() == 1
    world.event(did, "d1", "picked_up")
    world.event(did, "d1", "failed", "motor fault")
    assert world.records.get(did).status == "failed"  # type: ignore[union-attr]
