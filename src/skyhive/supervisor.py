"""`skyhive up`: the embedded stack plus every process, supervised.

Each process is a child (`python -m skyhive <role>`) with the servers' URLs in its environment.
A child that exits is restarted with backoff. So is an embedded server (redis-server, the
MongoDB-wire server, the MQTT broker): on the same port and data, so the children's URLs stay
right, and they reconnect. Every restart is logged and counted in ``run/supervisor.json``
(read by the API's /metrics, another process). SIGINT/SIGTERM stops the children first (so
they flush and acknowledge), then the servers. Children die with the supervisor even if it
is killed outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from skyhive.embedded import (
    INSTALL_MOSQUITTO,
    EmbeddedError,
    EmbeddedStack,
    Server,
    choose_broker,
    die_with_parent,
    mosquitto_dir,
    port_open,
)
from skyhive.settings import Settings, stack_file

if TYPE_CHECKING:
    from skyhive.services.device_credentials import MosquittoAuthFiles
    from skyhive.wiring import Clients

log = logging.getLogger(__name__)


@dataclass
class Child:
    role: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = field(default=1.0)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, preexec_fn=die_with_parent, process_group=0
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.role, self.proc.pid)

    def check(self, now: float) -> None:
        """Restart a dead child, backing off if it keeps dying young."""
        if self.proc is not None and self.proc.poll() is None:
            if now - self.started_at > 30:
                self.backoff = 1.0
            return
        if self.proc is not None:
            log.warning(
                "%s exited with code %s; restarting in %.0fs",
                self.role,
                self.proc.returncode,
                self.backoff,
            )
            self.proc = None
            self.next_start = now + self.backoff
            self.backoff = min(self.backoff * 2, 30.0)
            self.restarts += 1
        if now >= self.next_start:
            self.start()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", self.role)
            self.proc.kill()
            self.proc.wait()


@dataclass
class WatchedServer:
    """An embedded server, restarted when it dies: at once if it had run a while, else
    after a backoff doubling up to 30 s (a server that cannot start must not spin)."""

    server: Server
    restarts: int = 0
    backoff: float = 0.0
    next_start: float = 0.0
    down: bool = False

    def check(self, now: float) -> None:
        s = self.server
        if not self.down:
            if s.running():
                if now - s.started_at > 30:
                    self.backoff = 0.0
                return
            self.down = True
            self.next_start = now + self.backoff
            log.warning(
                "%s (port %d) exited with code %s; restarting it in %.0fs",
                s.name,
                s.port,
                s.proc.returncode if s.proc is not None else None,
                self.backoff,
            )
            self.backoff = min(max(self.backoff * 2, 1.0), 30.0)
        if now < self.next_start:
            return
        try:
            s.restart()
        except EmbeddedError as exc:
            self.next_start = time.monotonic() + self.backoff
            log.error("%s: %s; trying again in %.0fs", s.name, exc, self.backoff)
            self.backoff = min(self.backoff * 2, 30.0)
            return
        self.down = False
        self.restarts += 1
        pid = s.proc.pid if s.proc is not None else 0
        log.warning(
            "%s restarted on %s:%d with its data (pid %d; restart %d)",
            s.name,
            s.host,
            s.port,
            pid,
            self.restarts,
        )


def supervision_file(data_dir: Path) -> Path:
    """Where `skyhive up` says what it supervises: per process, kind, restarts and up."""
    return data_dir / "run" / "supervisor.json"


def read_supervision(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The processes of a running `skyhive up` on ``data_dir``; empty without one."""
    try:
        data = json.loads(supervision_file(data_dir).read_text())
    except (OSError, ValueError):
        return {}
    procs = data.get("processes") if isinstance(data, dict) else None
    return procs if isinstance(procs, dict) else {}


