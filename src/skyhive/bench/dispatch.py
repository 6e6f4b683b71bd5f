"""Dispatch benchmark: order accepted → command published to the drone.

A fresh stack with every process (gateway, processor, dispatcher, API) and the simulator
flying ``drones`` drones reporting at ``telemetry_hz`` (docked until commanded, spread evenly
over the stations). Orders are POSTed
to the API at ``rate`` per second for ``duration`` seconds, pickups spread over all stations.
A subscriber on ``skyhive/drones/+/commands`` timestamps each deliver command; the latency is
that moment minus the order's ``created_at`` (the API's acceptance time; same clock).
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from skyhive.bench.stack import BenchStack, Progress, bench_stack, percentiles
from skyhive.domain.geo import destination_point
from skyhive.domain.stations import bart_stations
from skyhive.embedded import free_port


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


def run_dispatch_bench(
    drones: int,
    rate: float,
    duration: float,
    progress: Progress = print,
    telemetry_hz: float = 1.0,
) -> DispatchReport:
    api_port = free_port()
    roles = ("gateway", "processor", "dispatcher", "api")
    env = {"SKYHIVE_API_PORT": str(api_port)}
    with bench_stack(roles, "amqtt", progress, extra_env=env) as bs:
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
            sim.wait(20)


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"benchmark setup failed: {what} not reached in {timeout:.0f}s")


def _measure(
    bs: BenchStack, api_port: int, drones: int, rate: float, duration: float, progress: Progress
) -> DispatchReport:
    r = bs.clients.redis_text
    progress(f"waiting for {drones} drones to be registered and live ...")
    _wait(lambda: r.scard("fleet:registered") >= drones, 120, "registry")
    _wait(lambda: r.scard("fleet:ids") >= drones, 120, "live drones")
    _wait(lambda: _get(api_port, "/readyz") == 200, 60, "API ready")
    time.sleep(2.0)  # a couple of telemetry rounds, so every drone's state is current

    received: dict[str, float] = {}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        cmd = orjson.loads(m.payload)
        if cmd.get("type") == "deliver":
            with lock:
                received.setdefault(cmd["delivery_id"], now)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-dispatch-watch")
    sub.on_message = on_message
    sub.connect("127.0.0.1", bs.mqtt_port)
    sub.subscribe("skyhive/drones/+/commands", qos=1)
    sub.loop_start()
    time.sleep(0.5)

    stations = bart_stations()
    total = int(rate * duration)
    start = time.monotonic() + 0.5
    accepted: dict[str, float] = {}
    rejected = [0]
    post_ms: list[float] = []
    local = threading.local()

    def post(i: int) -> None:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        st = stations[(i * 7) % len(stations)]
        lat, lon = destination_point(st.lat, st.lon, (i * 53) % 360, 1000 + (i % 20) * 100)
        body = {
            "customer_id": f"bench-{i % 50}",
            "pickup_station": st.code,
            "order_id": f"bench-{i}",
            "destination": {"lat": lat, "lon": lon},
            "package": {"weight_kg": 1.0, "size": "small"},
        }
        sent_at = time.monotonic()
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
        local.conn.request(
            "POST", "/api/v1/deliveries", orjson.dumps(body), {"Content-Type": "application/json"}
        )
        resp = local.conn.getresponse()
        data = orjson.loads(resp.read())
        post_ms.append((time.monotonic() - sent_at) * 1000)
        if resp.status != 201:
            rejected[0] += 1
            return
        created = datetime.fromisoformat(data["created_at"]).timestamp()
        with lock:
            accepted[data["id"]] = created

    progress(f"posting {total} orders at {rate:g}/s over {duration:g}s ...")
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(post, range(total)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if all(d in received for d in accepted):
                break
        time.sleep(0.2)
    sub.loop_stop()
    sub.disconnect()

    docs = list(bs.clients.db.deliveries.find({}, {"dispatch": 1, "drone_id": 1, "status": 1}))
    internal = [d["dispatch"]["latency_ms"] for d in docs if d.get("dispatch")]
    assigned = [d["drone_id"] for d in docs if d.get("drone_id")]
    latencies = [(received[d] - t) * 1000 for d, t in accepted.items() if d in received]
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
    )


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()
