"""Ingest benchmark: MQTT publish → gateway → bus → processor → Redis live state + MongoDB.

Starts a fresh stack (embedded servers, or Mosquitto as the broker), the gateway and the
processor as separate processes, and a paced load generator in another process. Reports the
sustained rate (published messages / time until the last one is in history), the
publish→live-state latency (sampled from the ``fleet:updates`` channel) and checks zero loss:
every published (drone, seq) is in history exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from skyhive.adapters.kafka_lag import KafkaLag
from skyhive.adapters.stream_lag import merge_partitions, read_lag
from skyhive.adapters.stream_partitions import stream_of
from skyhive.bench.cpu import LOAD_GENERATOR, CpuMeter, per_thousand
from skyhive.bench.stack import REDIS_BUS, BenchStack, BusChoice, bench_stack, percentiles
from skyhive.bench.stream_tap import KafkaTap, StreamTap
from skyhive.domain.stations import bart_stations
from skyhive.settings import Settings


@dataclass
class IngestReport:
    broker: str
    target_rate: float
    duration_s: float
    drones: int
    published: int
    stored: int
    unique_in_history: int
    drain_s: float
    sustained_rate: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    # CPU milliseconds per 1,000 readings, per process, from the first publish to the drain's end
    cpu_ms_per_1000: dict[str, float] = field(default_factory=dict)
    bus: str = "redis"
    processors: int = 1  # routine processors, one consumer group
    partitions: int = 1
    redis: str = "single"  # or "cluster": a Redis Cluster of three masters

    @property
    def zero_loss(self) -> bool:
        return self.stored == self.published == self.unique_in_history


def _publisher(
    host: str, port: int, rate: float, duration: float, drones: int, out: Any, body_bytes: int = 0
) -> None:
    """Paced QoS 1 publisher (own process, so it does not share a GIL with the measurement)."""
    from skyhive.bench.mqtt_load import LoadPublisher, pad_body

    stations = bart_stations()
    pub = LoadPublisher(host, port, client_id=f"bench-pub-{os.getpid()}")
    topics = [f"skyhive/drones/bench-{i}/telemetry" for i in range(drones)]
    seqs = [0] * drones
    cpu_before = time.process_time()  # not the interpreter's start-up: the load's cost only
    start = time.monotonic()
    end = start + duration
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate) + 1 if rate > 0 else pub.acked + 2000
        while pub.sent < due and pub.in_flight < 20_000:
            i = pub.sent % drones
            seqs[i] += 1
            st = stations[i % len(stations)]
            body = {
                "drone_id": f"bench-{i}",
                "seq": seqs[i],
                "ts": int(time.time() * 1000),
                "lat": st.lat + seqs[i] * 1e-6,  # creeping north: no jumps, no alerts
                "lon": st.lon,
                "alt_m": 80.0,
                "speed_mps": 15.0,
                "heading_deg": 90.0,
                "battery_pct": 80.0,
                "status": "in_flight",
            }
            pub.publish(topics[i], pad_body(orjson.dumps(body), body_bytes))
        pub.pump()
        time.sleep(0.002)
    deadline = time.monotonic() + 120
    while pub.in_flight and time.monotonic() < deadline:
        pub.pump()
        time.sleep(0.01)
    pub.close()
    # CLOCK_MONOTONIC is system-wide on Linux; its own CPU time, as it is gone before the meter's end
    out.put((pub.sent, pub.acked, start, time.process_time() - cpu_before))


def caught_up(r: Any, settings: Settings) -> bool:
    """Whether the processors and the archiver have acknowledged everything on the telemetry
    stream (their lag as /readyz reads it: exact once a group is caught up)."""
    wanted = {settings.processor_group, settings.archiver_group}
    whole = stream_of([settings.telemetry_stream], settings.partitioned_streams())
    lags = merge_partitions(read_lag(r, list(whole)), whole)
    groups = {g.group: g for lag in lags for g in lag.groups}
    return wanted <= groups.keys() and all(groups[g].unacked == 0 for g in wanted)


def committed_all(settings: Settings, tap: KafkaTap, lag: KafkaLag) -> bool:
    """caught_up on Kafka: both groups committed past every record the tap saw (the tap's
    ends, not the broker's watermarks: tansu reports them a batch short)."""
    ends = tap.ends(settings.telemetry_stream)
    for group in (settings.processor_group, settings.archiver_group):
        committed = lag.committed(group, settings.telemetry_stream, settings.bus_partitions)
        if any(committed.get(p, 0) < end for p, end in ends.items()):
            return False
    return True


def run_ingest_bench(
    rate: float,
    duration: float,
    drones: int,
    broker: str = "amqtt",
    warmup: float = 3.0,
    progress: Any = print,
    body_bytes: int = 0,
    bus: BusChoice = REDIS_BUS,
    processors: int = 1,
) -> IngestReport:
    """``processors`` routine processors in one group, on ``bus`` (its partitions: how the
    telemetry is split between them)."""
    roles = ("gateway", *("processor",) * processors, "archiver")
    if bus.kind == "kafka":
        # Members join their Kafka groups at their first read, about 4 s on tansu (its own
        # coordinator): after that, not in the load's first seconds.
        warmup = max(warmup, 10.0)
    with bench_stack(roles, broker, progress, bus=bus) as bs:
        report = _measure(bs, rate, duration, drones, broker, warmup, progress, body_bytes)
    report.bus, report.processors, report.partitions = bus.kind, processors, bus.partitions
    report.redis = "cluster" if bus.redis_cluster else "single"
    return report


def _measure(
    bs: BenchStack,
    rate: float,
    duration: float,
    drones: int,
    broker: str,
    warmup: float,
    progress: Any,
    body_bytes: int = 0,
) -> IngestReport:
    clients, settings, mqtt_port = bs.clients, bs.settings, bs.mqtt_port
    time.sleep(warmup)

    latencies: list[float] = []
    last_update = [0.0]  # when the last live-state update was seen
    stop_sampling = threading.Event()

    def sample() -> None:
        ps = clients.redis_text.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        ps.subscribe("fleet:updates")
        while not stop_sampling.is_set():
            m = ps.get_message(timeout=0.2)
            if m:
                now_ms = time.time() * 1000
                latencies.extend(now_ms - int(u["ts_ms"]) for u in orjson.loads(m["data"]))
                last_update[0] = time.monotonic()
        ps.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: Any = mp.get_context("spawn").Queue()
    pub = mp.get_context("spawn").Process(
        target=_publisher, args=("127.0.0.1", mqtt_port, rate, duration, drones, out, body_bytes)
    )
    partitions = settings.partitioned_streams()
    tap: StreamTap | KafkaTap
    kafka_lag = KafkaLag(settings.kafka.bootstrap)  # one admin client for the whole drain
    if settings.bus == "kafka":
        tap = KafkaTap(settings.kafka.bootstrap, [settings.telemetry_stream])
    else:
        tap = StreamTap(
            settings.redis_url,
            [settings.telemetry_stream],
            lambda _k: False,
            partitions,
            cluster=settings.redis_cluster,
        )
    tap.start()
    t0 = time.monotonic()
    pub.start()
    cpu = CpuMeter(bs.pids)
    cpu.start()
    progress(
        f"publishing at {rate:g} msg/s for {duration:g}s from {drones} drones via {broker} ..."
    )
    while pub.is_alive():
        pub.join(5)
        if pub.is_alive():
            stored = clients.db.telemetry.estimated_document_count()  # buckets: cheap
            on_bus = tap.count(settings.telemetry_stream)
            progress(f"  t={time.monotonic() - t0:5.1f}s  on_bus={on_bus}  buckets={stored}")
    published, acked, pub_start, generator_cpu_s = out.get(timeout=10)
    progress(f"published {published} ({acked} acknowledged by the broker); draining ...")
    # Drained when every published reading is on the bus and both groups have acknowledged
    # all of it: watched in Redis, since reading history back (every bucket) while the
    # archiver writes would cost the MongoDB server more than the writes do. History is
    # read once, afterwards, for the zero-loss check.
    deadline = time.monotonic() + max(60.0, duration * 2)
    last_change, last_seen = time.monotonic(), -1
    history_done = None  # when the archiver had acknowledged every reading (it runs apart)
    while time.monotonic() < deadline:
        seen = tap.count(settings.telemetry_stream)
        if isinstance(tap, KafkaTap):
            done = seen >= published and committed_all(settings, tap, kafka_lag)
        else:
            done = seen >= published and caught_up(clients.redis_bytes, settings)
        if done:
            history_done = time.monotonic()
            break
        if seen != last_seen:
            last_change, last_seen = time.monotonic(), seen
        elif time.monotonic() - last_change > 20:
            break  # stalled: report the loss rather than wait forever
        time.sleep(0.2)
    drain_end = time.monotonic()
    cpu.stop()
    tap.close()
    stop_sampling.set()
    sampler.join(2)
    ids = clients.telemetry.reading_ids()  # drone:seq of every stored reading, duplicates kept
    stored, unique = len(ids), len(set(ids))
    # From the first publish to the later of the last live-state update (the processor) and
    # history complete (the archiver): both pipelines must have kept up.
    elapsed = max(last_update[0], history_done or drain_end) - pub_start
    report = IngestReport(
        broker=broker,
        target_rate=rate,
        duration_s=duration,
        drones=drones,
        published=published,
        stored=stored,
        unique_in_history=unique,
        drain_s=round(elapsed - duration, 2),
        sustained_rate=round(stored / elapsed, 1),
        latency_ms=percentiles(latencies),
        samples=len(latencies),
        cpu_ms_per_1000={
            **cpu.per_thousand(stored),
            LOAD_GENERATOR: per_thousand(generator_cpu_s, published),
        },
    )
    return report
