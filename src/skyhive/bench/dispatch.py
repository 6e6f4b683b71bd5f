"""Dispatch benchmark: order accepted → command published to the drone.

A fresh stack with every process (gateway, processor, dispatcher, tracker, API) and the simulator
flying ``drones`` drones reporting at ``telemetry_hz`` (docked until commanded, spread evenly
over the stations). Orders are POSTed
to the API at ``rate`` per second for ``duration`` seconds, pickups spread over all stations.
A subscriber on ``skyhive/drones/+/commands`` timestamps each deliver command; the latency is
that moment minus the order's acceptance (``dispatch.accepted_at``: the moment the API had
stored it, just before it answers 201; same clock). The POST round trip is reported apart.
"""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from skyhive.bench.command_watch import read as read_seen
from skyhive.bench.stack import (
    BenchStack,
    Progress,
    bench_stack,
    helper_process,
    http_status,
    percentiles,
    seed_customers,
    wait_until,
)
from skyhive.bench.stream_tap import stream_tap
from skyhive.domain.geo import destination_point
from skyhive.domain.stations import bart_stations
from skyhive.embedded import free_port

BENCH_CUSTOMERS = 50  # orders are spread over bench-0 … bench-49


@dataclass
class DispatchReport:
    drones: int
    rate: float
    duration_s: float
    orders: int
    rejected: int
    commanded: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    dispatcher_latency_ms: dict[str, float] = field(default_factory=dict)
    api_post_ms: dict[str, float] = field(default_factory=dict)
    double_booked: int = 0
    telemetry_per_s: float = 0.0  # telemetry ingested while the orders were posted


def run_dispatch_bench(
    drones: int,
    rate: float,
    duration: float,
    progress: Progress = print,
    telemetry_hz: float = 1.0,
    broker: str = "amqtt",
) -> DispatchReport:
    api_port = free_port()
    roles = ("gateway", "processor", "urgent", "archiver", "dispatcher", "tracker", "api")
    # One client posting up to hundreds of orders a second: measured, not rate-limited.
    env = {"SKYHIVE_API_PORT": str(api_port), "SKYHIVE_RATE_LIMIT__ENABLED": "false"}
    with bench_stack(roles, broker, progress, extra_env=env) as bs:
        seed_customers(bs.clients, BENCH_CUSTOMERS)
        sim = bs.spawn(
            "simulate",
            "--drones",
            str(drones),
            "--rate",
            str(telemetry_hz),
            "--no-autonomous-legs",
            "--seed",
            "1",
        )
        try:
            return _measure(bs, api_port, drones, rate, duration, progress)
        finally:
            sim.terminate()
            try:
                sim.wait(20)
            except subprocess.TimeoutExpired:
                progress("the simulator did not stop within 20 s of SIGTERM; killed")
                sim.kill()
                sim.wait()


def _measure(
    bs: BenchStack, api_port: int, drones: int, rate: float, duration: float, progress: Progress
) -> DispatchReport:
    r = bs.clients.redis_text
    progress(f"waiting for {drones} drones to be registered and live ...")
    wait_until(lambda: r.scard("fleet:registered") >= drones, 120, "registry")
    wait_until(lambda: r.scard("fleet:ids") >= drones, 120, "live drones")
    wait_until(lambda: http_status(api_port, "/readyz") == 200, 60, "API ready")
    time.sleep(2.0)  # a couple of telemetry rounds, so every drone's state is current

    seen_file = bs.data_dir / "commands-seen.txt"
    watcher = ("skyhive.bench.command_watch", str(bs.mqtt_port), str(seen_file))
    with helper_process(*watcher, what="the command watcher"):
        return _post_orders(bs, api_port, drones, rate, duration, progress, seen_file)


def _post_orders(
    bs: BenchStack,
    api_port: int,
    drones: int,
    rate: float,
    duration: float,
    progress: Progress,
    seen_file: Path,
) -> DispatchReport:
    lock = threading.Lock()
    stations = bart_stations()
    total = int(rate * duration)
    start = time.monotonic() + 0.5
    accepted: set[str] = set()
    rejected = [0]
    post_ms: list[float] = []
    local = threading.local()
    headers = {"Content-Type": "application/json", **bs.auth_header}

    def post(i: int) -> None:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        st = stations[(i * 7) % len(stations)]
        lat, lon = destination_point(st.lat, st.lon, (i * 53) % 360, 1000 + (i % 20) * 100)
        body = {
            "customer_id": f"bench-{i % BENCH_CUSTOMERS}",
            "pickup_station": st.code,
            "order_id": f"bench-{i}",
            "destination": {"lat": lat, "lon": lon},
            "package": {"weight_kg": 1.0, "size": "small"},
        }
        sent_at = time.monotonic()
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
        local.conn.request("POST", "/api/v1/deliveries", orjson.dumps(body), headers)
        resp = local.conn.getresponse()
        data = orjson.loads(resp.read())
        post_ms.append((time.monotonic() - sent_at) * 1000)
        if resp.status != 201:
            with lock:
                rejected[0] += 1
                if rejected[0] == 1:
                    progress(f"  an order was refused ({resp.status}): {data.get('error')}")
            return
        with lock:
            accepted.add(data["id"])

    progress(f"posting {total} orders at {rate:g}/s over {duration:g}s ...")
    stream = bs.settings.telemetry_stream
    # Counted live: the stream is trimmed once every group has read it.
    with stream_tap(bs.settings.redis_url_or_default(), [stream]) as tap:
        window_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(post, range(total)))
        telemetry_per_s = tap.count(stream) / (time.monotonic() - window_start)
    deadline = time.monotonic() + 30
    received: dict[str, float] = {}
    while time.monotonic() < deadline:
        received = read_seen(seen_file) if seen_file.exists() else {}
        if all(d in received for d in accepted):
            break
        time.sleep(0.5)

    time.sleep(1.0)  # the dispatcher records assignments in MongoDB just after commanding
    docs = list(bs.clients.db.deliveries.find({}, {"dispatch": 1, "drone_id": 1, "status": 1}))
    dispatched = {str(d["_id"]): d["dispatch"] for d in docs if d.get("dispatch")}
    internal = [x["latency_ms"] for x in dispatched.values()]
    assigned = [d["drone_id"] for d in docs if d.get("drone_id")]
    latencies = [
        (received[d] - _epoch(dispatched[d]["accepted_at"])) * 1000
        for d in accepted
        if d in received and d in dispatched
    ]
    return DispatchReport(
        drones=drones,
        rate=rate,
        duration_s=duration,
        orders=len(accepted),
        rejected=rejected[0],
        commanded=len(latencies),
        latency_ms=percentiles(latencies),
        dispatcher_latency_ms=percentiles(internal),
        api_post_ms=percentiles(post_ms),
        double_booked=len(assigned) - len(set(assigned)),
        telemetry_per_s=round(telemetry_per_s, 1),
    )


def _epoch(value: datetime | str) -> float:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
