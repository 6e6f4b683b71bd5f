"""Shared fixtures: real embedded servers (Redis, a MongoDB-wire server, an MQTT broker),
each started once per session when a test first needs it, and per-test settings isolated from
every other test.

Tests run serially, so isolation is a fresh MongoDB database per test and an emptied Redis
database (FLUSHDB) at the start of each test.

``SKYHIVE_TEST_REDIS`` says which Redis: ``single`` (the default), one redis-server as
`skyhive up` embeds it; or ``cluster``, a Redis Cluster of three masters from the same binary
(``embedded.redis_cluster``), whose first node's URL ``embedded_redis`` gives, settings made
by ``make_settings`` then have ``redis_cluster=True`` and FLUSHDB empties every primary.
``redis_cluster_mode`` tells a test which it runs on. A test that only makes sense on one
Redis server (it stops, kills or restarts Redis, or reads its configuration) is marked
``single_redis`` (``SINGLE_REDIS_TESTS`` below); `make test-redis-cluster` deselects those
(``-m "not single_redis"``), and one that runs in cluster mode anyway fails at setup, saying so.

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
    free_cluster_ports,
    free_port,
    mongo_server,
    mosquitto_server,
    mqtt_broker,
    redis_cluster,
    redis_server,
)
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"
# The server fixtures and the marker each gives the tests that use it.
SERVER_MARKERS = {
    "embedded_redis": "redis",
    "embedded_redis_cluster": "redis",
    "embedded_mongodb": "mongodb",
    "embedded_mqtt": "mqtt",
    "embedded_amqtt": "mqtt",
    "embedded_kafka": "kafka",
}
# `.invalid` never resolves (RFC 2606): what a test gets for a broker it did not ask for.
NO_BROKER_URL = "mqtt://embedded-mqtt-not-requested.invalid:1883"

REDIS_MODES = ("single", "cluster")
REDIS_MODE = os.environ.get("SKYHIVE_TEST_REDIS", "") or "single"
CLUSTER_NODES = 3
# The tests marked ``single_redis`` (path under tests/ :: name, with its parameters' id for
# one case of a parametrized test), and why each only makes sense on one Redis server.
SINGLE_REDIS_TESTS = {
    "integration/test_bus_durability.py::test_the_embedded_redis_fsyncs_every_write": (
        "reads the server's configuration (CONFIG GET appendfsync, appendonly)"
    ),
    "integration/test_read_cache.py::test_a_redis_outage_degrades_to_mongodb_reads_never_to_errors": (
        "stops and restarts a redis-server of its own, which its settings point at"
    ),
    "e2e/test_server_restarts.py::test_a_killed_server_is_restarted_on_its_port_with_its_data[redis]": (
        "kills the redis-server `skyhive up` embeds"
    ),
    "e2e/test_server_restarts.py::test_a_server_killed_under_a_running_supervisor_is_back_within_seconds[redis]": (
        "kills the redis-server `skyhive up` embeds"
    ),
    "faults/test_kill_roles.py::test_a_killed_process_loses_and_duplicates_nothing[redis-server]": (
        "kills the redis-server `skyhive up` embeds"
    ),
}
TESTS_DIR = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    if REDIS_MODE not in REDIS_MODES:
        raise pytest.UsageError(
            f"SKYHIVE_TEST_REDIS={REDIS_MODE!r}: it is one of {', '.join(REDIS_MODES)}"
        )
    config.addinivalue_line(
        "markers",
        "single_redis: only makes sense on one Redis server (stops, kills or restarts it, or "
        "reads its configuration); deselected on a Redis Cluster (SKYHIVE_TEST_REDIS=cluster)",
    )


def pytest_report_header() -> str:
    if REDIS_MODE == "cluster":
        return f"redis: cluster of {CLUSTER_NODES} masters (SKYHIVE_TEST_REDIS=cluster)"
    return "redis: single server (SKYHIVE_TEST_REDIS=single)"


def _single_redis_reason(item: pytest.Item) -> str | None:
    """Why ``item`` is in ``SINGLE_REDIS_TESTS``, if it is; a listed test its module no longer
    has is an error, so that a rename cannot drop the marker unnoticed."""
    path = Path(str(item.path))
    if not path.is_relative_to(TESTS_DIR):
        return None
    prefix = f"{path.relative_to(TESTS_DIR).as_posix()}::"
    for name in (item.name, getattr(item, "originalname", item.name)):
        if (reason := SINGLE_REDIS_TESTS.get(prefix + name)) is not None:
            return reason
    module = getattr(item, "module", None)
    for listed in SINGLE_REDIS_TESTS:
        if listed.startswith(prefix) and module is not None:
            function = listed.removeprefix(prefix).split("[", 1)[0]
            if not hasattr(module, function):
                raise pytest.UsageError(f"SINGLE_REDIS_TESTS names a missing test: {listed}")
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in SERVER_MARKERS.items():
            if fixture in used or item.get_closest_marker("e2e"):
                item.add_marker(marker)
        if _single_redis_reason(item) is not None:
            item.add_marker("single_redis")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if REDIS_MODE == "cluster" and item.get_closest_marker("single_redis"):
        reason = _single_redis_reason(item) or "marked single_redis"
        pytest.fail(
            f"a single-Redis test ({reason}) cannot run on a Redis Cluster: deselect it with "
            '-m "not single_redis" (`make test-redis-cluster` does)',
            pytrace=False,
        )


@contextlib.contextmanager
def _running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_mode() -> bool:
    """Whether the session's Redis is a Redis Cluster (``SKYHIVE_TEST_REDIS=cluster``)."""
    return REDIS_MODE == "cluster"


