"""No alarm forgotten, against the real embedded MongoDB and Redis: a critical alert that
resolves by itself unacknowledged stays ``resolved_unacknowledged`` until a person
acknowledges it (through the API, who and when recorded), and a drone with a critical
grounding alert is kept out of dispatch until a person clears it, the delivery it held going
through the failure policy. Readings are stamped from a fixed base (``dispatch_world``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import delivery_wiring as wire
import pytest
from dispatch_world import BASE_MS, PICKUP, World
from flask.testing import FlaskClient

from auth_helpers import api_client
from skyhive.domain.alert_lifecycle import UNACKNOWLEDGED, AlertUpdate
from skyhive.domain.alert_rules import Finding
from skyhive.domain.alerts import Alert
from skyhive.domain.geo import destination_point
from skyhive.services.dispatcher import Dispatcher
from skyhive.wiring import Clients

DEST = (PICKUP.lat + 0.02, PICKUP.lon + 0.01)
T0 = datetime.fromtimestamp(BASE_MS / 1000, UTC)


@pytest.fixture
def world(clients: Clients) -> World:
    return World(clients)


@pytest.fixture
def operator(clients: Clients) -> FlaskClient:
    return api_client(clients, "operator")


def alert_of(clients: Clients, drone: str, kind: str) -> Alert:
    [alert] = [a for a in clients.alerts.list(drone_id=drone) if a.type == kind]
    return alert


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [a["id"] for a in items]


def test_a_critical_alert_gone_by_itself_waits_for_a_person(
    world: World, operator: FlaskClient
) -> None:
    clients = world.clients
    world.fly("u1", PICKUP.lat, PICKUP.lon, 5, "in_flight")  # low_battery, critical
    world.fly("u1", PICKUP.lat, PICKUP.lon, 60, "charging")  # cleared, nobody looked
    alert = alert_of(clients, "u1", "low_battery")
    assert alert.state == UNACKNOWLEDGED and alert.resolved_by == "auto"
    assert alert.resolved_at is not None and alert.acknowledged_by is None
    world.fly("w1", PICKUP.lat, PICKUP.lon, 20, "in_flight")  # a warning
    world.fly("w1", PICKUP.lat, PICKUP.lon, 60, "charging")
    assert alert_of(clients, "w1", "low_battery").state == "resolved"

    listed = operator.get(f"/api/v1/alerts?state={UNACKNOWLEDGED}").json["items"]
    assert ids(listed) == [alert.id]
    assert operator.get("/api/v1/overview").json["open_alerts"]["unacknowledged"] == 1

    r = operator.post(f"/api/v1/alerts/{alert.id}/ack", json={"note": "charged, fine"})
    assert r.status_code == 200, r.json
    assert r.json["state"] == "resolved" and r.json["resolved_by"] == "auto"
    assert r.json["acknowledged_by"] == "test operator" and r.json["ack_note"] == "charged, fine"
    assert r.json["acknowledged_at"].endswith("Z")
    assert operator.get(f"/api/v1/alerts?state={UNACKNOWLEDGED}").json["items"] == []
    again = operator.post(f"/api/v1/alerts/{alert.id}/ack", json={})
    assert again.status_code == 409 and "resolved" in again.json["error"]["message"]


def test_resolve_on_an_unacknowledged_alert_records_the_person(
    world: World, operator: FlaskClient
) -> None:
    world.fly("u2", PICKUP.lat, PICKUP.lon, 5, "in_flight")
    world.fly("u2", PICKUP.lat, PICKUP.lon, 60, "charging")
    alert = alert_of(world.clients, "u2", "low_battery")
    r = operator.post(f"/api/v1/alerts/{alert.id}/resolve", json={"note": "seen"})
    assert r.status_code == 200 and r.json["state"] == "resolved"
    assert r.json["acknowledged_by"] == "test operator" and r.json["resolved_by"] == "auto"


def test_an_acknowledgement_racing_the_resolution_wins(world: World, operator: FlaskClient) -> None:
    """The batch read the alert as open; a person acknowledged it before its write."""
    clients = world.clients
    world.fly("r1", PICKUP.lat, PICKUP.lon, 5, "in_flight")
    alert = alert_of(clients, "r1", "low_battery")
    assert operator.post(f"/api/v1/alerts/{alert.id}/ack", json={}).status_code == 200
    resolving = AlertUpdate(
        alert.id, "r1", "low_battery", "critical", alert.opened_at, alert.opened_at,
        resolved_at=alert.opened_at, resolved_state=UNACKNOWLEDGED, events=["resolved"],
    )  # fmt: skip
    clients.alerts.apply([resolving])
    stored = alert_of(clients, "r1", "low_battery")
    assert stored.state == "resolved" and stored.acknowledged_by == "test operator"
    # A replay of that batch after a person resolved it changes nothing.
    clients.alerts.apply([resolving])
    assert alert_of(clients, "r1", "low_battery") == stored


def dispatcher(clients: Clients) -> Dispatcher:
    d = wire.dispatcher(clients, lambda _topic, _payload: None, "t")
    d.setup()
    return d


def dispatch(d: Dispatcher) -> None:
    d.dispatch_pending(retry_all=True)
    d.recorder.drain()


def battery_drop(world: World, drone: str, status: str) -> Alert:
    world.fly(drone, PICKUP.lat, PICKUP.lon, 100, status)
    world.fly(drone, PICKUP.lat, PICKUP.lon, 80, status)  # 20 points in a second
    return alert_of(world.clients, drone, "battery_drop")


def test_a_grounded_drone_is_never_dispatched_until_a_person_clears_it(
    world: World, operator: FlaskClient
) -> None:
    clients, d = world.clients, dispatcher(world.clients)
    world.register("g1")
    alert = battery_drop(world, "g1", "idle")
    assert alert.severity == "critical" and alert.grounding
    assert clients.grounding.of_many(["g1"]) == {"g1": [alert.id]}
    assert operator.get("/api/v1/drones/g1").json["grounded_by"] == [alert.id]

    did = world.order(*DEST)
    dispatch(d)
    waiting = world.svc.get(did)
    assert waiting.status == "pending" and "grounded" in str(waiting.waiting_reason)

    operator.post(f"/api/v1/alerts/{alert.id}/ack", json={})  # acknowledged: still grounded
    dispatch(d)
    assert world.svc.get(did).status == "pending"
    assert operator.post(f"/api/v1/alerts/{alert.id}/resolve", json={}).status_code == 200
    assert clients.grounding.of_many(["g1"]) == {}
    assert "grounded_by" not in operator.get("/api/v1/drones/g1").json
    dispatch(d)
    assert world.svc.get(did).drone_id == "g1"


def test_a_delivery_of_a_drone_grounded_on_the_way_goes_through_the_failure_policy(
    world: World,
) -> None:
    clients, d = world.clients, dispatcher(world.clients)
    tracker = wire.tracker(clients, "t")
    tracker.setup()
    world.register("h1")
    world.fly("h1", PICKUP.lat, PICKUP.lon, 100, "idle")
    did = world.order(*DEST)
    dispatch(d)
    assert world.svc.get(did).drone_id == "h1"
    # Before pickup: a GPS jump grounds it, the delivery goes back for another drone.
    lat, lon = destination_point(PICKUP.lat, PICKUP.lon, 0, 5_000)
    world.fly("h1", lat, lon, 100, "in_flight")
    jump = alert_of(clients, "h1", "gps_jump")
    tracker.monitor()
    again = world.svc.get(did)
    assert again.status == "pending" and again.drone_id is None
    assert f"grounded by alert {jump.id} before pickup" in again.timeline[-1].note
    # Loaded: a cell failure grounds the next drone, the delivery fails.
    world.register("h2")
    battery_drop(world, "h2", "idle")
    dispatch(d)
    assert world.svc.get(did).status == "pending"  # h2 is grounded already
    clients.alert_actions.resolve(alert_of(clients, "h2", "battery_drop").id, "ann", None)
    dispatch(d)
    assert world.svc.get(did).drone_id == "h2"
    world.report("h2", did, "picked_up")
    tracker.handle_events()
    world.fly("h2", PICKUP.lat, PICKUP.lon, 60, "in_flight")  # 20 points down: grounded
    tracker.monitor()
    failed = world.svc.get(did)
    assert failed.status == "failed" and "with the package on board" in failed.timeline[-1].note


def test_an_unacknowledged_grounding_alert_keeps_the_drone_grounded(clients: Clients) -> None:
    """``gps_degraded`` (raised by the MAVLink gateway) resolves by itself: critical and
    unacknowledged, it still grounds the drone until a person acknowledges it."""
    engine = clients.alert_engine
    engine.apply([("m1", Finding("gps_degraded", "critical", T0))])
    engine.apply([("m1", Finding("gps_degraded", None, T0 + timedelta(seconds=5)))])
    alert = alert_of(clients, "m1", "gps_degraded")
    assert alert.state == UNACKNOWLEDGED
    assert clients.grounding.of_many(["m1"]) == {"m1": [alert.id]}
    clients.redis_text.delete("grounded")  # lost: rebuilt from MongoDB at a processor's start
    assert engine.rebuild_grounding() == 1
    clients.alert_actions.acknowledge(alert.id, "ann", None)
    assert clients.grounding.of_many(["m1"]) == {}
    assert engine.rebuild_grounding() == 0
