"""A consumer in a process of its own, for the Bus contract's "a member dies" case: it reads
``n`` records of a stream for a group, never acknowledges them, prints their ids as JSON and
waits to be killed.

    python tests/bus_member.py redis|redis-partitioned|kafka ADDRESS STREAM GROUP CONSUMER N

``redis-partitioned``: the stream split into ``PARTITIONS`` partitions, on leases of
``LEASE_MS`` (short, so a dead member's partitions move within the tests' patience).
"""

from __future__ import annotations

import sys
import time

import orjson

from redis_access import connect_url
from skyhive.adapters.kafka_bus import KafkaBus
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.ports.bus import Bus

PARTITIONS = 4
LEASE_MS = 2000


def make_bus(kind: str, address: str, stream: str) -> Bus:
    if kind == "kafka":
        return KafkaBus(address, partitions=PARTITIONS, session_timeout_ms=6000)
    client = connect_url(address)
    if kind == "redis-partitioned":
        return RedisStreamsBus(client, partitions={stream: PARTITIONS}, lease_ms=LEASE_MS)
    return RedisStreamsBus(client)


def main(kind: str, address: str, stream: str, group: str, consumer: str, n: str) -> None:
    bus = make_bus(kind, address, stream)
    got: list[str] = []
    deadline = time.monotonic() + 60
    while len(got) < int(n) and time.monotonic() < deadline:
        got += [m.id for m in bus.consume(stream, group, consumer, int(n) - len(got), 200)]
    print(orjson.dumps(got).decode(), flush=True)
    while True:
        time.sleep(1)  # holding its records, unacknowledged, until killed


if __name__ == "__main__":
    main(*sys.argv[1:])
