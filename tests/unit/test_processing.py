"""The processor, the alerting engine, the offline watch and people's alert actions, through
in-memory ports: the rules' findings become alerts, stored, announced and remembered, with
no server and no waiting (the clock is the test's)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest
from memory_ports import (
    Announced,
    DeadLetterList,
    MemoryActiveAlerts,
    MemoryAlertStore,
    MemoryBus,
    MemoryFleetState,
    MemoryGrounding,
    NoGeofences,
    Registry,
    Stations,
)

from manual_clock import ManualClock
from skyhive.ports.bus import BusMessage
from skyhive.services.alert_actions import AlertActions, AlertStateConflict
from skyhive.services.alerting import AlertEngine
from skyhive.services.offline_watch import OfflineWatch
from skyhive.services.processor import Processor
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings


@dataclass
class World:
    settings: Settings
    clock: ManualClock
    bus: MemoryBus
    active: MemoryActiveAlerts
    fleet: MemoryFleetState
    store: MemoryAlertStore
    feed: Announced
    dead: DeadLetterList
    engine: AlertEngine
    processor: Processor
    seq: int = 0

    def report(self, drone: str, **reading: object) -> BusMessage:
        """One reading, a second after the previous, straight to the processor."""
        self.seq += 1
        self.clock.advance(1)
        body = {
            "drone_id": drone,
            "seq": self.seq,
            "ts": int(self.clock.now().timestamp() * 1000),
            "battery_pct": 80.0,
            "status": "idle",
            **reading,
        }
        msg = BusMessage(f"{self.seq}-0", drone, orjson.dumps(body))
        self.processor.process([msg])
        return msg

    def changes(self) -> list[tuple[str, str, str]]:
        out = []
        for m in self.bus.streams[self.settings.alerts_stream]:
            e = orjson.loads(m.value)
            out.append((e["drone_id"], e["type"], e["change"]))
        return out


@pytest.fixture
def world() -> World:
    settings = Settings()
    clock = ManualClock()
    bus, active, store, feed, dead = (
        MemoryBus(),
        MemoryActiveAlerts(),
        MemoryAlertStore(),
        Announced(),
        DeadLetterList(),
    )
    fleet = MemoryFleetState(active)
    engine = AlertEngine(
        settings,
        active=active,
        store=store,
        feed=feed,
        bus=bus,
        stations=Stations(),
        grounding=MemoryGrounding(),
        clock=clock,
    )
    processor = Processor(
        settings,
        bus=bus,
        fleet=fleet,
        engine=engine,
        specs=SpecCache(Registry(), clock),
        geofences=NoGeofences(),
        stations=Stations(),
        deadletters=dead,
        clock=clock,
        consumer="t",
    )
    return World(settings, clock, bus, active, fleet, store, feed, dead, engine, processor)


def test_a_finding_opens_an_alert_stored_announced_and_remembered(world: World) -> None:
    world.report("b1", battery_pct=20.0)
    [alert] = world.store.list(drone_id="b1")
    assert (alert.type, alert.severity, alert.state, alert.count) == (
        "low_battery",
        "warning",
        "open",
        1,
    )
    assert world.changes() == [("b1", "low_battery", "opened")]
    announced = orjson.loads(world.feed.events[0])
    assert announced["id"] == alert.id and announced["change"] == "opened"
    assert world.active.get("b1", "low_battery") is not None
    assert world.fleet.live["b1"].battery_pct == 20.0
    world.report("b1", battery_pct=5.0)
    world.report("b1", battery_pct=60.0)
    [alert] = world.store.list(drone_id="b1")
    # Critical when it cleared, nobody acknowledged it: it waits for a person.
    assert alert.state == "resolved_unacknowledged" and alert.resolved_by == "auto"
    assert alert.count == 2
    assert world.changes()[1:] == [
        ("b1", "low_battery", "escalated"),
        ("b1", "low_battery", "resolved"),
    ]
    assert world.active.state == {}


def test_a_replayed_batch_changes_nothing(world: World) -> None:
    msg = world.report("r1", battery_pct=5.0)
    stats = world.processor.process([msg])
    assert stats.duplicates == 1 and stats.alert_changes == 0
    assert len(world.changes()) == 1 and world.store.list()[0].count == 1


def test_what_is_not_telemetry_is_dead_lettered(world: World) -> None:
    stats = world.processor.process([BusMessage("1-0", "k", b"{oops")])
    assert stats.invalid == 1 and world.dead.letters[0].source == "processor"


def test_offline_by_the_clock_without_waiting(world: World) -> None:
    watch = OfflineWatch(
        world.settings, fleet=world.fleet, engine=world.engine,
        specs=SpecCache(Registry(), world.clock), clock=world.clock,
    )  # fmt: skip
    world.report("f1", status="in_flight", lat=37.8, lon=-122.27)
    assert watch.sweep() == 0
    world.clock.advance(world.settings.alerts.defaults.offline_in_flight_s + 1)
    assert watch.sweep() == 1
    [alert] = world.store.list(drone_id="f1")
    assert (alert.type, alert.severity) == ("offline", "critical")
    assert watch.sweep() == 0  # raised once
    world.report("f1", status="in_flight", lat=37.8, lon=-122.27)
    assert world.store.get(alert.id).state == "resolved_unacknowledged"  # type: ignore[union-attr]


def test_a_person_acknowledges_then_resolves(world: World) -> None:
    actions = AlertActions(
        store=world.store, active=world.active, fleet=world.fleet, engine=world.engine,
        clock=world.clock,
    )  # fmt: skip
    world.report("h1", battery_pct=5.0)
    [alert] = world.store.list(drone_id="h1")
    acked = actions.acknowledge(alert.id, "ann", "on it")
    assert acked.state == "acknowledged" and acked.acknowledged_at == world.clock.now()
    assert world.active.get("h1", "low_battery").state == "acknowledged"  # type: ignore[union-attr]
    with pytest.raises(AlertStateConflict):
        actions.acknowledge(alert.id, "bob", None)
    world.report("h1", battery_pct=4.0)  # the batch keeps the acknowledgement
    assert world.active.get("h1", "low_battery").state == "acknowledged"  # type: ignore[union-attr]
    actions.resolve(alert.id, "ann", None)
    assert world.active.state == {}
    assert [c for _, _, c in world.changes()] == ["opened", "acknowledged", "resolved"]