class SupervisionRecord:
    """Writes the supervision file when something changed (atomically: written aside, then
    renamed, so a reader never sees half of it)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = supervision_file(data_dir)
        self._last: dict[str, dict[str, Any]] | None = None

    def update(self, servers: list[WatchedServer], children: list[Child]) -> None:
        procs: dict[str, dict[str, Any]] = {}
        for w in servers:
            procs[w.server.label] = {
                "kind": "server",
                "restarts": w.restarts,
                "up": w.server.running(),
            }
        for c in children:
            up = c.proc is not None and c.proc.poll() is None
            procs[c.role] = {"kind": "role", "restarts": c.restarts, "up": up}
        if procs == self._last:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"processes": procs}))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not write %s: %s", self.path, exc)
            return
        self._last = procs

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# The processes of a stack: role → `skyhive` arguments. The processor's urgent lane runs in
# a process of its own, so emergencies never wait for the routine lane's share of an
# interpreter.
ROLES: dict[str, tuple[str, ...]] = {
    "gateway": ("gateway",),
    "processor": ("processor", "--lane", "routine"),
    "urgent": ("processor", "--lane", "urgent"),
    "archiver": ("archiver",),
    "dispatcher": ("dispatcher",),
    "tracker": ("tracker",),
    "notifier": ("notifier",),
    "api": ("api",),
    "billing": ("billing", "schedule"),  # invoices each month, overdue marking
    "forecaster": ("forecaster",),  # demand per station, retrained every hour
    "models": ("models",),  # stream models: battery health, anomalies, plug-ins
    "mavlink": ("mavlink", "gateway"),  # only with SKYHIVE_MAVLINK__LISTEN
}


def stack_roles(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The processes `up` runs: every role once, the routine processor and the archiver as
    many times as asked (SKYHIVE_PROCESSORS, SKYHIVE_ARCHIVERS: ``processor``,
    ``processor-2``, ...; each its own member of the group)."""
    counts = {"processor": settings.processors, "archiver": settings.archivers}
    out: dict[str, tuple[str, ...]] = {}
    for role, args in ROLES.items():
        if role == "mavlink" and not settings.mavlink.endpoints:
            continue
        out[role] = args
        out |= {f"{role}-{i}": args for i in range(2, counts.get(role, 1) + 1)}
    return out


def check_members(settings: Settings) -> list[str]:
    """Warnings about the processors and archivers asked for; raises when they cannot work.

    Several processors on one Redis stream would take a drone's readings in turns and race
    on its rule memory and alerts (an alert opened twice): refused, since nothing would say
    so until it happened. Several archivers may share one stream (history writes are keyed;
    buckets are written in more pieces), and members beyond the partitions stand by."""
    on_redis = settings.bus == "redis"
    partitions = settings.bus_partitions
    if on_redis and partitions == 1 and settings.processors > 1:
        raise EmbeddedError(
            f"SKYHIVE_PROCESSORS={settings.processors} needs SKYHIVE_BUS_PARTITIONS > 1 on "
            "Redis Streams: on one stream the processors would work on one drone at once "
            "and could open its alerts twice; set SKYHIVE_BUS_PARTITIONS (say 8)"
        )
    warnings = []
    if on_redis and partitions == 1 and settings.archivers > 1:
        warnings.append(
            f"{settings.archivers} archivers share one telemetry stream entry by entry "
            "(SKYHIVE_BUS_PARTITIONS=1): history stays exact, but buckets are written in "
            "more pieces; set SKYHIVE_BUS_PARTITIONS for one archiver per drone"
        )
    for name, n in (("processors", settings.processors), ("archivers", settings.archivers)):
        if partitions > 1 and n > partitions:
            warnings.append(
                f"{n} {name} for {partitions} bus partitions: {n - partitions} will stand by "
                "(taking over when another stops)"
            )
    return warnings


def _admin_key_note(settings: Settings, new_key: str | None) -> str:
    from skyhive.services.api_keys import ADMIN_KEY_FILE

    path = (settings.data_dir / ADMIN_KEY_FILE).resolve()
    if new_key is None:
        return f"  Admin API key   : in {path} (made on the first start)\n"
    return (
        f"  Admin API key   : {new_key}\n"
        f"                    shown this once; kept in {path} (mode 600).\n"
        f"                    Make keys for people: skyhive keys create --name NAME --role operator\n"
    )


def child_env(settings: Settings, urls: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SKYHIVE_MONGODB_URI=urls["mongodb_uri"],
        SKYHIVE_REDIS_URL=urls["redis_url"],
        SKYHIVE_REDIS_CLUSTER="true" if settings.redis_cluster else "false",
        SKYHIVE_MQTT_URL=urls["mqtt_url"],
        SKYHIVE_DATA_DIR=str(settings.data_dir),
        SKYHIVE_HOST=settings.host,
        SKYHIVE_API_PORT=str(settings.api_port),
        SKYHIVE_MQTT_PORT=str(settings.mqtt_port),
        SKYHIVE_INSECURE_DEVICES="true" if settings.insecure_devices else "false",
        SKYHIVE_MQTT_SERVICES_FILE=str(settings.mqtt_services_path()),
        SKYHIVE_BUS=settings.bus,
        SKYHIVE_BUS_PARTITIONS=str(settings.bus_partitions),  # every member must agree
        SKYHIVE_KAFKA__BOOTSTRAP=settings.kafka.bootstrap,
    )
    return env


def _bus_note(settings: Settings) -> str:
    if settings.bus != "kafka":
        return ""
    return (
        f"  Bus             : Kafka at {settings.kafka.bootstrap}, "
        f"{settings.bus_partitions} partitions a topic (commands on Redis Streams)\n"
    )


