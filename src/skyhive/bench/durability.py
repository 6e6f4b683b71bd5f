"""What durability costs and what a broker crash loses (``skyhive bench durability``).

Three measurements, each on servers of its own in a temporary directory:

- ``fsync``: bus writes as the gateway makes them (``RedisStreamsBus.publish``, batches of
  1, 50 and 500 telemetry readings) with Redis at ``appendfsync everysec`` and ``always``,
  alternated over two rounds so a change in the machine's load shows as a spread;
- ``broker-crash``: a backlog of N QoS 1 readings acknowledged by the broker for a stopped
  gateway's persistent session, the broker killed (SIGKILL) right after the last PUBACK or
  after an autosave, restarted on its data, the gateway started: how many reach the bus
  (amqtt and Mosquitto);
- ``mosquitto-save``: the CPU Mosquitto spends rewriting its database every second
  (``autosave_interval 1``) with 0, 4N and 20N readings queued.

``crash_under_backlog`` is also what tests/integration/test_broker_crash.py holds Mosquitto
to its documented guarantee with.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.adapters.stream_partitions import stream_length
from skyhive.bench.stack import Progress
from skyhive.domain.device_access import MOSQUITTO_AUTOSAVE_S
from skyhive.embedded import (
    BrokerAccess,
    Server,
    free_port,
    mongo_server,
    mosquitto_path,
    mosquitto_server,
    mqtt_broker,
    redis_server,
)
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"
BASE_MS = 1795428000000
WHAT = ("fsync", "broker-crash", "mosquitto-save")
FSYNC_BATCHES = (1, 50, 500)
FSYNC_ROUNDS = 2
KILL_AFTER_S = (0.0, MOSQUITTO_AUTOSAVE_S + 1.5)  # before any save; after one


@dataclass
class FsyncRow:
    mode: str  # appendfsync
    round: int
    batch: int
    writes_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class CrashRow:
    broker: str
    kill_after_s: float  # after the last PUBACK
    acknowledged: int
    on_bus: int
    lost: int


@dataclass
class SaveCostRow:
    backlog: int
    cpu_pct: float  # of one core, over 5 s with nothing to do but the saves
    db_mb: float


@dataclass
class DurabilityReport:
    what: list[str]
    n: int
    fsync_seconds: float
    fsync: list[FsyncRow] = field(default_factory=list)
    broker_crash: list[CrashRow] = field(default_factory=list)
    mosquitto_save: list[SaveCostRow] = field(default_factory=list)
    load_average_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def mosquitto_kept_saved_backlog(self) -> bool:
        """Mosquitto's documented guarantee: nothing saved before the kill is lost."""
        return all(
            r.lost == 0
            for r in self.broker_crash
            if r.broker == "mosquitto" and r.kill_after_s > MOSQUITTO_AUTOSAVE_S
        )


