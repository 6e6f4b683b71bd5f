"""Shared fixtures: real embedded servers (Redis, a MongoDB-wire server, an MQTT broker),
each started once per session when a test first needs it, and per-test settings isolated from
every other test.

Tests run serially, so isolation is a fresh MongoDB database per test and an emptied Redis
database (FLUSHDB) at the start of each test.

The session's broker is the one `skyhive up` embeds by default (``SKYHIVE_BROKER``, ``auto``:
Mosquitto when installed, as `make test` makes sure; else amqtt). ``embedded_amqtt`` is an
amqtt broker for the smaller suite that keeps the fallback working.

Markers: a test is marked ``redis``, ``mongodb``, ``mqtt`` or ``kafka`` by the server fixtures
it uses (``embedded_redis``, ``embedded_mongodb``, ``embedded_mqtt``, ``embedded_kafka``, the
Kafka-protocol broker of the Kafka bus's tests; every test on ``settings`` uses
the first two), and an ``e2e`` test (``skyhive up``) by all three, so ``pytest -m "not mqtt"``
runs what needs no broker. A test that reaches the broker only through its settings (a helper
that builds an MQTT client from them, or /readyz) is marked ``mqtt`` itself; without either,
its settings point at a broker that does not exist, so an undeclared use fails at once.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from pymongo.errors import PyMongoError

from api_server import Api, serve_api
from skyhive.bench.kafka_broker import kafka_server
from skyhive.embedded import (
    BrokerAccess,
    Server,
    choose_broker,
    free_port,
    mongo_server,
    mosquitto_server,
    mqtt_broker,
    redis_server,
)
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"
# The server fixtures and the marker each gives the tests that use it.
SERVER_MARKERS = {
    "embedded_redis": "redis",
    "embedded_mongodb": "mongodb",
    "embedded_mqtt": "mqtt",
    "embedded_amqtt": "mqtt",
    "embedded_kafka": "kafka",
}
# `.invalid` never resolves (RFC 2606): what a test gets for a broker it did not ask for.
NO_BROKER_URL = "mqtt://embedded-mqtt-not-requested.invalid:1883"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in SERVER_MARKERS.items():
            if fixture in used or item.get_closest_marker("e2e"):
                item.add_marker(marker)


@contextlib.contextmanager
def _running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of database 0 of a Redis started for the session."""
    port = free_port(HOST)
    with _running(redis_server(tmp_path_factory.mktemp("redis"), HOST, port)):
        yield f"redis://{HOST}:{port}/0"


@pytest.fixture(scope="session")
def embedded_mongodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a MongoDB-wire server started for the session."""
    port = free_port(HOST)
    with _running(mongo_server(tmp_path_factory.mktemp("mongodb"), HOST, port)):
        yield f"mongodb://{HOST}:{port}"


@pytest.fixture(scope="session")
def broker_kind() -> str:
    """The default broker, as `skyhive up` picks it: "mosquitto" or "amqtt"."""
    return choose_broker(os.environ.get("SKYHIVE_BROKER", "auto"))


@pytest.fixture(scope="session")
def embedded_mqtt(
    broker_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """The host and port of the default broker started for the session, with insecure
    devices: tests publish as any drone without credentials. The access rules are tested on
    brokers of their own (integration/test_device_access.py). Mosquitto runs with `up`'s
    in-flight and queue limits but keeps its queues in memory (the tests' gateways leave
    sessions behind; the persistence is test_broker_crash.py's)."""
    port = free_port(HOST)
    data_dir = tmp_path_factory.mktemp("mqtt")
    if broker_kind == "mosquitto":
        server = mosquitto_server(
            data_dir, HOST, port, allow_anonymous=True, persistence=False, limits=True
        )
    else:
        server = mqtt_broker(data_dir, HOST, port, BrokerAccess(insecure_devices=True))
    with _running(server):
        yield HOST, port


@pytest.fixture(scope="session")
def embedded_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address (host:port) of a Kafka-protocol broker started for the session
    (tansu, memory storage: ``kafka_broker.py`` says what it lacks)."""
    port = free_port(HOST)
    with _running(kafka_server(tmp_path_factory.mktemp("kafka"), HOST, port)):
        yield f"{HOST}:{port}"


@pytest.fixture(scope="session")
def embedded_amqtt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """An amqtt broker for the session, insecure devices: the fallback's own smaller suite."""
    port = free_port(HOST)
    data_dir = tmp_path_factory.mktemp("amqtt")
    with _running(mqtt_broker(data_dir, HOST, port, BrokerAccess(insecure_devices=True))):
        yield HOST, port


@pytest.fixture
def make_settings(
    embedded_redis: str, embedded_mongodb: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Settings]]:
    """Settings on the embedded servers with a unique database; keyword overrides on top.
    The broker is the embedded one only for a test marked ``mqtt`` (see the module's docstring).

    Redis is flushed once, before the first settings of the test are made; databases made
    here are dropped at teardown.
    """
    base: dict[str, object] = {
        "mongodb_uri": embedded_mongodb,
        "redis_url": embedded_redis,
        "mqtt_url": NO_BROKER_URL,
        "host": HOST,
        "data_dir": tmp_path / "skyhive",
    }
    if request.node.get_closest_marker("mqtt"):
        host, port = request.getfixturevalue("embedded_mqtt")
        base |= {"mqtt_url": f"mqtt://{host}:{port}", "mqtt_port": port}
    r = redis.Redis.from_url(embedded_redis)
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
