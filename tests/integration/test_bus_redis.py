"""The Bus contract on the Redis Streams adapter (the Kafka adapter will run the same tests)."""

from __future__ import annotations

import time

from polling import wait_for
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.wiring import Clients

STREAM, GROUP = "contract", "g"


def fresh_bus(clients: Clients) -> RedisStreamsBus:
    bus = clients.bus
    bus.ensure_group(STREAM, GROUP)
    bus.ensure_group(STREAM, GROUP)  # idempotent
    return bus


def test_publish_consume_ack_in_order(clients: Clients) -> None:
    bus = fresh_bus(clients)
    ids = bus.publish(STREAM, [("d1", b"a"), ("d2", b"b"), ("d1", b"c")])
    assert len(ids) == 3
    got = bus.consume(STREAM, GROUP, "c1", 10, 100)
    assert [(m.key, m.value) for m in got] == [("d1", b"a"), ("d2", b"b"), ("d1", b"c")]
    assert bus.pending_count(STREAM, GROUP) == 3
    bus.ack(STREAM, GROUP, [m.id for m in got])
    assert bus.pending_count(STREAM, GROUP) == 0
    assert bus.consume(STREAM, GROUP, "c1", 10, 50) == []
    started = time.monotonic()
    assert bus.consume(STREAM, GROUP, "c1", 10, 0) == []  # 0 means "don't wait"
    assert time.monotonic() - started < 0.5


def test_unacknowledged_entries_are_redelivered_and_reclaimed(clients: Clients) -> None:
    bus = fresh_bus(clients)
    bus.publish(STREAM, [("d1", b"x"), ("d1", b"y")])
    first = bus.consume(STREAM, GROUP, "dies", 10, 100)
    assert len(first) == 2
    # The same consumer re-reads its own pending entries after a failure.
    again = bus.consume(STREAM, GROUP, "dies", 10, 0, own_pending=True)
    assert [m.id for m in again] == [m.id for m in first]
    # Another consumer sees nothing new, and takes nothing that is not idle long enough.
    assert bus.consume(STREAM, GROUP, "other", 10, 50) == []
    assert bus.claim_stale(STREAM, GROUP, "other", 60_000, 10) == []
    claimed = wait_for(
        lambda: bus.claim_stale(STREAM, GROUP, "other", 100, 10),
        "idle for 100 ms, as Redis sees it",
    )
    assert [m.value for m in claimed] == [b"x", b"y"]
    bus.ack(STREAM, GROUP, [m.id for m in claimed])
    assert bus.pending_count(STREAM, GROUP) == 0


def test_group_created_on_an_existing_stream_reads_from_the_start(clients: Clients) -> None:
    clients.bus.publish(STREAM, [("d1", b"early")])
    bus = fresh_bus(clients)
    assert [m.value for m in bus.consume(STREAM, GROUP, "c", 10, 100)] == [b"early"]
    assert bus.ping()