def run_durability_bench(
    what: tuple[str, ...], n: int, fsync_seconds: float, progress: Progress
) -> DurabilityReport:
    report = DurabilityReport(list(what), n, fsync_seconds, load_average_start=_loadavg())
    if "broker-crash" in what or "mosquitto-save" in what:
        mosquitto_path(progress)  # installed first, if need be
    data_dir = Path(tempfile.mkdtemp(prefix="skyhive-bench-durability-"))
    try:
        if "fsync" in what:
            report.fsync = measure_fsync(data_dir / "fsync", fsync_seconds, progress)
        if "broker-crash" in what:
            report.broker_crash = measure_broker_crash(data_dir / "crash", n, progress)
        if "mosquitto-save" in what:
            report.mosquitto_save = measure_mosquitto_save(data_dir / "save", n, progress)
    finally:
        if os.environ.get("SKYHIVE_BENCH_KEEP"):
            progress(f"kept the benchmark's data and logs in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    report.load_average_end = _loadavg()
    return report


def _loadavg() -> tuple[float, float, float]:
    one, five, fifteen = (round(x, 2) for x in os.getloadavg())
    return one, five, fifteen


# --- fsync -------------------------------------------------------------------------------


def measure_fsync(data_dir: Path, seconds: float, progress: Progress) -> list[FsyncRow]:
    from skyhive.adapters.redis_streams import RedisStreamsBus

    body = orjson.dumps(
        {"drone_id": "d-0001", "seq": 123456, "ts": "2026-11-30T12:00:00Z", "battery_pct": 81.5}
        | {"lat": 37.8, "lon": -122.27, "alt_m": 120.0, "speed_mps": 12.0}
    )
    port = free_port(HOST)
    server = redis_server(data_dir, HOST, port, appendfsync="everysec")
    server.start()
    client = redis.Redis(host=HOST, port=port)
    rows: list[FsyncRow] = []
    try:
        bus = RedisStreamsBus(client)
        for rnd in range(1, FSYNC_ROUNDS + 1):
            for mode in ("everysec", "always"):
                client.config_set("appendfsync", mode)
                for batch in FSYNC_BATCHES:
                    progress(f"fsync: round {rnd}, appendfsync {mode}, batches of {batch} ...")
                    lat: list[float] = []
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < seconds:
                        t = time.perf_counter()
                        bus.publish("telemetry", [("d-0001", body)] * batch)
                        lat.append(time.perf_counter() - t)
                    elapsed = time.perf_counter() - t0
                    lat.sort()
                    rows.append(
                        FsyncRow(
                            mode,
                            rnd,
                            batch,
                            round(len(lat) / elapsed, 1),
                            round(lat[len(lat) // 2] * 1000, 2),
                            round(lat[int(len(lat) * 0.99)] * 1000, 2),
                        )
                    )
                client.delete("telemetry")
    finally:
        client.close()
        server.stop()
    return rows


# --- broker crash ------------------------------------------------------------------------


def make_broker(kind: str, data_dir: Path, port: int) -> Server:
    """amqtt or Mosquitto (with the persistence SkyHive configures), open to anonymous clients."""
    if kind == "amqtt":
        return mqtt_broker(data_dir, HOST, port, BrokerAccess(insecure_devices=True))
    return mosquitto_server(data_dir, HOST, port, allow_anonymous=True)


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def publish_backlog(port: int, n: int) -> int:
    """N readings at QoS 1 from 50 drones; returns how many the broker acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(100)
    c.connect(HOST, port)
    c.loop_start()
    infos = []
    for seq in range(1, n + 1):
        drone = f"bc-{seq % 50}"
        body = {"seq": seq, "ts": BASE_MS + seq, "battery_pct": 50.0}
        infos.append(c.publish(f"skyhive/drones/{drone}/telemetry", orjson.dumps(body), qos=1))
    acked = 0
    for info in infos:
        info.wait_for_publish(30)
        acked += info.is_published()
    c.disconnect()
    c.loop_stop()
    return acked


def _run_gateway(
    settings: Settings, clients: Clients, client_id: str, until: Callable[[], bool], timeout: float
) -> None:
    from skyhive.workers.gateway import mqtt_gateway

    gw = mqtt_gateway(settings, clients.ingest, client_id)
    stop = threading.Event()
    thread = threading.Thread(target=gw.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait(lambda: gw.connected, 15)
        _wait(until, timeout)
    finally:
        stop.set()
        thread.join(15)


def crash_under_backlog(
    kind: str, settings: Settings, data_dir: Path, n: int, wait_s: float
) -> tuple[int, int]:
    """(acknowledged by the broker, on the bus after the crash and restart).

    The gateway's persistent session is created, the gateway stops, N readings are published,
    the broker is killed ``wait_s`` after the last PUBACK, restarted on its data, and the
    gateway started again. ``settings`` name the Redis and MongoDB (a fresh telemetry stream);
    the broker is started here, on a free port."""
    from skyhive.bootstrap import bootstrap

    port = free_port(HOST)
    s = settings.model_copy(update={"mqtt_url": f"mqtt://{HOST}:{port}", "mqtt_port": port})
    clients = Clients(s)
    server = make_broker(kind, data_dir, port)
    server.start()
    try:
        bootstrap(clients)

        def on_bus() -> int:
            return stream_length(clients.redis_bytes, s.telemetry_stream, s.partitioned_streams())

        gw_id = f"gw-{uuid.uuid4().hex[:8]}"
        _run_gateway(s, clients, gw_id, lambda: False, 0.5)  # creates the persistent session
        time.sleep(MOSQUITTO_AUTOSAVE_S + 1.0)  # the session itself is saved
        acked = publish_backlog(port, n)
        time.sleep(wait_s)
        if server.proc is None:
            raise RuntimeError(f"{server.name} is not running")
        server.proc.kill()  # SIGKILL: no shutdown save
        server.proc.wait()
        server.start()
        _run_gateway(s, clients, gw_id, lambda: on_bus() >= acked, 20)
        time.sleep(0.5)  # anything beyond the acknowledged (a redelivery) would show too
        return acked, on_bus()
    finally:
        server.stop()
        clients.close()


def measure_broker_crash(data_dir: Path, n: int, progress: Progress) -> list[CrashRow]:
    """Each broker, killed at each time, each case on a flushed Redis and a fresh MongoDB database."""
    redis_port, mongo_port = free_port(HOST), free_port(HOST)
    servers = [
        redis_server(data_dir, HOST, redis_port),
        mongo_server(data_dir, HOST, mongo_port),
    ]
    rows: list[CrashRow] = []
    try:
        for server in servers:
            server.start()
        redis_url = f"redis://{HOST}:{redis_port}/0"
        for kind in ("amqtt", "mosquitto"):
            for i, wait_s in enumerate(KILL_AFTER_S):
                progress(f"broker crash: {kind}, {n} queued, killed {wait_s:g} s after ...")
                r = redis.Redis.from_url(redis_url)
                try:
                    r.flushdb()  # the same (drone, seq) again: nothing may be a duplicate
                finally:
                    r.close()
                settings = Settings(
                    mongodb_uri=f"mongodb://{HOST}:{mongo_port}",
                    mongodb_db=f"bench_crash_{kind}_{i}",
                    redis_url=redis_url,
                    data_dir=data_dir / "skyhive",
                    host=HOST,
                )
                case_dir = data_dir / f"{kind}-{i}"
                acked, on_bus = crash_under_backlog(kind, settings, case_dir, n, wait_s)
                rows.append(CrashRow(kind, wait_s, acked, on_bus, acked - on_bus))
    finally:
        for server in reversed(servers):
            server.stop()
    return rows


# --- Mosquitto's saves -------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_mosquitto_save(data_dir: Path, n: int, progress: Progress) -> list[SaveCostRow]:
    return [_save_cost(data_dir / str(b), b, progress) for b in (0, 4 * n, 20 * n)]


def _save_cost(data_dir: Path, backlog: int, progress: Progress) -> SaveCostRow:
    progress(f"mosquitto saves: {backlog} queued ...")
    port = free_port(HOST)
    server = mosquitto_server(data_dir, HOST, port, allow_anonymous=True, progress=progress)
    server.start()
    try:
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw", clean_session=False)
        sub.connect(HOST, port)
        sub.loop_start()
        sub.subscribe("skyhive/drones/+/telemetry", 1)
        time.sleep(0.5)
        sub.disconnect()
        sub.loop_stop()
        for start in range(0, backlog, 5000):
            publish_backlog(port, min(5000, backlog - start))
        time.sleep(MOSQUITTO_AUTOSAVE_S + 0.5)
        if server.proc is None:
            raise RuntimeError(f"{server.name} is not running")
        c0, t0 = _cpu_s(server.proc.pid), time.monotonic()
        time.sleep(5)
        share = (_cpu_s(server.proc.pid) - c0) / (time.monotonic() - t0)
        size = sum(p.stat().st_size for p in data_dir.rglob("mosquitto.db"))
        return SaveCostRow(backlog, round(share * 100, 2), round(size / 1e6, 1))
    finally:
        server.stop()


# --- the report --------------------------------------------------------------------------


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def format_report(report: DurabilityReport) -> str:
    """Plain-text tables, one per measurement."""
    out = [
        f"load average (1/5/15 min): {_load(report.load_average_start)} at the start, "
        f"{_load(report.load_average_end)} at the end"
    ]
    if report.fsync:
        out += [
            "",
            f"Bus writes (RedisStreamsBus.publish), {report.fsync_seconds:g} s per row:",
            f"  {'appendfsync':<11} {'round':>5} {'batch':>5} {'writes/s':>9} "
            f"{'p50 ms':>8} {'p99 ms':>8}",
        ]
        out += [
            f"  {r.mode:<11} {r.round:>5} {r.batch:>5} {r.writes_per_s:>9,.0f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            for r in report.fsync
        ]
    if report.broker_crash:
        out += [
            "",
            f"Broker kill -9 with {report.n:,} QoS 1 readings queued for a stopped gateway:",
            f"  {'broker':<10} {'killed after':>12} {'acknowledged':>12} {'on the bus':>10} "
            f"{'lost':>6}",
        ]
        out += [
            f"  {r.broker:<10} {r.kill_after_s:>10g} s {r.acknowledged:>12,} {r.on_bus:>10,} "
            f"{r.lost:>6,}"
            for r in report.broker_crash
        ]
    if report.mosquitto_save:
        out += [
            "",
            f"Mosquitto's saves (autosave every {MOSQUITTO_AUTOSAVE_S} s), broker CPU over 5 s:",
            f"  {'queued':>8} {'CPU % of a core':>15} {'db MB':>6}",
        ]
        out += [
            f"  {r.backlog:>8,} {r.cpu_pct:>15.2f} {r.db_mb:>6.1f}" for r in report.mosquitto_save
        ]
    return "\n".join(out)
