"""The ``Bus`` port's contract, run against Redis Streams and against a real Kafka-protocol
broker (``embedded_kafka``: tansu; what it cannot prove is in ``kafka_broker.py``).

What every adapter promises, and the roles rely on: per-key order; records stay pending until
acknowledged and come again to their consumer after a failure (``own_pending``); a member that
dies before acknowledging has its records delivered to another member of the group (read the
way every role reads: ``GroupConsumer.read``, dead members' records or else new ones); what
was acknowledged is not delivered again; a read returns at most the batch asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from bus_member import make_bus
from polling import wait_for
from redis_access import client_url
from skyhive.adapters.kafka_bus import BusUnavailable, KafkaBus
from skyhive.adapters.system_clock import SystemClock
from skyhive.bench.kafka_broker import kafka_server
from skyhive.embedded import free_port
from skyhive.ports.bus import Bus, BusMessage
from skyhive.services.group_consumer import GroupConsumer
from skyhive.settings import Settings

GROUP = "g"
MEMBER = Path(__file__).parent.parent / "bus_member.py"


@pytest.fixture(params=["redis", "redis-partitioned", "kafka"])
def address(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, address) of the bus under test: Redis's URL (the stream whole, or split into
    partitions read on leases), or Kafka's bootstrap."""
    if request.param == "kafka":
        return "kafka", request.getfixturevalue("embedded_kafka")
    settings: Settings = request.getfixturevalue("settings")
    return request.param, client_url(settings)


@pytest.fixture
def new_bus(address: tuple[str, str], stream: str) -> Iterator[Callable[[], Bus]]:
    """Buses on the server under test (each its own clients, as separate processes have)."""
    made: list[Bus] = []

    def make() -> Bus:
        made.append(make_bus(*address, stream))
        return made[-1]

    yield make
    for bus in made:
        leave(bus)


@pytest.fixture
def stream() -> str:
    return f"contract:{uuid.uuid4().hex[:8]}"  # a topic of its own per test on the session's broker


def read_all(bus: Bus, stream: str, consumer: str, n: int, count: int = 100) -> list[BusMessage]:
    """Records as a role reads them (dead members' first, else new ones) until ``n`` came."""
    reader = GroupConsumer(bus, stream, GROUP, consumer, count, 200, 500, SystemClock())
    got: list[BusMessage] = []
    deadline = time.monotonic() + 40
    while len(got) < n and time.monotonic() < deadline:
        batch = reader.read()
        assert len(batch) <= count
        got += batch
    return got


def test_records_keep_their_order_per_key_and_reads_are_bounded(
    new_bus: Callable[[], Bus], stream: str
) -> None:
    bus = new_bus()
    bus.ensure_group(stream, GROUP)
    bus.ensure_group(stream, GROUP)  # idempotent
    items = [(f"d{i % 7}", f"{i}".encode()) for i in range(300)]
    for i in range(0, 300, 50):
        assert len(bus.publish(stream, items[i : i + 50])) == 50
    got = read_all(bus, stream, "c1", 300, count=40)
    assert len(got) == 300
    for key in {k for k, _ in items}:
        assert [m.value for m in got if m.key == key] == [v for k, v in items if k == key]
    bus.ack(stream, GROUP, [m.id for m in got])
    started = time.monotonic()
    assert bus.consume(stream, GROUP, "c1", 10, 0) == []  # 0: don't wait
    assert time.monotonic() - started < 0.5
    assert bus.ping()


