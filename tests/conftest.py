"""Shared fixtures: real embedded servers (Redis, a MongoDB-wire server, an MQTT broker),
started once per session, and per-test settings isolated from every other test.

Tests run serially, so isolation is a fresh MongoDB database per test and an emptied Redis
database (FLUSHDB) at the start of each test.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pymongo.errors import PyMongoError

from api_server import Api, serve_api
from skyhive.embedded import (
    BrokerAccess,
    Server,
    free_port,
    mongo_server,
    mqtt_broker,
    redis_server,
)
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def embedded_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """``mongodb_uri``, ``redis_url``, ``mqtt_url``, ``mqtt_host`` and ``mqtt_port``."""
    data_dir: Path = tmp_path_factory.mktemp("embedded")
    redis_port, mongo_port, mqtt_port = free_port(HOST), free_port(HOST), free_port(HOST)
    servers: list[Server] = []
    try:
        for server in (
            redis_server(data_dir, HOST, redis_port),
            mongo_server(data_dir, HOST, mongo_port),
            # Insecure devices: tests publish as any drone without credentials. The access
            # rules are tested on brokers of their own (integration/test_device_access.py).
            mqtt_broker(data_dir, HOST, mqtt_port, BrokerAccess(insecure_devices=True)),
        ):
            servers.append(server)
            server.start()
        yield {
            "mongodb_uri": f"mongodb://{HOST}:{mongo_port}",
            "redis_url": f"redis://{HOST}:{redis_port}/0",
            "mqtt_url": f"mqtt://{HOST}:{mqtt_port}",
            "mqtt_host": HOST,
            "mqtt_port": mqtt_port,
        }
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def make_settings(
    embedded_servers: dict[str, object], tmp_path: Path
) -> Iterator[Callable[..., Settings]]:
    """Settings on the embedded servers with a unique database; keyword overrides on top.

    Redis is flushed once, before the first settings of the test are made; databases made
    here are dropped at teardown.
    """
    redis_url = str(embedded_servers["redis_url"])
    base = {
        "mongodb_uri": str(embedded_servers["mongodb_uri"]),
        "redis_url": redis_url,
        "mqtt_url": str(embedded_servers["mqtt_url"]),
        "mqtt_port": int(str(embedded_servers["mqtt_port"])),
        "host": HOST,
        "data_dir": tmp_path / "skyhive",
    }
    r = redis.Redis.from_url(redis_url)
    try:
        r.flushdb()
    finally:
        r.close()
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        values = {**base, "mongodb_db": f"test_{uuid.uuid4().hex[:12]}", **overrides}
        s = Settings(**values)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    dropper: Clients | None = None
    try:
        for s in made:
            if s.mongodb_uri == base["mongodb_uri"]:
                dropper = dropper or Clients(s)
                # Best effort: a cleanup failure must not hide the test's own result.
                with contextlib.suppress(PyMongoError):
                    dropper.mongo_client.drop_database(s.mongodb_db)
    finally:
        if dropper is not None:
            dropper.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def clients(settings: Settings) -> Iterator[Clients]:
    c = Clients(settings)
    yield c
    c.close()


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Api]]:
    """Start the API behind its real server (``run_api``) in a thread, with settings
    overrides; stopped at teardown (see ``api_server.serve_api``)."""
    yield from serve_api(make_settings)