def broker_name(settings: Settings, broker: str) -> str:
    """What the banner calls the broker: ``broker`` is "mosquitto", "amqtt" or "" (not
    embedded: SKYHIVE_MQTT_URL)."""
    if broker == "mosquitto":
        return f"Mosquitto (embedded; config in {mosquitto_dir(settings.data_dir).resolve()})"
    if broker == "amqtt":
        note = (
            "" if settings.broker == "amqtt" else f"; Mosquitto not installed: {INSTALL_MOSQUITTO}"
        )
        return f"amqtt (embedded{note})"
    return "yours (SKYHIVE_MQTT_URL)"


def _mqtt_note(settings: Settings, broker: str = "") -> str:
    line = f"  MQTT broker     : {broker_name(settings, broker)}\n"
    if settings.insecure_devices:
        return line + (
            "  !! INSECURE DEVICES: MQTT clients without a password may publish and read "
            "anything !!\n"
        )
    return line + (
        "                    drones sign in as their id with their password: "
        "skyhive drones credentials ID --rotate\n"
    )


class MosquittoAuthKeeper:
    """Keeps the embedded Mosquitto's password and ACL files current while `up` runs: every
    ``interval_s`` (half a second, or ``credentials_refresh_s`` if shorter) it asks the
    credential store what changed (``MosquittoAuthFiles.refresh``) and, when a file changed,
    sends Mosquitto SIGHUP: it re-reads both and re-checks the clients already connected. So a
    drone registered, rotated or revoked by `skyhive drones`, the API or another host counts
    within about a second. On a thread of its own: a MongoDB that does not answer must not
    hold up the supervisor's loop, which is what restarts it."""

    def __init__(
        self, settings: Settings, files: MosquittoAuthFiles, server: Server, interval_s: float
    ) -> None:
        self.settings, self.files, self.server = settings, files, server
        self.interval_s = interval_s
        self.reloads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mosquitto-auth", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from skyhive.wiring import Clients

        clients = Clients(self.settings)
        failing = pending = False
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    changed = self.files.refresh(clients, time.time_ns() // 1_000_000)
                except Exception as exc:  # MongoDB away: the files stay as they were
                    if not failing:
                        log.warning("cannot refresh Mosquitto's credentials: %s", exc)
                    failing = True
                    continue
                if failing:
                    log.info("Mosquitto's credentials are refreshed again")
                    failing = False
                if changed:
                    log.info(
                        "Mosquitto's password and ACL files rewritten (%d users)", self.files.users
                    )
                    pending = True
                # Not running (being restarted): signalled once it answers again, in case it
                # read the files before they changed.
                if pending and self.server.signal(signal.SIGHUP):
                    pending = False
                    self.reloads += 1
                    log.info("Mosquitto reloaded its password and ACL files (SIGHUP)")
        finally:
            clients.close()


def _refuse_if_running(settings: Settings) -> None:
    """Two stacks on one data dir would share SQLite and AOF files: refuse the second."""
    path = stack_file(settings.data_dir)
    try:
        running = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for url in running.values():
        host_port = str(url).split("://", 1)[-1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        if port.isdigit() and port_open(host, int(port)):
            raise EmbeddedError(
                f"SkyHive is already running on {settings.data_dir} ({url} answers); "
                "stop it first or use another --data-dir"
            )
    path.unlink(missing_ok=True)  # left by a stack that was killed


def run_up(
    settings: Settings,
    extra_roles: dict[str, list[str]] | None = None,
    seed: Callable[[Clients], str | None] | None = None,
) -> int:
    """Start everything and block until SIGINT/SIGTERM. Returns the exit code. ``seed``
    adds data after the bootstrap (the demo's customers) and may return lines for the
    banner."""
    from skyhive.adapters.kafka_bus import BusUnavailable
    from skyhive.bootstrap import bootstrap
    from skyhive.services.api_keys import ensure_first_admin_key
    from skyhive.services.device_credentials import ensure_service_credentials
    from skyhive.wiring import Clients

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    _refuse_if_running(settings)
    broker = "" if settings.mqtt_url else choose_broker(settings.broker)
    if broker == "amqtt" and settings.gateway_share_group:
        raise EmbeddedError(
            "SKYHIVE_GATEWAY_SHARE_GROUP needs a broker with MQTT shared subscriptions: "
            "amqtt delivers nothing to $share/ filters; install Mosquitto (make mosquitto) "
            "or unset it"
        )
    if settings.redis_cluster and not settings.redis_url:
        raise EmbeddedError(
            "SKYHIVE_REDIS_CLUSTER=true needs SKYHIVE_REDIS_URL (one node of the cluster): "
            "`skyhive up` embeds a single Redis only; unset SKYHIVE_REDIS_CLUSTER for it"
        )
    if settings.bus == "kafka" and not settings.kafka.bootstrap:
        raise EmbeddedError(
            "SKYHIVE_BUS=kafka needs SKYHIVE_KAFKA__BOOTSTRAP (host:port of the Kafka "
            "brokers): `skyhive up` embeds no Kafka; unset SKYHIVE_BUS for Redis Streams"
        )
    for warning in check_members(settings):
        log.warning("%s", warning)
    stack = EmbeddedStack(
        data_dir=settings.data_dir,
        host=settings.host,
        mqtt_port=settings.mqtt_port,
        mongodb_uri=settings.mongodb_uri,
        redis_url=settings.redis_url,
        mqtt_url=settings.mqtt_url,
        mongodb_db=settings.mongodb_db,
        insecure_devices=settings.insecure_devices,
        credentials_refresh_s=settings.credentials_refresh_s,
        broker=broker or "amqtt",
    )
    if settings.insecure_devices:
        log.warning(
            "INSECURE DEVICES: MQTT clients without a password may publish and read anything "
            "(--insecure-devices / SKYHIVE_INSECURE_DEVICES); never in production"
        )
    children: list[Child] = []
    record = SupervisionRecord(settings.data_dir)
    auth_files: MosquittoAuthFiles | None = None
    keeper: MosquittoAuthKeeper | None = None
    new_admin_key: str | None = None
    extra: str | None = None

    def prepare(urls: dict[str, str]) -> None:
        """Once MongoDB and Redis answer, before the broker starts: the data every process
        expects, and the services' MQTT logins, which Mosquitto's password file must hold
        before the services connect."""
        nonlocal auth_files, new_admin_key, extra
        from skyhive.services.device_credentials import MosquittoAuthFiles

        clients = Clients(settings.model_copy(update=urls))
        try:
            try:
                bootstrap(clients)
            except BusUnavailable as exc:
                raise EmbeddedError(f"the bus is not there: {exc}") from None
            ensure_service_credentials(clients, settings.mqtt_services_path())
            new_admin_key = ensure_first_admin_key(clients)
            extra = seed(clients) if seed is not None else None
            if broker == "mosquitto":
                auth_files = MosquittoAuthFiles(
                    mosquitto_dir(settings.data_dir), settings.insecure_devices
                )
                auth_files.write(clients, time.time_ns() // 1_000_000)
        finally:
            clients.close()

    try:
        urls = stack.start(prepare)
        ready = settings.model_copy(update=urls)
        mosquitto = stack.broker_server
        if auth_files is not None and mosquitto is not None:
            interval = min(0.5, settings.credentials_refresh_s)
            keeper = MosquittoAuthKeeper(ready, auth_files, mosquitto, interval)
            keeper.start()
        env = child_env(settings, urls)
        stack_file(settings.data_dir).write_text(json.dumps(urls))
        roles = {
            r: [sys.executable, "-m", "skyhive", *args] for r, args in stack_roles(settings).items()
        }
        roles.update(extra_roles or {})
        children = [Child(role, argv, env) for role, argv in roles.items()]
        for c in children:
            c.start()
        print(
            f"\nSkyHive is up.\n"
            f"  Dashboard / API : http://{settings.host}:{settings.api_port}/  "
            f"(API under /api/v1, OpenAPI at /api/v1/openapi.json)\n"
            f"  MQTT            : {urls['mqtt_url']}  (publish to skyhive/drones/<id>/telemetry, QoS 1)\n"
            f"{_mqtt_note(settings, broker)}"
            f"  MongoDB         : {urls['mongodb_uri']}\n"
            f"  Redis           : {urls['redis_url']}\n"
            f"{_bus_note(settings)}"
            f"  Data dir        : {settings.data_dir.resolve()}\n"
            f"{_admin_key_note(settings, new_admin_key)}"
            f"{extra or ''}"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )
        servers = [WatchedServer(s) for s in stack.servers]
        record.update(servers, children)
        while not stop.wait(0.5):
            for w in servers:
                w.check(time.monotonic())  # blocks while a server restarts (a second or two)
            now = time.monotonic()
            for c in children:
                c.check(now)
            record.update(servers, children)
        return 0
    finally:
        for c in children:
            c.terminate()
        for c in children:
            c.wait(15)
        if keeper is not None:
            keeper.stop()
        stack_file(settings.data_dir).unlink(missing_ok=True)
        record.remove()
        stack.stop()
        log.info("stopped")
