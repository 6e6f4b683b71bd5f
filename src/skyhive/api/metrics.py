"""Prometheus metrics: a request counter and latency histogram per endpoint, and ``/metrics``.

``/metrics`` is public (scrapers carry no key), so it holds nothing secret: counts and
latencies by endpoint name, method and status, and cache reads by resource; never a path, a
key or a client address.

The metric objects live at module level, in the default registry, because a collector can be
registered only once per process while tests (and the dashboard) build several apps. The
server runs one worker process, so the default registry is the whole picture of this API.

The bus series (``skyhive_bus_*``, ``skyhive_ingest_held_back``, ``skyhive_deadletters*``)
are not this process's: they are read from Redis at scrape time (``BusCollector``, a few
pipelined commands whatever the backlog), so any API instance shows the whole pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, g, request
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from skyhive.adapters.stream_trimmer import BusSnapshot
from skyhive.api.errors import error_response
from skyhive.api.model_metrics import ModelsCollector
from skyhive.api.operation import PUBLIC, operation
from skyhive.api.responses import current_clients
from skyhive.services.ingest import IngestPaused
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

bp = APIBlueprint("metrics", __name__, abp_tags=[Tag(name="meta")])

_LABELS = ("endpoint", "method", "status")

REQUESTS = Counter("skyhive_api_requests", "HTTP requests answered by the API.", _LABELS)
LATENCY = Histogram(
    "skyhive_api_request_duration_seconds",
    "Time to answer an HTTP request.",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

CACHE_READS = Counter(
    "skyhive_cache_reads",
    "API reads through the read cache, by resource and result (hit, miss, error: Redis failing).",
    ("resource", "result"),
)
CACHE_HIT_RATIO = Gauge(
    "skyhive_cache_hit_ratio", "Share of API reads through the read cache answered from Redis."
)


def _hit_ratio() -> float:
    hits = total = 0.0
    for metric in CACHE_READS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
                hits += sample.value if sample.labels["result"] == "hit" else 0.0
    return hits / total if total else 0.0


CACHE_HIT_RATIO.set_function(_hit_ratio)


def count_cache_read(resource: str, result: str) -> None:
    CACHE_READS.labels(resource, result).inc()


# Unmatched URLs share one label value: labelling by path would let any client create
# unbounded series with random 404s.
UNMATCHED = "unmatched"


def _start_timer() -> None:
    g.skyhive_started = time.perf_counter()


def _record(response: Response) -> Response:
    started: float | None = g.pop("skyhive_started", None)
    endpoint = request.url_rule.endpoint if request.url_rule is not None else UNMATCHED
    labels = (endpoint, request.method, str(response.status_code))
    REQUESTS.labels(*labels).inc()
    if started is not None:
        LATENCY.labels(*labels).observe(time.perf_counter() - started)
    return response


TEXT_EXPOSITION = {
    "description": "Prometheus text exposition format.",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


_SG = ("stream", "group")


def bus_metrics(snap: BusSnapshot) -> Iterator[Metric]:
    length = GaugeMetricFamily(
        "skyhive_bus_stream_length", "Entries a bus stream holds (trimmed to what every "
        "group acknowledged).", labels=["stream"])  # fmt: skip
    pending = GaugeMetricFamily(
        "skyhive_bus_group_pending", "Entries delivered to a consumer of the group and not "
        "yet acknowledged.", labels=_SG)  # fmt: skip
    undelivered = GaugeMetricFamily(
        "skyhive_bus_group_undelivered", "Entries no consumer of the group has read yet "
        "(estimated from entry ids on Redis < 7).", labels=_SG)  # fmt: skip
    unacked = GaugeMetricFamily(
        "skyhive_bus_group_unacked", "Entries the group has not acknowledged: pending plus "
        "undelivered.", labels=_SG)  # fmt: skip
    lag_s = GaugeMetricFamily(
        "skyhive_bus_group_lag_seconds", "Age of the oldest entry the group has not "
        "acknowledged: how far behind it is.", labels=_SG)  # fmt: skip
    for sl in snap.streams:
        length.add_metric([sl.stream], sl.length)
        for gl in sl.groups:
            labels = [gl.stream, gl.group]
            pending.add_metric(labels, gl.pending)
            undelivered.add_metric(labels, gl.undelivered)
            unacked.add_metric(labels, gl.unacked)
            lag_s.add_metric(labels, gl.age_s(snap.now_ms))
    yield from (length, pending, undelivered, unacked, lag_s)
    lost = CounterMetricFamily(
        "skyhive_bus_lost", "Entries trimmed away before the group processed them (never "
        "expected: a manual trim or the safety cap); each is dead-lettered.", labels=_SG)  # fmt: skip
    for (stream, group), n in sorted(snap.lost.items()):
        lost.add_metric([stream, group], n)
    yield lost
    yield GaugeMetricFamily(
        "skyhive_ingest_held_back", "1 while ingest is held back (gateway not reading MQTT, "
        "HTTP ingest 503) because a bus stream is over its backlog limit.",
        value=1 if snap.state.engaged else 0)  # fmt: skip
    yield GaugeMetricFamily(
        "skyhive_bus_backlog_limit", "Backlog above which ingest is held back.",
        value=snap.limit)  # fmt: skip
    yield GaugeMetricFamily(
        "skyhive_bus_backlog_resume", "Backlog under which held-back ingest resumes.",
        value=snap.resume)  # fmt: skip
    episodes = CounterMetricFamily(
        "skyhive_ingest_backpressure_transitions", "Times ingest started or stopped being "
        "held back.", labels=["edge"])  # fmt: skip
    for edge in ("started", "ended"):
        episodes.add_metric([edge], snap.episodes.get(edge, 0))
    yield episodes
    yield GaugeMetricFamily(
        "skyhive_deadletters", "Dead letters kept (the oldest go past the cap).",
        value=snap.deadletters)  # fmt: skip
    yield GaugeMetricFamily(
        "skyhive_deadletters_cap", "How many dead letters are kept (approximately: whole "
        "stream nodes are dropped).", value=snap.deadletter_cap)  # fmt: skip


BUS_READ_TIMEOUT_S = 2.0


class BusCollector:
    """The bus series, read from Redis when scraped; Redis failing gives
    ``skyhive_bus_up 0`` and no bus series, never a failed scrape."""

    def __init__(self, clients: Clients) -> None:
        self._c = clients

    def collect(self) -> Iterator[Metric]:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bus-metrics")
        try:
            fut = pool.submit(self._c.stream_trimmer.snapshot)
            snap = fut.result(timeout=BUS_READ_TIMEOUT_S)
        except Exception as exc:  # a hung Redis costs a scrape BUS_READ_TIMEOUT_S, no more
            log.warning("bus metrics unavailable: %s: %s", type(exc).__name__, exc)
            snap = None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        yield GaugeMetricFamily(
            "skyhive_bus_up", "1 if the bus series below could be read from Redis.",
            value=0 if snap is None else 1)  # fmt: skip
        if snap is not None:
            yield from bus_metrics(snap)


@operation(bp.get, "/metrics", access=PUBLIC, ok=TEXT_EXPOSITION, uses_stores=False)
def metrics() -> Response:
    """Prometheus metrics of this API process, and of the bus (lag per consumer group,
    backpressure, dead letters) and the stream models, read from Redis."""
    clients = current_clients()
    body = (
        generate_latest()
        + generate_latest(BusCollector(clients))
        + generate_latest(ModelsCollector(clients))
    )
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _held_back(exc: IngestPaused) -> Response:
    """Ingest held back (the bus is over its backlog limit): 503 with Retry-After, counted
    like any answer; the state is in ``skyhive_ingest_held_back``."""
    return error_response(503, str(exc), headers={"Retry-After": str(exc.retry_after_s)})


def init_metrics(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_record)
    app.register_error_handler(IngestPaused, _held_back)
    if isinstance(app, OpenAPI):
        app.register_api(bp)
    else:
        app.register_blueprint(bp)
