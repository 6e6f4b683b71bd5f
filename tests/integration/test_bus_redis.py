"""What only the Redis Streams bus has, beyond the ``Bus`` contract (test_bus_contract.py):
its pending count, and taking over a dead consumer's entries once they are idle long enough
(Kafka reassigns a dead member's partitions itself)."""

from __future__ import annotations

from polling import wait_for
from skyhive.wiring import Clients

STREAM, GROUP = "contract", "g"


def test_pending_count_follows_acknowledgement(clients: Clients) -> None:
    bus = clients.bus
    bus.ensure_group(STREAM, GROUP)
    bus.publish(STREAM, [("d1", b"a"), ("d2", b"b")])
    got = bus.consume(STREAM, GROUP, "c1", 10, 100)
    assert bus.pending_count(STREAM, GROUP) == 2
    bus.ack(STREAM, GROUP, [got[0].id])
    assert bus.pending_count(STREAM, GROUP) == 1
    bus.ack(STREAM, GROUP, [got[1].id])
    assert bus.pending_count(STREAM, GROUP) == 0


def test_entries_are_taken_over_only_once_idle_long_enough(clients: Clients) -> None:
    bus = clients.bus
    bus.ensure_group(STREAM, GROUP)
    bus.publish(STREAM, [("d1", b"x"), ("d1", b"y")])
    assert len(bus.consume(STREAM, GROUP, "dies", 10, 100)) == 2
    assert bus.consume(STREAM, GROUP, "other", 10, 50) == []
    assert bus.claim_stale(STREAM, GROUP, "other", 60_000, 10) == []
    claimed = wait_for(
        lambda: bus.claim_stale(STREAM, GROUP, "other", 100, 10),
        "idle for 100 ms, as Redis sees it",
    )
    assert [m.value for m in claimed] == [b"x", b"y"]
    bus.ack(STREAM, GROUP, [m.id for m in claimed])
    assert bus.pending_count(STREAM, GROUP) == 0
