"""Liveness and readiness probes, public (load balancers carry no key).

``/healthz`` only says the process serves requests (restarting it would not fix a database
outage). ``/readyz`` says whether every dependency answers, so a load balancer can take this
instance out of rotation; it checks them in parallel under one short deadline so the probe
itself never hangs, whatever state the network is in. Being public, it names only the kind of
failure (``error: ConnectionRefusedError``); the details, which may name hosts and ports, go
to the log.

Its ``lag`` section says how far behind each consumer group of the bus is, and whether ingest
is held back. Lag alone never makes it 503, not even while ingest is held back: the API still
serves reads and the dashboard that shows the overload, and ingest itself answers 503 with
Retry-After; taking the instance out of rotation would hide the one thing that explains it.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Literal

import pymongo
from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import MediaType, Schema
from flask_openapi3.models import Response as DocResponse
from pydantic import BaseModel, Field

from skyhive.adapters.mqtt_url import parse_mqtt_url
from skyhive.adapters.stream_trimmer import BusSnapshot
from skyhive.api.operation import PUBLIC, operation
from skyhive.api.responses import current_clients, json_response
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="meta")])

CHECK_TIMEOUT_S = 1.0
_MAX_DETAIL = 300
_URL_CREDENTIALS = re.compile(r"//[^/@\s]*@")
INSECURE_DEVICES_WARNING = (
    "insecure devices: the MQTT broker lets in clients without a password, to every topic "
    "(SKYHIVE_INSECURE_DEVICES); never run a real fleet like this"
)

Check = Callable[[], object]


class Health(BaseModel):
    status: Literal["ok"]


class ReadinessChecks(BaseModel):
    """`ok`, or `error: ...` (the kind of failure) per dependency."""

    mongodb: str
    redis: str
    mqtt: str
    bus: str


class GroupLag(BaseModel):
    stream: str
    group: str
    pending: int = Field(description="Delivered to a consumer, not yet acknowledged.")
    unacked: int = Field(
        description="Not yet acknowledged: pending plus not yet read (estimated on Redis < 7)."
    )
    lag_s: float = Field(description="Age of the oldest entry not yet acknowledged.")


class BusLag(BaseModel):
    held_back: bool = Field(description="Ingest is held back: a stream is over its backlog limit.")
    backlog: int = Field(description="Entries the fullest ingest stream still holds.")
    limit: int = Field(description="Backlog above which ingest is held back.")
    resume: int = Field(description="Backlog under which held-back ingest resumes.")
    groups: list[GroupLag]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: ReadinessChecks
    warnings: list[str] = Field(
        description="Settings that make this instance unsafe for production (e.g. insecure "
        "devices); empty normally."
    )
    lag: BusLag | None = Field(
        default=None,
        description="How far behind each consumer group of the bus is (never a reason for "
        "503 on its own); absent while the bus has no group or could not be read in time.",
    )


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
        "redis": lambda: clients.redis_text.ping(),  # connects at the check, not here
        "mqtt": _mqtt(clients),
        "bus": clients.bus.ping,
    }


def _describe(name: str, fut: Future[object]) -> str:
    """What the public answer says: ``ok`` or the kind of failure; the message is logged."""
    if not fut.done():
        return f"error: no answer within {CHECK_TIMEOUT_S:g}s"
    exc = fut.exception()
    if exc is None and fut.result() is False:  # a ping that says no (the Kafka bus's)
        log.warning("readiness check %s failed: it answered no", name)
        return "error: unavailable"
    if exc is None:
        return "ok"
    detail = _URL_CREDENTIALS.sub("//***@", f"{exc}")[:_MAX_DETAIL]
    log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, detail)
    return f"error: {type(exc).__name__}"


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
    return {name: _describe(name, fut) for name, fut in futures.items()}


def _lag_section(snap: BusSnapshot) -> dict[str, object] | None:
    groups = [
        {
            "stream": g.stream,
            "group": g.group,
            "pending": g.pending,
            "unacked": g.unacked,
            "lag_s": round(g.age_s(snap.now_ms), 3),
        }
        for sl in snap.streams
        for g in sl.groups
    ]
    if not groups:
        return None
    return {
        "held_back": snap.state.engaged,
        "backlog": snap.state.backlog,
        "limit": snap.limit,
        "resume": snap.resume,
        "groups": groups,
    }


def read_lag_section(clients: Clients) -> dict[str, object] | None:
    """The ``lag`` section, within the probe's deadline (None if Redis is too slow)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-lag")
    try:
        fut = pool.submit(clients.stream_trimmer.snapshot)
        wait_futures([fut], timeout=CHECK_TIMEOUT_S + 0.2)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if not fut.done() or fut.exception() is not None:
        return None
    return _lag_section(fut.result())


@operation(bp.get, "/healthz", access=PUBLIC, ok=Health, uses_stores=False)
def healthz() -> Response:
    """Liveness: the process serves requests (always `ok` while it is up)."""
    return json_response({"status": "ok"})


@operation(bp.get, "/readyz", access=PUBLIC, ok=Readiness, uses_stores=False)
def readyz() -> Response:
    """Readiness: MongoDB, Redis, the MQTT broker and the bus all answer within 1 s (else
    503, with the same body saying which did not); with each bus consumer group's lag."""
    clients = current_clients()
    results = run_checks(clients)
    ready = all(v == "ok" for v in results.values())
    warnings = [INSECURE_DEVICES_WARNING] if clients.settings.insecure_devices else []
    out: dict[str, object] = {
        "status": "ok" if ready else "unavailable",
        "checks": results,
        "warnings": warnings,
    }
    lag = read_lag_section(clients) if results.get("redis") == "ok" else None
    if lag is not None:
        out["lag"] = lag
    return json_response(out, status=200 if ready else 503)


# /readyz answers 503 with its own body (which dependency failed), not the error shape.
bp.paths["/readyz"].get.responses["503"] = DocResponse(
    description="At least one dependency did not answer; `checks` says which.",
    content={
        "application/json": MediaType(schema=Schema(**{"$ref": "#/components/schemas/Readiness"}))
    },
)
