"""Prometheus metrics: a request counter and latency histogram per endpoint, and ``/metrics``.

``/metrics`` is public (scrapers carry no key), so it holds nothing secret: counts and
latencies by endpoint name, method and status, and cache reads by resource; never a path, a
key or a client address.

The metric objects live at module level, in the default registry, because a collector can be
registered only once per process while tests (and the dashboard) build several apps. The
server runs one worker process, so the default registry is the whole picture of this API.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from flask_openapi3 import APIBlueprint, OpenAPI, Tag
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from skyhive.api.operation import PUBLIC, operation

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


@operation(bp.get, "/metrics", access=PUBLIC, ok=TEXT_EXPOSITION, uses_stores=False)
def metrics() -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def init_metrics(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_record)
    if isinstance(app, OpenAPI):
        app.register_api(bp)
    else:
        app.register_blueprint(bp)
