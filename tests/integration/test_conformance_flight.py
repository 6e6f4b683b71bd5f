"""Conformance to the declared flight against the real embedded MongoDB and Redis: a
dispatched delivery declares its corridor (the tracker), the processor checks readings
against it, a breach makes the delivery ``non_conforming`` with a ``conformance`` alert, a
lasting one ``contingent`` with the drone sent to the nearest station, silence is a breach
too. Readings and the clock start at a fixed time (``dispatch_world.BASE_MS``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import delivery_wiring as wire
import orjson
import pytest
from dispatch_world import BASE_MS, PICKUP, STATIONS, World

from auth_helpers import api_client
from manual_clock import ManualClock
from skyhive.adapters.conformance_store import SWEEP_LOCK
from skyhive.domain.alerts import Alert
from skyhive.domain.deliveries import Delivery
from skyhive.domain.geo import destination_point
from skyhive.services.ingest import RawMessage
from skyhive.services.tracker import DeliveryTracker
from skyhive.wiring import Clients

T0 = datetime.fromtimestamp(BASE_MS / 1000, UTC)
DEST = (PICKUP.lat + 0.02, PICKUP.lon + 0.01)


class Flight:
    """A world whose clock is the readings' (fixed), with one delivery assigned to ``c1``
    and its flight declared."""

    def __init__(self, clients: Clients) -> None:
        self.clock = ManualClock(T0)
        clients.clock = self.clock  # type: ignore[misc]
        self.world = World(clients)
        self.clients = clients
        self.ms = BASE_MS
        self.seq = 0
        self.tracker: DeliveryTracker = wire.tracker(clients, "t")
        self.tracker.setup()
        self.world.register("c1")
        self.at(PICKUP.lat, PICKUP.lon, 0.0, "idle")
        self.id = self.world.order(*DEST)
        d = wire.dispatcher(clients, lambda _topic, _payload: None, "t")
        d.setup()
        d.dispatch_pending(retry_all=True)
        d.recorder.drain()
        self.tracker.monitor()  # declares the flight

    def at(
        self, lat: float, lon: float, alt: float, status: str = "in_flight", dt: float = 1.0
    ) -> None:
        """A reading ``dt`` seconds after the last, the clock moved along."""
        self.seq += 1
        self.ms += int(dt * 1000)
        self.clock.advance(dt)
        self.send(self.seq, self.ms, lat, lon, alt, status)

    def send(self, seq: int, ms: int, lat: float, lon: float, alt: float, status: str) -> None:
        body = {
            "drone_id": "c1", "seq": seq, "ts": ms, "lat": lat, "lon": lon, "alt_m": alt,
            "battery_pct": 90.0, "status": status,
        }  # fmt: skip
        self.clients.ingest.submit([RawMessage(orjson.dumps(body), "test")])
        proc = self.world._proc  # the world's processor, conformance on
        while proc.poll():
            pass

    def delivery(self) -> Delivery:
        return self.world.svc.get(self.id)

    def alert(self) -> Alert | None:
        found = [a for a in self.clients.alerts.list(drone_id="c1") if a.type == "conformance"]
        return found[-1] if found else None


@pytest.fixture
def flight(clients: Clients) -> Flight:
    return Flight(clients)


OFF = destination_point(PICKUP.lat, PICKUP.lon, 270.0, 1_000.0)  # 1 km west of the corridor


def return_commands(clients: Clients) -> list[dict[str, Any]]:
    entries = clients.redis_bytes.xrange(clients.settings.commands_stream)
    cmds = [orjson.loads(fields[b"v"]) for _, fields in entries if fields[b"k"] == b"c1"]
    return [c for c in cmds if c["type"] == "return_to_station"]


def test_a_dispatched_delivery_declares_its_corridor(flight: Flight, clients: Clients) -> None:
    d = flight.delivery()
    assert d.status == "assigned" and d.declaration is not None
    decl = d.declaration
    back = STATIONS[str(d.return_station)]
    assert decl.corridor[0] == (PICKUP.lon, PICKUP.lat)  # the drone, docked at the pickup
    assert decl.corridor[-2:] == [(DEST[1], DEST[0]), (back.lon, back.lat)]
    assert decl.start < T0 < decl.end and d.eta is not None and decl.end > d.eta
    stored = clients.db["deliveries"].find_one({"_id": flight.id})
    assert stored is not None and stored["declaration"]["corridor"]["type"] == "LineString"
    hot = clients.declarations.read(["c1"])["c1"][0]  # the processor's copy
    assert hot.corridor == decl.corridor and hot.delivery_id == flight.id
    assert abs((hot.end - decl.end).total_seconds()) < 0.001  # MongoDB keeps milliseconds
    flight.tracker.monitor()
    assert flight.delivery().declaration == decl  # declared once
    got = api_client(clients, "operator").get(f"/api/v1/deliveries/{flight.id}").json
    assert got["declaration"]["corridor"]["type"] == "LineString"
    assert got["declaration"]["corridor"]["coordinates"][0] == [PICKUP.lon, PICKUP.lat]
    assert got["declaration"]["buffer_m"] == 150.0


def test_off_the_corridor_flags_the_delivery_and_back_on_it_resumes(flight: Flight) -> None:
    flight.at(PICKUP.lat, PICKUP.lon, 60.0)
    assert flight.delivery().status == "assigned" and flight.alert() is None
    flight.at(*OFF, 60.0)
    d = flight.delivery()
    assert d.status == "non_conforming" and "lateral" in d.timeline[-1].note
    alert = flight.alert()
    assert alert is not None and alert.severity == "warning" and alert.state == "open"
    assert alert.details["breach"] == "lateral" and alert.details["off_corridor_m"] > 900
    off_ms = flight.ms
    flight.at(PICKUP.lat, PICKUP.lon, 60.0)
    d = flight.delivery()
    assert d.status == "assigned" and d.timeline[-1].note == "c1 conforms again"
    alert = flight.alert()
    assert alert is not None and alert.state == "resolved"  # a warning resolves to resolved
    # A late reading from before (off the corridor) and a replay change nothing.
    flight.send(999, off_ms - 500, *OFF, 60.0, "in_flight")
    flight.send(flight.seq, flight.ms, *OFF, 60.0, "in_flight")
    assert flight.delivery().status == "assigned"
    assert len(flight.delivery().timeline) == len(d.timeline)


def test_out_of_the_altitude_band_is_a_breach(flight: Flight) -> None:
    flight.at(PICKUP.lat, PICKUP.lon, 400.0)
    alert = flight.alert()
    assert flight.delivery().status == "non_conforming"
    assert alert is not None and alert.details["breach"] == "vertical"


def test_a_lasting_breach_is_contingent_and_sends_the_drone_to_the_nearest_station(
    flight: Flight, clients: Clients
) -> None:
    flight.at(*OFF, 60.0)
    flight.at(*OFF, 60.0, dt=20.0)
    assert flight.delivery().status == "non_conforming" and return_commands(clients) == []
    flight.at(*OFF, 60.0, dt=15.0)  # 35 s off: past the 30 s limit
    d = flight.delivery()
    assert d.status == "contingent" and "sent to the nearest station" in d.timeline[-1].note
    alert = flight.alert()
    assert alert is not None and alert.severity == "critical"
    station = alert.details["station"]
    nearest = min(STATIONS.values(), key=lambda s: (s.lat - OFF[0]) ** 2 + (s.lon - OFF[1]) ** 2)
    assert station == nearest.code
    assert alert.action is not None and alert.action["type"] == "return_to_station"
    [cmd] = return_commands(clients)
    assert cmd["return_station"]["station"] == station and "contingent" in cmd["reason"]
    # Back on the corridor it stays contingent (its drone is on its way to a station), the
    # critical alert gone by itself waits for a person; delivered after all, it bills.
    flight.at(PICKUP.lat, PICKUP.lon, 60.0)
    assert flight.delivery().status == "contingent"
    alert = flight.alert()
    assert alert is not None and alert.state == "resolved_unacknowledged"
    flight.world.report("c1", flight.id, "delivered")
    flight.tracker.handle_events()
    done = flight.delivery()
    assert done.status == "delivered" and done.price_final == done.price_estimate
    assert done.delivered_month == T0.strftime("%Y-%m")


def test_silence_while_active_is_a_breach(flight: Flight, clients: Clients) -> None:
    watch = clients.conformance
    assert watch is not None

    def sweep() -> int:
        clients.redis_text.delete(SWEEP_LOCK)  # held for most of a (real) second
        return watch.sweep(1.0)

    flight.at(PICKUP.lat, PICKUP.lon, 60.0)
    flight.clock.advance(10)
    assert sweep() == 0 and flight.delivery().status == "assigned"
    flight.clock.advance(6)  # 16 s without a reading
    assert sweep() == 1
    assert flight.delivery().status == "non_conforming"
    alert = flight.alert()
    assert alert is not None and alert.details["breach"] == "stale"
    flight.clock.advance(1)
    assert sweep() == 0  # said once, not at every sweep
    flight.at(PICKUP.lat, PICKUP.lon, 60.0)  # heard again, on the corridor
    assert flight.delivery().status == "assigned"


def test_silence_on_the_pad_before_take_off_is_no_breach(flight: Flight, clients: Clients) -> None:
    watch = clients.conformance
    assert watch is not None
    flight.at(PICKUP.lat, PICKUP.lon, 0.0, status="idle")  # assigned, not yet in the air
    flight.clock.advance(60)  # a docked drone reports at its slow pace
    clients.redis_text.delete(SWEEP_LOCK)
    assert watch.sweep(1.0) == 0
    assert flight.delivery().status == "assigned" and flight.alert() is None


def test_a_finished_delivery_drops_its_declaration(flight: Flight, clients: Clients) -> None:
    flight.world.report("c1", flight.id, "delivered")
    flight.tracker.handle_events()
    assert flight.delivery().status == "delivered"
    flight.at(*OFF, 60.0)  # flying home the long way: no longer any concern of the delivery
    assert flight.alert() is None and flight.delivery().status == "delivered"
    assert clients.declarations.read(["c1"]) == {}


def test_a_delivery_ended_while_off_the_corridor_ends_its_alert(flight: Flight) -> None:
    flight.at(*OFF, 60.0)
    alert = flight.alert()
    assert alert is not None and alert.state == "open"
    assert flight.delivery().status == "non_conforming"
    flight.world.report("c1", flight.id, "delivered")  # dropped off on the way, after all
    flight.tracker.handle_events()
    assert flight.delivery().status == "delivered"
    flight.at(*OFF, 60.0)  # its next reading finds the flight over
    alert = flight.alert()
    assert alert is not None and alert.state == "resolved"


def test_a_pickup_reported_while_off_the_corridor_keeps_the_flag(flight: Flight) -> None:
    flight.at(*OFF, 60.0)
    flight.world.report("c1", flight.id, "picked_up")
    flight.tracker.handle_events()
    assert flight.delivery().status == "picked_up"  # the drone's event moved it on
    flight.at(*OFF, 60.0)
    assert flight.delivery().status == "non_conforming"  # still off: flagged again
    flight.at(PICKUP.lat, PICKUP.lon, 60.0)
    assert flight.delivery().status == "picked_up"  # resumes where the timeline left it
