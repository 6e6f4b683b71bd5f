"""The notifier through in-memory ports: what goes to which channel, entries acknowledged out
of order as their channels finish, entries still being sent kept claimed through the bus port,
reminders by the test's clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from memory_ports import (
    DeadLetterList,
    GatedSender,
    MemoryAlertStore,
    MemoryBus,
    MemoryReminders,
    NotificationRecords,
    SendMarkSet,
    iso,
)

from manual_clock import ManualClock
from polling import wait_for
from skyhive.domain.alert_config import Channel, NotifyConfig
from skyhive.domain.alerts import Alert
from skyhive.services.notifier import Notifier
from skyhive.settings import Settings


@dataclass
class Stack:
    settings: Settings
    clock: ManualClock
    bus: MemoryBus
    store: MemoryAlertStore
    reminders: MemoryReminders
    records: NotificationRecords
    dead: DeadLetterList
    senders: dict[str, GatedSender]
    notifier: Notifier

    def publish(self, alert_id: str, change: str, **fields: object) -> str:
        body = {
            "id": alert_id,
            "drone_id": "d1",
            "type": "low_battery",
            "severity": "warning",
            "state": "open",
            "opened_at": iso(self.clock.now()),
            "last_seen": iso(self.clock.now()),
            "change": change,
            **fields,
        }
        [entry] = self.bus.publish(self.settings.alerts_stream, [("d1", orjson.dumps(body))])
        return entry


@pytest.fixture
def stack() -> Iterator[Stack]:
    channels = [
        Channel(name="ops", url="json://ops"),
        Channel(name="slow", url="json://slow", min_severity="critical"),
        Channel(name="oncall", url="json://oncall", escalation=True),
    ]
    notify = NotifyConfig(channels=channels, throttle_s=0, reminder_every_s=60)
    settings = Settings(notify=notify)
    senders = {"ops": GatedSender(), "slow": GatedSender(gated=True), "oncall": GatedSender()}
    clock = ManualClock()
    bus, store, reminders = MemoryBus(), MemoryAlertStore(), MemoryReminders()
    records, dead = NotificationRecords(), DeadLetterList()
    notifier = Notifier(
        settings,
        bus=bus,
        alerts=store,
        reminders=reminders,
        records=records,
        marks=SendMarkSet(),
        deadletters=dead,
        clock=clock,
        sender=lambda ch: senders[ch.name],
        consumer="n1",
        claim_idle_ms=3000,
    )
    notifier.setup()
    stop = threading.Event()
    notifier.start(stop)
    yield Stack(settings, clock, bus, store, reminders, records, dead, senders, notifier)
    senders["slow"].gate.set()
    stop.set()
    notifier.join(5)


def test_entries_are_acknowledged_out_of_order_as_their_channels_finish(stack: Stack) -> None:
    critical = stack.publish("a-1", "opened", severity="critical")  # ops and the slow channel
    warning = stack.publish("a-2", "opened")  # ops only
    assert stack.notifier.poll(0) == 2
    wait_for(lambda: stack.notifier.flush_acks() or warning in stack.bus.acked, "the warning acked")
    assert critical not in stack.bus.acked and stack.notifier.in_flight() == 1
    # Still being sent a third of the claim threshold later: claimed again, not left to others.
    stack.clock.advance(1.5)
    stack.notifier.poll(0)
    assert stack.bus.kept == [[critical]]
    stack.senders["slow"].gate.set()
    wait_for(lambda: stack.notifier.flush_acks() or critical in stack.bus.acked, "the rest acked")
    assert stack.bus.pending[stack.settings.alerts_stream] == set()
    assert [m.title for m in stack.senders["oncall"].sent] == []  # no escalation yet
    assert len(stack.senders["ops"].sent) == 2 and len(stack.senders["slow"].sent) == 1


def test_an_entry_that_is_no_alert_event_is_dead_lettered_and_acknowledged(stack: Stack) -> None:
    [entry] = stack.bus.publish(stack.settings.alerts_stream, [("x", b"not json")])
    stack.notifier.poll(0)
    assert entry in stack.bus.acked and stack.dead.letters[0].source == "notifier"


def test_reminders_come_due_by_the_clock_and_escalate(stack: Stack) -> None:
    stack.senders["slow"].gate.set()
    opened = stack.clock.now()
    alert = Alert(
        id="r-1", drone_id="d1", type="low_battery", severity="critical", state="open",
        opened_at=opened, last_seen=opened, count=1,
    )  # fmt: skip
    stack.store.alerts["r-1"] = alert.model_dump(exclude_unset=True)
    stack.publish("r-1", "opened", severity="critical")
    stack.notifier.poll(0)
    assert "r-1" in stack.reminders.due
    stack.notifier.sweep()
    assert stack.notifier.reminders == 0  # not due yet
    for n in range(1, 4):
        stack.clock.advance(60)
        stack.notifier.sweep()
        assert stack.notifier.reminders == n
        wait_for(lambda n=n: stack.reminders.counts["r-1"].endswith(f":{n}"), "counted")
    # From the third reminder on, the escalation channel hears of it too.
    assert len(stack.senders["oncall"].sent) == 1
    assert "ESCALATED" in stack.senders["oncall"].sent[0].title
    stack.store.alerts["r-1"]["state"] = "acknowledged"
    stack.clock.advance(60)
    stack.notifier.sweep()
    assert "r-1" not in stack.reminders.due and stack.notifier.reminders == 3