def test_a_failed_batch_comes_again_and_acknowledged_records_never_do(
    new_bus: Callable[[], Bus], stream: str
) -> None:
    bus = new_bus()
    bus.ensure_group(stream, GROUP)
    bus.publish(stream, [("d1", b"x"), ("d1", b"y"), ("d1", b"z")])
    first = read_all(bus, stream, "c1", 3)
    again = bus.consume(stream, GROUP, "c1", 10, 0, own_pending=True)
    assert [m.id for m in again] == [m.id for m in first]
    # Acknowledged out of order, the last first: each is done on its own.
    bus.ack(stream, GROUP, [first[2].id])
    bus.ack(stream, GROUP, [first[0].id, first[1].id])
    assert bus.consume(stream, GROUP, "c1", 10, 0, own_pending=True) == []
    bus.publish(stream, [("d1", b"after")])
    leave(bus)
    # The consumer restarted (another process, the same name) gets what came after, and
    # nothing it had acknowledged.
    later = read_all(new_bus(), stream, "c1", 1)
    assert [m.value for m in later] == [b"after"]


def leave(bus: Bus) -> None:
    """A consumer process stopping: a Kafka member leaves its group, a partitioned Redis
    Streams member gives its partitions back (they go to the others at once)."""
    close = getattr(bus, "close", None)
    if close is not None:
        close()


def test_a_group_made_after_the_records_reads_them_from_the_start(
    new_bus: Callable[[], Bus], stream: str
) -> None:
    bus = new_bus()
    bus.publish(stream, [("d1", b"early")])
    bus.ensure_group(stream, GROUP)
    assert [m.value for m in read_all(bus, stream, "c1", 1)] == [b"early"]


def test_records_of_a_member_that_died_unacknowledged_go_to_another(
    address: tuple[str, str], new_bus: Callable[[], Bus], stream: str
) -> None:
    bus = new_bus()
    bus.ensure_group(stream, GROUP)
    bus.publish(stream, [(f"d{i}", f"r{i}".encode()) for i in range(20)])
    with subprocess.Popen(
        [sys.executable, str(MEMBER), *address, stream, GROUP, "doomed", "20"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as member:
        try:
            assert member.stdout is not None
            held = orjson.loads(member.stdout.readline())
            assert len(held) == 20
        finally:
            member.send_signal(signal.SIGKILL)
    took_over = read_all(bus, stream, "survivor", 20)
    assert sorted(m.value for m in took_over) == sorted(f"r{i}".encode() for i in range(20))
    bus.ack(stream, GROUP, [m.id for m in took_over])
    assert wait_for(lambda: bus.consume(stream, GROUP, "survivor", 10, 200) == [], "quiet")


def test_unreachable_kafka_is_a_clear_error_not_a_hang() -> None:
    bus = KafkaBus(f"127.0.0.1:{free_port('127.0.0.1')}", timeout_ms=1500)
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=r"did not (answer|acknowledge)"):
        bus.publish("telemetry", [("d1", b"x")])
    assert time.monotonic() - started < 10
    assert not bus.ping()


def test_kafka_goes_on_after_its_broker_restarts(tmp_path: Path) -> None:
    """tansu keeps records in memory only: what was on it is gone after the restart (a real
    Kafka keeps it); proven here is that producing and consuming resume, topics included."""
    port = free_port("127.0.0.1")
    server = kafka_server(tmp_path, "127.0.0.1", port)
    server.start()
    bus = KafkaBus(f"127.0.0.1:{port}", partitions=2, timeout_ms=3000, session_timeout_ms=6000)
    try:
        bus.ensure_group("restarts", GROUP)
        bus.publish("restarts", [("d1", b"before")])
        assert [m.value for m in read_all(bus, "restarts", "c1", 1)] == [b"before"]
        server.stop()
        with pytest.raises(BusUnavailable):
            bus.publish("restarts", [("d1", b"lost")])
        server.start()
        ids = wait_for(
            lambda: _published(bus, "restarts", b"after"), "a publish to the restarted broker"
        )
        assert len(ids) == 1
        assert b"after" in [m.value for m in read_all(bus, "restarts", "c1", 1)]
    finally:
        bus.close()
        server.stop()


def _published(bus: KafkaBus, stream: str, value: bytes) -> list[str] | None:
    try:
        return bus.publish(stream, [("d1", value)])
    except BusUnavailable:
        return None
