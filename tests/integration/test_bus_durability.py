"""Durable before acknowledged: how the Redis bus knows a write is on disk.

The embedded Redis (6.2, no WAITAOF) runs ``appendfsync always``; a Redis fsyncing less
often, or without an AOF, is detected and reported. (WAITAOF, for Redis >= 7.2, is not
exercised here: no such server is installed; its reply check is.)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from skyhive.adapters.redis_durability import NotDurable, check_waitaof
from skyhive.adapters.redis_streams import RedisStreamsBus
from skyhive.embedded import free_port, redis_server
from skyhive.wiring import Clients

HOST = "127.0.0.1"


def test_the_embedded_redis_fsyncs_every_write(clients: Clients) -> None:
    assert clients.redis_bytes.config_get("appendfsync") == {"appendfsync": "always"}
    assert clients.redis_bytes.config_get("appendonly") == {"appendonly": "yes"}


def test_the_bus_relies_on_the_servers_fsync_without_a_warning(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="skyhive.adapters.redis_durability")
    bus = RedisStreamsBus(clients.redis_bytes)
    assert bus.publish("durability-test", [("d1", b"x")])
    assert bus.durability() == "server"
    assert not caplog.records


@pytest.fixture
def lax_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    port = free_port(HOST)
    server = redis_server(tmp_path, HOST, port, appendfsync="everysec")
    server.start()
    client = redis.Redis(host=HOST, port=port)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def test_a_redis_that_fsyncs_every_second_is_reported(
    lax_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="skyhive.adapters.redis_durability")
    bus = RedisStreamsBus(lax_redis)
    assert bus.publish("t", [("d1", b"x")])
    assert bus.durability() == "server"
    [record] = caplog.records
    assert "appendfsync=everysec" in record.getMessage()


def test_a_redis_without_an_aof_is_reported(
    lax_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    lax_redis.config_set("appendonly", "no")
    caplog.set_level(logging.WARNING, logger="skyhive.adapters.redis_durability")
    bus = RedisStreamsBus(lax_redis)
    assert bus.publish("t", [("d1", b"x")])
    assert bus.durability() == "none"
    assert "no append-only file" in caplog.records[0].getMessage()


def test_a_waitaof_reply_without_the_local_fsync_is_not_durable() -> None:
    check_waitaof([1, 0])
    for reply in ([0, 0], [], None):
        with pytest.raises(NotDurable):
            check_waitaof(reply)


@pytest.mark.skipif(
    not os.environ.get("SKYHIVE_MEASURE_FSYNC"), reason="a measurement (docs/benchmarks.md)"
)
def test_measure_fsync_cost(lax_redis: redis.Redis) -> None:
    """Bus writes as the gateway makes them, ``appendfsync everysec`` vs ``always``."""
    body = orjson.dumps(
        {"drone_id": "d-0001", "seq": 123456, "ts": "2026-11-30T12:00:00Z", "battery_pct": 81.5}
        | {"lat": 37.8, "lon": -122.27, "alt_m": 120.0, "speed_mps": 12.0}
    )
    bus = RedisStreamsBus(lax_redis)
    for mode in ("everysec", "always", "everysec", "always"):
        lax_redis.config_set("appendfsync", mode)
        for batch in (1, 50, 500):
            lat: list[float] = []
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 3.0:
                t = time.perf_counter()
                bus.publish("telemetry", [("d-0001", body)] * batch)
                lat.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - t0
            lat.sort()
            print(
                f"\n{mode:9s} batch={batch:4d} writes/s={len(lat) / elapsed:7.0f} "
                f"p50={lat[len(lat) // 2] * 1000:.2f}ms p99={lat[int(len(lat) * 0.99)] * 1000:.2f}ms"
            )
        lax_redis.delete("telemetry")
