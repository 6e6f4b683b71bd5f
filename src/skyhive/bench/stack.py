"""A throw-away SkyHive stack for a benchmark: servers in a temporary dir, chosen processes."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyhive.embedded import (
    EmbeddedRedisCluster,
    EmbeddedStack,
    Server,
    die_with_parent,
    free_port,
    mosquitto_dir,
    mosquitto_path,
)
from skyhive.settings import Settings
from skyhive.supervisor import ROLES
from skyhive.wiring import Clients

Progress = Callable[[str], Any]


@dataclass
class BenchStack:
    settings: Settings
    clients: Clients
    env: dict[str, str]
    data_dir: Path
    mqtt_port: int
    api_key: str = ""  # an admin key, for whatever calls the API
    pids: dict[str, int] = field(default_factory=dict)  # process name → pid (servers, roles)

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / "processes.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "skyhive", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        finally:
            log.close()


@contextlib.contextmanager
def helper_process(module: str, *args: str, what: str) -> Iterator[None]:
    """``python -m module ARGS``, a measuring helper in a process of its own (its timestamps
    never wait for the benchmark's threads), once it has printed ``ready``; stopped on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, preexec_fn=die_with_parent
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise SystemExit(f"benchmark setup failed: {what} did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class BusChoice:
    """The bus a benchmark's stack runs on: Redis Streams, or Kafka (a tansu broker started
    for it, memory storage: ``bench/kafka_broker.py``), in ``partitions`` partitions; and its
    Redis: one server, or with ``redis_cluster`` a Redis Cluster of three masters started for
    it (``embedded.redis_cluster``)."""

    kind: str = "redis"  # or "kafka"
    partitions: int = 1
    redis_cluster: bool = False

    def env(self, bootstrap: str) -> dict[str, str]:
        env = {
            "SKYHIVE_BUS": self.kind,
            "SKYHIVE_BUS_PARTITIONS": str(self.partitions),
            "SKYHIVE_REDIS_CLUSTER": str(self.redis_cluster).lower(),
        }
        return env | ({"SKYHIVE_KAFKA__BOOTSTRAP": bootstrap} if bootstrap else {})


REDIS_BUS = BusChoice()


@contextlib.contextmanager
def _kafka_for(bus: BusChoice, data_dir: Path, progress: Progress) -> Iterator[Server | None]:
    if bus.kind != "kafka":
        yield None
        return
    from skyhive.bench.kafka_broker import kafka_server

    server = kafka_server(data_dir / "kafka", "127.0.0.1", free_port())
    (data_dir / "kafka").mkdir()
    progress("starting a Kafka-protocol broker (tansu) for the bus ...")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _redis_cluster_for(
    bus: BusChoice, data_dir: Path, progress: Progress
) -> Iterator[EmbeddedRedisCluster | None]:
    if not bus.redis_cluster:
        yield None
        return
    from skyhive.embedded import free_cluster_ports, redis_cluster

    progress("starting a Redis Cluster of three masters ...")
    (data_dir / "redis-cluster").mkdir()
    with redis_cluster(data_dir / "redis-cluster", "127.0.0.1", free_cluster_ports()) as cluster:
        yield cluster


def role_names(roles: tuple[str, ...]) -> list[str]:
    """Process names for ``roles``: a role given twice is ``processor``, ``processor-2``."""
    names: list[str] = []
    for role in roles:
        n = sum(1 for r in roles[: len(names) + 1] if r == role)
        names.append(role if n == 1 else f"{role}-{n}")
    return names


@contextlib.contextmanager
def bench_stack(
    roles: tuple[str, ...],
    broker: str,
    progress: Progress,
    extra_env: dict[str, str] | None = None,
    bus: BusChoice = REDIS_BUS,
) -> Iterator[BenchStack]:
    """Fresh servers (amqtt or Mosquitto as the broker; Kafka too on a Kafka ``bus``),
    bootstrapped, with ``roles`` (names in ``supervisor.ROLES``, a role repeated for several
    of it) running as child processes; everything is stopped and deleted afterwards.

    The broker admits insecure devices: the load generators publish as hundreds of drones
    over one connection, and the simulator flies its fleet on one anonymous connection (per
    drone connections would add a subscription per drone, which amqtt scans per message).
    SkyHive's services authenticate with their credentials, as under `skyhive up`."""
    data_dir = Path(tempfile.mkdtemp(prefix="skyhive-bench-"))
    with (
        _kafka_for(bus, data_dir, progress) as kafka,
        _redis_cluster_for(bus, data_dir, progress) as cluster,
    ):
        yield from _stack(roles, broker, progress, extra_env, bus, data_dir, kafka, cluster)


def _stack(
    roles: tuple[str, ...],
    broker: str,
    progress: Progress,
    extra_env: dict[str, str] | None,
    bus: BusChoice,
    data_dir: Path,
    kafka: Server | None,
    cluster: EmbeddedRedisCluster | None,
) -> Iterator[BenchStack]:
    from skyhive.bootstrap import bootstrap
    from skyhive.services.device_credentials import (
        MosquittoAuthFiles,
        ensure_service_credentials,
    )

    bootstrap_servers = f"{kafka.host}:{kafka.port}" if kafka is not None else ""
    if broker == "mosquitto":
        mosquitto_path(progress)  # installed first, if need be
    # The broker as `skyhive up` runs it (configuration, limits, persistence): what is
    # measured is what users run.
    stack = EmbeddedStack(
        data_dir,
        mqtt_port=free_port(),
        insecure_devices=True,
        broker=broker,
        redis_url=cluster.url if cluster is not None else "",
    )
    children: list[subprocess.Popen[bytes]] = []
    clients: Clients | None = None
    settings: Settings | None = None

    def prepare(urls: dict[str, str]) -> None:
        """Before the broker starts: the data every process expects, and Mosquitto's
        password and ACL files holding the services' logins (as `skyhive up` does)."""
        nonlocal clients, settings
        settings = Settings(
            mongodb_uri=urls["mongodb_uri"],
            redis_url=urls["redis_url"],
            redis_cluster=bus.redis_cluster,
            mqtt_url=urls["mqtt_url"],
            data_dir=data_dir,
            insecure_devices=True,
            bus=bus.kind,
            bus_partitions=bus.partitions,
            kafka={"bootstrap": bootstrap_servers},
        )
        clients = Clients(settings)
        bootstrap(clients)
        ensure_service_credentials(clients, settings.mqtt_services_path())
        if broker == "mosquitto":
            auth = MosquittoAuthFiles(mosquitto_dir(data_dir), insecure_devices=True)
            auth.write(clients, time.time_ns() // 1_000_000)

    try:
        urls = stack.start(prepare)
        assert settings is not None and clients is not None
        env = {
            **os.environ,
            "SKYHIVE_MONGODB_URI": urls["mongodb_uri"],
            "SKYHIVE_REDIS_URL": urls["redis_url"],
            "SKYHIVE_MQTT_URL": urls["mqtt_url"],
            "SKYHIVE_DATA_DIR": str(data_dir),
            "SKYHIVE_INSECURE_DEVICES": "true",
            "SKYHIVE_MQTT_SERVICES_FILE": str(settings.mqtt_services_path()),
            **bus.env(bootstrap_servers),
            **(extra_env or {}),
        }
        bs = BenchStack(settings, clients, env, data_dir, stack.mqtt_port, _admin_key(clients))
        children = [bs.spawn(*ROLES[role]) for role in roles]
        servers = [*stack.servers, *([kafka] if kafka is not None else [])]
        for i, node in enumerate(cluster.nodes if cluster is not None else [], 1):
            bs.pids[f"redis server {i}"] = node.proc.pid if node.proc else 0
        bs.pids.update({f"{s.label} server": s.proc.pid for s in servers if s.proc})
        bs.pids.update({n: c.pid for n, c in zip(role_names(roles), children, strict=True)})
        yield bs
    finally:
        for c in children:
            c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(15)
            except subprocess.TimeoutExpired:
                c.kill()
        if clients is not None:
            clients.close()
        stack.stop()
        if os.environ.get("SKYHIVE_BENCH_KEEP"):
            progress(f"kept the benchmark's data and logs in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _admin_key(clients: Clients) -> str:
    from skyhive.domain.access import Role
    from skyhive.services.api_keys import create_key

    return create_key(clients, "benchmark", Role.admin)[1]


def wait_until(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"benchmark setup failed: {what} not reached in {timeout:.0f}s")


def http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def seed_customers(clients: Clients, n: int) -> list[str]:
    """Customers ``bench-0`` … ``bench-{n-1}`` (orders need a known customer)."""
    from skyhive.services.deliveries import to_millisecond

    now, ids = to_millisecond(clients.clock.now()), [f"bench-{i}" for i in range(n)]
    docs = [
        {"_id": c, "name": f"Bench {c}", "email": f"{c}@bench.example", "created_at": now}
        for c in ids
    ]
    clients.customers.upsert_many(docs)
    return ids


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def pct(p: float) -> float:
        return round(v[min(len(v) - 1, int(p / 100 * len(v)))], 1)

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(v[-1], 1)}
