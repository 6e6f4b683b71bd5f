"""A member of a consumer group on a partitioned Redis stream, in a process of its own, for the
partition tests: it reads in a loop and prints one JSON line per batch (``{"read": ids}``, and
``{"acked": ids}`` once acknowledged). ``hold``: it waits for a line on stdin before
acknowledging each batch, so a test can stall it (SIGSTOP) mid-batch, or kill it holding one.

    python tests/partition_member.py URL STREAM GROUP CONSUMER PARTITIONS LEASE_MS hold|ack
"""

from __future__ import annotations

import sys

import orjson

from redis_access import connect_url
from skyhive.adapters.redis_streams import RedisStreamsBus


def say(line: dict[str, object]) -> None:
    print(orjson.dumps(line).decode(), flush=True)


def main(
    url: str, stream: str, group: str, consumer: str, parts: str, lease_ms: str, mode: str
) -> None:
    bus = RedisStreamsBus(connect_url(url), partitions={stream: int(parts)}, lease_ms=int(lease_ms))
    bus.ensure_group(stream, group)
    say({"ready": True})
    while True:
        ids = [m.id for m in bus.consume(stream, group, consumer, 1000, 1000)]
        if not ids:
            continue
        say({"read": ids})
        if mode == "hold":
            sys.stdin.readline()
        bus.ack(stream, group, ids)
        say({"acked": ids})


if __name__ == "__main__":
    main(*sys.argv[1:])