@pytest.fixture(scope="session")
def embedded_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the first node of a Redis Cluster of three masters started for the session
    (a cluster client finds the others), whatever ``SKYHIVE_TEST_REDIS`` says."""
    ports = free_cluster_ports(HOST, CLUSTER_NODES)
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster"), HOST, ports) as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def embedded_redis(redis_cluster_mode: bool, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of database 0 of a Redis started for the session; in cluster mode, of the
    cluster's (``embedded_redis_cluster``)."""
    if redis_cluster_mode:
        yield request.getfixturevalue("embedded_redis_cluster")
        return
    tmp_path_factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    port = free_port(HOST)
    with _running(redis_server(tmp_path_factory.mktemp("redis"), HOST, port)):
        yield f"redis://{HOST}:{port}/0"


@pytest.fixture(scope="session")
def flush_redis(redis_cluster_mode: bool, embedded_redis: str) -> Iterator[Callable[[], None]]:
    """Empties the session's Redis: FLUSHDB, on every primary of a cluster (targeted
    explicitly, not left to redis-py's routing of the command)."""
    if not redis_cluster_mode:

        def flush_single() -> None:
            r = redis.Redis.from_url(embedded_redis)
            try:
                r.flushdb()
            finally:
                r.close()

        yield flush_single
        return
    cluster = redis.RedisCluster.from_url(embedded_redis)

    def flush_cluster() -> None:
        cluster.flushdb(target_nodes=redis.RedisCluster.PRIMARIES)

    try:
        yield flush_cluster
    finally:
        cluster.close()


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
    embedded_redis: str,
    embedded_mongodb: str,
    redis_cluster_mode: bool,
    flush_redis: Callable[[], None],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Iterator[Callable[..., Settings]]:
    """Settings on the embedded servers with a unique database; keyword overrides on top.
    The broker is the embedded one only for a test marked ``mqtt`` (see the module's docstring).
    On a Redis Cluster (``redis_cluster_mode``) they have ``redis_cluster=True``.

    Redis is flushed once, before the first settings of the test are made (every primary of
    a cluster); databases made here are dropped at teardown.
    """
    base: dict[str, object] = {
        "mongodb_uri": embedded_mongodb,
        "redis_url": embedded_redis,
        "mqtt_url": NO_BROKER_URL,
        "host": HOST,
        "data_dir": tmp_path / "skyhive",
        # Tests write history at fixed past times, which TTL indexes would remove under them
        # (tests of retention turn it on).
        "history": {"expire": False},
    }
    if redis_cluster_mode:
        base["redis_cluster"] = True
    if request.node.get_closest_marker("mqtt"):
        host, port = request.getfixturevalue("embedded_mqtt")
        base |= {"mqtt_url": f"mqtt://{host}:{port}", "mqtt_port": port}
    flush_redis()
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
