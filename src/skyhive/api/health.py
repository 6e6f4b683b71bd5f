"""Liveness and readiness probes.

``/healthz`` only says the process serves requests (restarting it would not fix a database
outage). ``/readyz`` says whether every dependency answers, so a load balancer can take this
instance out of rotation; it checks them in parallel under one short deadline so the probe
itself never hangs, whatever state the network is in.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

import pymongo
from flask import Blueprint, Response

from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.api.responses import current_clients, json_response
from skyhive.wiring import Clients

bp = Blueprint("health", __name__)

CHECK_TIMEOUT_S = 1.0
_MAX_DETAIL = 200

Check = Callable[[], object]


def _mongodb(clients: Clients) -> Check:
    def check() -> object:
        # Client-side operation timeout: bounds server selection as well as the command.
        with pymongo.timeout(CHECK_TIMEOUT_S):
            return clients.mongo_client.admin.command("ping")

    return check


def _mqtt(clients: Clients) -> Check:
    def check() -> object:
        host, port = parse_mqtt_url(clients.settings.mqtt_url_or_default())
        with socket.create_connection((host, port), timeout=CHECK_TIMEOUT_S):
            return True

    return check


def _checks(clients: Clients) -> dict[str, Check]:
    return {
        "mongodb": _mongodb(clients),
        "redis": clients.redis_text.ping,
        "mqtt": _mqtt(clients),
        "bus": clients.bus.ping,
    }


def _describe(fut: Future[object]) -> str:
    if not fut.done():
        return f"error: no answer within {CHECK_TIMEOUT_S:g}s"
    exc = fut.exception()
    if exc is None:
        return "ok"
    detail = f"error: {type(exc).__name__}: {exc}"
    return detail if len(detail) <= _MAX_DETAIL else detail[: _MAX_DETAIL - 3] + "..."


def run_checks(clients: Clients) -> dict[str, str]:
    """Every check's outcome, ``"ok"`` or ``"error: ..."``, within about CHECK_TIMEOUT_S.

    A check still running at the deadline is reported as failed and left to finish in its
    thread (its own client timeouts end it); the pool is not waited for.
    """
    checks = _checks(clients)
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    try:
        futures = {name: pool.submit(fn) for name, fn in checks.items()}
        wait_futures(futures.values(), timeout=CHECK_TIMEOUT_S + 0.2)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {name: _describe(fut) for name, fut in futures.items()}


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    results = run_checks(current_clients())
    ready = all(v == "ok" for v in results.values())
    return json_response(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
    )
