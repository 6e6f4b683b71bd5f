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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyhive.embedded import EmbeddedStack, Server, die_with_parent, free_port
from skyhive.settings import Settings
from skyhive.supervisor import ROLES
from skyhive.wiring import Clients

Progress = Callable[[str], Any]


def _mosquitto_path(progress: Progress) -> str:
    """Mosquitto's binary, installing the Debian package first when it is missing."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if os.path.exists(exe):
        return exe
    if not shutil.which("apt-get"):
        raise SystemExit("mosquitto is not installed and there is no apt-get to install it with")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    progress("installing mosquitto (Debian package) for the benchmark ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "mosquitto"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return "/usr/sbin/mosquitto"


def _mosquitto(data_dir: Path, port: int, progress: Progress) -> Server:
    conf = data_dir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 0\nmax_queued_messages 0\n"
    )
    exe = _mosquitto_path(progress)
    return Server(
        "mqtt (mosquitto)", [exe, "-c", str(conf)], "127.0.0.1", port, data_dir / "mosquitto.log"
    )


@dataclass
class BenchStack:
    settings: Settings
    clients: Clients
    env: dict[str, str]
    data_dir: Path
    mqtt_port: int

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


@contextlib.contextmanager
def bench_stack(
    roles: tuple[str, ...],
    broker: str,
    progress: Progress,
    extra_env: dict[str, str] | None = None,
) -> Iterator[BenchStack]:
    """Fresh servers (amqtt or Mosquitto as the broker), bootstrapped, with ``roles`` (names
    in ``supervisor.ROLES``) running as child processes; everything is stopped and deleted afterwards."""
    from skyhive.bootstrap import bootstrap

    data_dir = Path(tempfile.mkdtemp(prefix="skyhive-bench-"))
    mqtt_port = free_port()
    mosq = _mosquitto(data_dir, mqtt_port, progress) if broker == "mosquitto" else None
    stack = EmbeddedStack(
        data_dir, mqtt_port=mqtt_port, mqtt_url=f"mqtt://127.0.0.1:{mqtt_port}" if mosq else ""
    )
    children: list[subprocess.Popen[bytes]] = []
    clients: Clients | None = None
    try:
        if mosq:
            mosq.start()
        urls = stack.start()
        settings = Settings(
            mongodb_uri=urls["mongodb_uri"],
            redis_url=urls["redis_url"],
            mqtt_url=urls["mqtt_url"],
            data_dir=data_dir,
        )
        clients = Clients(settings)
        bootstrap(clients)
        env = {
            **os.environ,
            "SKYHIVE_MONGODB_URI": urls["mongodb_uri"],
            "SKYHIVE_REDIS_URL": urls["redis_url"],
            "SKYHIVE_MQTT_URL": urls["mqtt_url"],
            "SKYHIVE_DATA_DIR": str(data_dir),
            **(extra_env or {}),
        }
        bs = BenchStack(settings, clients, env, data_dir, mqtt_port)
        children = [bs.spawn(*ROLES[role]) for role in roles]
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
        if mosq:
            mosq.stop()
        stack.stop()
        if os.environ.get("SKYHIVE_BENCH_KEEP"):
            progress(f"kept the benchmark's data and logs in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


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
    from skyhive.services.deliveries import utc_now

    now, ids = utc_now(), [f"bench-{i}" for i in range(n)]
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
