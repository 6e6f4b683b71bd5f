"""The seed's naive pipeline, as the ingest benchmark's baseline (issue 14).

Before SkyHive had a gateway, a bus, a processor and an archiver, one process subscribed to the
drones' telemetry over MQTT and, for every message, did one ``insert_one`` into MongoDB, one
``HSET`` of the drone's live state, one ``GEOADD`` and one ``PUBLISH`` to Redis: four round
trips per reading, no batching, no validation, no rules. ``skyhive bench ingest`` measures it
after SkyHive's own run, on a fresh stack of the same servers (same broker, same offered rate,
drones, body size and duration, the same load generator), so that "what does a reading cost"
has a baseline measured on the same machine minutes apart.

``python -m skyhive.bench.naive MQTT_PORT MONGODB_URI DB REDIS_URL``: the naive consumer,
prints ``ready`` once subscribed, runs until SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from skyhive.bench.cpu import CpuMeter, per_thousand, stack_total
from skyhive.bench.stack import BenchStack, Progress, bench_stack
from skyhive.embedded import die_with_parent

COLLECTION = "naive_telemetry"  # apart from SkyHive's history, so nothing mixes
DRAIN_LIMIT_S = 15.0  # after the load: a naive consumer far behind is cut off, not waited for


@dataclass
class NaiveReport:
    broker: str
    target_rate: float
    duration_s: float
    drones: int
    published: int
    stored: int  # in MongoDB when the measurement ended
    drain_s: float  # from the end of the load to the last message stored (or the cut-off)
    sustained_rate: float
    complete: bool  # every published reading stored (else cut off DRAIN_LIMIT_S after the load)
    cpu_ms_per_1000: dict[str, float] = field(default_factory=dict)
    stack_cpu_ms_per_1000: float = 0.0  # every process but the load generator


def consume(mqtt_port: int, mongodb_uri: str, db_name: str, redis_url: str) -> None:
    """The naive consumer: what the seed did for each message, one message at a time."""
    import paho.mqtt.client as mqtt
    import redis
    from paho.mqtt.enums import CallbackAPIVersion
    from pymongo import MongoClient
    from pymongo.errors import DuplicateKeyError

    history: Any = MongoClient(mongodb_uri)[db_name][COLLECTION]
    r = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        reading = json.loads(m.payload)
        drone = reading["drone_id"]
        with contextlib.suppress(DuplicateKeyError):  # a QoS 1 redelivery
            history.insert_one({**reading, "_id": f"{drone}:{reading['seq']}"})
        live = {k: str(v) for k, v in reading.items() if not isinstance(v, dict | list)}
        r.hset(f"naive:drone:{drone}", mapping=live)  # type: ignore[arg-type]
        r.geoadd("naive:fleet:geo", (reading["lon"], reading["lat"], drone))
        r.publish("naive:fleet:updates", m.payload)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive-consumer")
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", mqtt_port)
    sub.subscribe("skyhive/drones/+/telemetry", qos=1)
    sub.loop_start()
    if not subscribed.wait(30):
        raise SystemExit("naive consumer: no SUBACK from the broker")
    print("ready", flush=True)
    stop.wait()
    sub.loop_stop()
    sub.disconnect()


def run_naive_baseline(
    rate: float,
    duration: float,
    drones: int,
    broker: str = "amqtt",
    body_bytes: int = 0,
    progress: Progress = print,
) -> NaiveReport:
    with bench_stack((), broker, progress) as bs:
        uri, db = bs.settings.mongodb_uri, bs.settings.mongodb_db
        argv = [sys.executable, "-m", __name__, str(bs.mqtt_port), uri, db]
        argv.append(bs.settings.redis_url_or_default())
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=die_with_parent)
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise SystemExit("benchmark setup failed: the naive consumer did not start")
            time.sleep(1.0)
            return _measure(bs, proc.pid, rate, duration, drones, broker, body_bytes, progress)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _measure(
    bs: BenchStack,
    consumer_pid: int,
    rate: float,
    duration: float,
    drones: int,
    broker: str,
    body_bytes: int,
    progress: Progress,
) -> NaiveReport:
    from skyhive.bench.ingest import _publisher

    history = bs.clients.db[COLLECTION]
    out: Any = mp.get_context("spawn").Queue()
    args = ("127.0.0.1", bs.mqtt_port, rate, duration, drones, out, body_bytes)
    pub = mp.get_context("spawn").Process(target=_publisher, args=args)
    pub.start()
    cpu = CpuMeter({**bs.pids, "naive consumer": consumer_pid})
    cpu.start()
    progress(f"baseline: the seed's naive consumer at {rate:g} msg/s for {duration:g}s ...")
    t0 = time.monotonic()
    while pub.is_alive():
        pub.join(5)
        if pub.is_alive():
            stored = history.estimated_document_count()
            progress(f"  t={time.monotonic() - t0:5.1f}s  stored={stored}")
    published, acked, pub_start, generator_cpu_s = out.get(timeout=10)
    load_end = time.monotonic()
    progress(f"baseline: published {published} ({acked} acknowledged); draining ...")
    stored, last_change = -1, load_end
    while time.monotonic() - load_end < DRAIN_LIMIT_S:
        now_stored = history.count_documents({})
        if now_stored != stored:
            stored, last_change = now_stored, time.monotonic()
        if stored >= published or time.monotonic() - last_change > 5:
            break
        time.sleep(0.2)
    cpu.stop()
    elapsed = max(last_change - pub_start, 1e-3)
    costs = {**cpu.per_thousand(stored), "load generator": per_thousand(generator_cpu_s, published)}
    return NaiveReport(
        broker=broker,
        target_rate=rate,
        duration_s=duration,
        drones=drones,
        published=published,
        stored=stored,
        drain_s=round(last_change - load_end, 2),
        sustained_rate=round(stored / elapsed, 1),
        complete=stored >= published,
        cpu_ms_per_1000=costs,
        stack_cpu_ms_per_1000=stack_total(costs),
    )


def ratios(
    skyhive_cpu: dict[str, float], skyhive_sustained: float, naive: NaiveReport
) -> dict[str, float]:
    """SkyHive / naive: CPU per reading of the whole stack (load generator excluded), and
    sustained rate. Below 1 for CPU and above 1 for the rate is SkyHive doing better."""
    mine = stack_total(skyhive_cpu)
    theirs = naive.stack_cpu_ms_per_1000
    return {
        "skyhive_stack_cpu_ms_per_1000": mine,
        "naive_stack_cpu_ms_per_1000": theirs,
        "cpu_per_reading": round(mine / theirs, 2) if theirs else 0.0,
        "sustained_rate": (
            round(skyhive_sustained / naive.sustained_rate, 2) if naive.sustained_rate else 0.0
        ),
    }


if __name__ == "__main__":
    consume(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
