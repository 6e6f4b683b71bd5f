"""Durable before acknowledged: how the Redis bus knows a write is on disk.

The embedded Redis (6.2, no WAITAOF) runs ``appendfsync always``; a Redis fsyncing less
often, or without an AOF, is detected and reported. (WAITAOF, for Redis >= 7.2, is not
exercised here: no such server is installed; its reply check is.) What ``always`` costs is
measured by `skyhive bench durability --what fsync` (docs/benchmarks.md, "Durability").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

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
