"""The dispatcher against the real embedded MongoDB and Redis.

Drones are made "live" through the real processor path (telemetry → live state), commands are
captured by the publish callback the dispatcher is given (MQTT itself is covered end to end).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import delivery_wiring as wire
import orjson
import pytest
from customer_seed import add_customers

from skyhive.adapters.live_state import drone_key
from skyhive.bootstrap import bootstrap
from skyhive.domain.deliveries import DeliveryRequest
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.stations import bart_stations
from skyhive.services.deliveries import DeliveryService
from skyhive.services.dispatcher import Dispatcher
from skyhive.services.ingest import RawMessage
from skyhive.services.tracker import DeliveryTracker
from skyhive.wiring import Clients
from skyhive.workers.processor import build_processor

STATION = next(s for s in bart_stations() if s.code == "12TH")


class Sent:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, object]]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.items.append((topic, orjson.loads(payload)))


@pytest.fixture
def world(clients: Clients) -> tuple[Clients, Dispatcher, Sent, DeliveryService]:
    bootstrap(clients)
    add_customers(clients, "c1")
    sent = Sent()
    d = wire.dispatcher(clients, sent, "t")
    d.setup()
    return clients, d, sent, clients.delivery_service


_seq = [0]


def tracker(clients: Clients, **settings: object) -> DeliveryTracker:
    t = wire.tracker(clients, "t", clients.settings.model_copy(update=settings))
    t.setup()
    return t


def dispatch(d: Dispatcher, retry_all: bool = False) -> int:
    """One dispatch pass, then its assignments recorded in MongoDB (which the dispatcher
    leaves to its recorder thread)."""
    n = d.dispatch_pending(retry_all=retry_all)
    d.recorder.drain()
    return n


def fly(clients: Clients, drone: str, lat: float, lon: float, battery: float, status: str) -> None:
    """Report telemetry through the real ingest + processor path."""
    _seq[0] += 1
    body = {
        "drone_id": drone,
        "seq": _seq[0],
        "ts": int(time.time() * 1000),
        "lat": lat,
        "lon": lon,
        "battery_pct": battery,
        "status": status,
    }
    clients.ingest.submit([RawMessage(orjson.dumps(body), "test")])
    p = build_processor(clients, "t")
    p.setup()
    while p.poll():
        pass


def register(clients: Clients, drone: str, **kw: object) -> None:
    clients.fleet.register(DroneSpec(drone_id=drone, home_station="12TH", **kw))  # type: ignore[arg-type]


def order(svc: DeliveryService, order_id: str | None = None, kg: float = 1.0) -> str:
    req = DeliveryRequest.model_validate(
        {
            "customer_id": "c1",
            "pickup_station": "12TH",
            "order_id": order_id,
            "destination": {"lat": STATION.lat + 0.02, "lon": STATION.lon + 0.01},
            "package": {"weight_kg": kg, "size": "small"},
        }
    )
    doc, _ = svc.create(req)
    return str(doc.id)


def test_assigns_the_best_eligible_drone_and_commands_it(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, sent, svc = world
    register(clients, "near-low")  # near but too little battery
    register(clients, "far-ok")
    register(clients, "heavy-no", max_payload_kg=0.5)
    fly(clients, "near-low", STATION.lat, STATION.lon, 25, "idle")
    fly(clients, "far-ok", STATION.lat + 0.01, STATION.lon, 90, "charging")
    fly(clients, "heavy-no", STATION.lat, STATION.lon + 0.001, 95, "idle")
    did = order(svc)
    assert dispatch(d) == 1
    doc = svc.get(did)
    assert doc.status == "assigned" and doc.drone_id == "far-ok"
    assert "km to pickup" in doc.dispatch["reason"] and doc.return_station
    # Dates written by updates read back as dates (the embedded server stores them as text).
    assert isinstance(doc.eta, datetime) and doc.eta > doc.created_at
    # The ETA as promised at assignment stays with the dispatch (the on-time rate's yardstick).
    promised = datetime.fromisoformat(doc.dispatch["eta"])
    assert abs(promised - doc.eta) < timedelta(milliseconds=1)  # stored to the ms
    assert isinstance(doc.updated_at, datetime) and doc.updated_at.tzinfo is not None
    [(topic, cmd)] = sent.items
    assert topic == "skyhive/drones/far-ok/commands"
    assert cmd["type"] == "deliver" and cmd["delivery_id"] == did
    assert cmd["payload_kg"] == 1.0  # the package's weight, so the drone reports it
    assert cmd["pickup"]["station"] == "12TH"  # type: ignore[index]
    assert clients.redis_text.hget(clients.dispatch_queue.keys.status, did) == "assigned"


def test_waits_with_a_reason_then_dispatches_when_a_drone_becomes_eligible(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "busy")
    fly(clients, "busy", STATION.lat, STATION.lon, 90, "in_flight")
    did = order(svc)
    assert dispatch(d) == 0
    assert "flight status in_flight" in svc.get(did).waiting_reason
    fly(clients, "busy", STATION.lat, STATION.lon, 90, "idle")
    assert dispatch(d) == 0  # a waiting delivery is looked at again after a second
    assert dispatch(d, retry_all=True) == 1
    assert svc.get(did).drone_id == "busy"


def test_a_drone_is_never_given_two_deliveries(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, sent, svc = world
    register(clients, "solo")
    fly(clients, "solo", STATION.lat, STATION.lon, 100, "idle")
    first, second = order(svc), order(svc)
    other = wire.dispatcher(clients, sent, "t2")
    other.setup()
    assert dispatch(d) + dispatch(other) == 1
    statuses = sorted(svc.get(x).status for x in (first, second))
    assert statuses == ["assigned", "pending"]


def test_events_drive_the_lifecycle_and_free_the_drone(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    dispatch(d)

    def event(name: str, **extra: object) -> None:
        body = {"delivery_id": did, "event": name, "ts": int(time.time() * 1000), **extra}
        clients.ingest.submit([RawMessage(orjson.dumps(body), "t", "d1", "event")])
        tracker(clients).handle_events()

    event("picked_up")
    # Taking off where it stands: readings stamped by the wall clock may come milliseconds
    # apart, and any move would then be a GPS jump, which grounds the drone.
    fly(clients, "d1", STATION.lat, STATION.lon, 95, "in_flight")
    tracker(clients).monitor()
    assert svc.get(did).status == "in_transit"
    event("delivered")
    event("delivered")  # a duplicate report changes nothing
    doc = svc.get(did)
    assert [t.status for t in doc.timeline] == [
        "pending",
        "assigned",
        "picked_up",
        "in_transit",
        "delivered",
    ]
    assert doc.price_final == doc.price_estimate
    assert clients.dispatch_queue.claimed(["d1"]) == {}


def test_failure_before_pickup_redispatches_after_pickup_fails(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    dispatch(d)
    t = tracker(clients)
    t.apply_event(_ev("d1", did, "failed", reason="busy"))
    assert svc.get(did).status == "pending"
    dispatch(d, retry_all=True)
    t.apply_event(_ev("d1", did, "picked_up"))
    t.apply_event(_ev("d1", did, "failed", reason="motor fault"))
    doc = svc.get(did)
    assert doc.status == "failed" and "motor fault" in doc.timeline[-1].note


def test_silent_drone_before_pickup_is_replaced(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "quiet")
    register(clients, "backup")
    fly(clients, "quiet", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    dispatch(d)
    assert svc.get(did).drone_id == "quiet"
    fly(clients, "backup", STATION.lat, STATION.lon, 100, "idle")
    impatient = tracker(clients, dispatch_silent_assigned_s=0.2)
    clients.redis_text.hset(drone_key("quiet"), "updated_at", "2000-01-01T00:00:00+00:00")
    time.sleep(0.3)
    impatient.monitor()
    assert svc.get(did).status == "pending"
    dispatch(d, retry_all=True)
    assert svc.get(did).drone_id == "backup"


def test_cancel_of_assigned_delivery_recalls_the_drone(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    dispatch(d)
    svc.cancel(did)
    d.relay_commands()
    assert sent.items[-1][0] == "skyhive/drones/d1/commands"
    assert sent.items[-1][1]["type"] == "return_to_station"
    assert clients.dispatch_queue.claimed(["d1"]) == {}


def _ev(drone: str, did: str, name: str, **extra: object):  # type: ignore[no-untyped-def]
    from skyhive.domain.commands import DroneEvent

    return DroneEvent.model_validate(
        {
            "drone_id": drone,
            "delivery_id": did,
            "event": name,
            "ts": datetime.now(UTC).isoformat(),
            **extra,
        }
    )


def test_cancel_racing_the_record_write_recalls_the_drone(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    assert d.dispatch_pending() == 1  # commanded; the MongoDB record is not written yet
    assert sent.items[-1][1]["type"] == "deliver"
    assert svc.get(did).status == "pending"
    svc.cancel(did)  # wins in MongoDB: the record still said pending
    d.recorder.drain()
    assert d.relay_commands() == 1  # the recall goes out through the commands stream
    doc = svc.get(did)
    assert doc.status == "cancelled" and "assigned" not in [t.status for t in doc.timeline]
    assert sent.items[-1][0] == "skyhive/drones/d1/commands"
    assert sent.items[-1][1]["type"] == "return_to_station"
    assert clients.dispatch_queue.claimed(["d1"]) == {}
    assert clients.redis_text.hget(clients.dispatch_queue.keys.status, did) == "cancelled"
    assert clients.dispatch_queue.journal() == {}


def test_assignments_a_crashed_dispatcher_journaled_are_recorded_by_the_next(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    d.dispatch_pending()  # ... and the process dies before its recorder runs
    assert did in clients.dispatch_queue.journal()
    successor = wire.dispatcher(clients, sent, "next")
    successor.setup()
    assert successor.recorder.drain() == 1
    doc = svc.get(did)
    assert doc.status == "assigned" and doc.drone_id == "d1"
    assert doc.dispatch["dispatcher"] == "t" and doc.dispatch["latency_ms"] >= 0
    assert clients.dispatch_queue.journal() == {}
    assert successor.recorder.drain() == 0  # recording twice changes nothing
    assert [t.status for t in svc.get(did).timeline] == ["pending", "assigned"]


def test_a_successor_does_not_reassign_what_a_crashed_dispatcher_commanded(world: tuple) -> None:  # type: ignore[type-arg]
    # Seen under `kill -9` (tests/faults/test_kill_workflows.py): the record still pending,
    # the next dispatcher queued the delivery again at start and gave it a second drone.
    clients, d, sent, svc = world
    for drone in ("d1", "d2"):
        register(clients, drone)
        fly(clients, drone, STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    assert d.dispatch_pending() == 1  # commanded; the process dies before its recorder runs
    assert len(sent.items) == 1
    assert svc.get(did).status == "pending"
    successor = wire.dispatcher(clients, sent, "next")
    successor.setup()
    assert dispatch(successor, retry_all=True) == 0
    doc = svc.get(did)
    assert doc.status == "assigned"
    assert [c["delivery_id"] for _, c in sent.items if c["type"] == "deliver"] == [did]
    drone = doc.drone_id
    assert sent.items[0][0] == f"skyhive/drones/{drone}/commands"
    assert clients.dispatch_queue.claimed(["d1", "d2"]) == {drone: did}
    assert [t.status for t in doc.timeline] == ["pending", "assigned"]


def test_a_drone_assigned_by_a_dispatcher_that_died_before_commanding_it_is_told(
    world: tuple,  # type: ignore[type-arg]
) -> None:
    # Seen under `kill -9`: the assignment was made in Redis, the process died before the
    # command left it, and the drone stayed claimed, idle and untold.
    clients, _d, sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)

    def dies(topic: str, payload: bytes) -> None:
        raise RuntimeError("killed before the command left the process")

    doomed = wire.dispatcher(clients, dies, "doomed")
    doomed.setup()
    with pytest.raises(RuntimeError):
        doomed.dispatch_pending()
    assert clients.dispatch_queue.claimed(["d1"]) == {"d1": did} and sent.items == []
    fast = clients.settings.model_copy(update={"claim_idle_ms": 100})
    successor = wire.dispatcher(clients, sent, "next", fast)
    successor.setup()
    time.sleep(0.2)
    successor.tick()
    assert [(t, c["type"], c["delivery_id"]) for t, c in sent.items] == [
        ("skyhive/drones/d1/commands", "deliver", did)
    ]
    successor.recorder.drain()
    assert svc.get(did).status == "assigned" and svc.get(did).drone_id == "d1"


def test_an_event_before_the_record_is_written_is_not_lost(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    d.dispatch_pending()
    body = {"delivery_id": did, "event": "picked_up", "ts": int(time.time() * 1000)}
    clients.ingest.submit([RawMessage(orjson.dumps(body), "t", "d1", "event")])
    assert tracker(clients).handle_events() == 1
    assert svc.get(did).status == "picked_up"


def test_pending_deliveries_redis_lost_are_requeued_at_start(world: tuple) -> None:  # type: ignore[type-arg]
    clients, _d, sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did = order(svc)
    clients.redis_text.delete(
        *(
            clients.dispatch_queue.keys.pending,
            clients.dispatch_queue.keys.orders,
            clients.dispatch_queue.keys.status,
        )
    )
    fresh = wire.dispatcher(clients, sent, "fresh")
    fresh.setup()
    assert dispatch(fresh) == 1
    assert svc.get(did).drone_id == "d1"


def test_a_queued_delivery_without_its_summary_is_dispatched_from_the_record(world: tuple) -> None:  # type: ignore[type-arg]
    clients, d, _sent, svc = world
    register(clients, "d1")
    fly(clients, "d1", STATION.lat, STATION.lon, 100, "idle")
    did, gone = order(svc), order(svc)
    clients.redis_text.hdel(
        clients.dispatch_queue.keys.orders, did, gone
    )  # queued before summaries existed, say
    svc.cancel(gone)
    clients.redis_text.zadd(
        clients.dispatch_queue.keys.pending, {gone: 0}
    )  # and a stale queue entry for a cancelled one
    assert dispatch(d) == 1
    assert svc.get(did).drone_id == "d1"
    assert (
        orjson.loads(clients.redis_text.hget(clients.dispatch_queue.keys.orders, did))["station"]
        == "12TH"
    )  # type: ignore[arg-type]
    assert gone not in clients.dispatch_queue.pending(10)
