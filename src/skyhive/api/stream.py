"""Server-Sent Events: alert changes as they happen, for the dashboard.

The processor publishes each batch's alert changes on Redis pub/sub ``alerts:live`` as a JSON
array; each alert becomes one ``event: alert`` frame. Pub/sub keeps no history, so a client
sees the changes made while it is connected: list ``/api/v1/alerts`` first, then follow.

An open stream holds one of the server's threads (gunicorn gthread, 8 threads) for as long as
it lasts, so at most ``MAX_STREAM_CLIENTS`` are served at once and the next is told to retry
(503) rather than starving the rest of the API. A comment line goes out after
``KEEPALIVE_S`` of silence: proxies keep the connection open, and a client that went away is
noticed (a write fails) and its thread, Redis connection and slot are given back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis.exceptions
from flask import Blueprint, Response, current_app, stream_with_context
from flask.blueprints import BlueprintSetupState

from skyhive.api.errors import RETRY_AFTER_S, error_response
from skyhive.api.responses import current_clients
from skyhive.services.processor import ALERTS_LIVE

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__, url_prefix="/api/v1/stream")

MAX_STREAM_CLIENTS = 4  # of the server's 8 threads; read when the app is built
KEEPALIVE_S = 15.0
RETRY_MS = 3000  # how long a browser's EventSource waits before reconnecting

_SLOTS_KEY = "skyhive.stream_slots"


@bp.record_once
def _init_slots(state: BlueprintSetupState) -> None:
    state.app.extensions[_SLOTS_KEY] = threading.BoundedSemaphore(MAX_STREAM_CLIENTS)


def alert_frames(payload: str | bytes) -> str:
    """The ``event: alert`` frames of one published message (a JSON array of alerts, or one
    alert); empty, and logged, for anything else."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("ignoring a message on %s that is not JSON: %.80r", ALERTS_LIVE, payload)
        return ""
    alerts = data if isinstance(data, list) else [data]
    frames = [
        f"event: alert\ndata: {orjson.dumps(a).decode()}\n\n" for a in alerts if isinstance(a, dict)
    ]
    if len(frames) != len(alerts):
        log.warning("ignoring non-object alerts on %s: %.80r", ALERTS_LIVE, payload)
    return "".join(frames)


def _events(pubsub: Any, cleanup: Callable[[], None]) -> Iterator[str]:
    """The stream until the client goes away (GeneratorExit at the next write) or Redis
    fails (the stream ends; the client reconnects after ``retry``)."""
    keepalive_s = KEEPALIVE_S
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last = time.monotonic()
        while True:
            wait = max(0.0, last + keepalive_s - time.monotonic())
            msg = pubsub.get_message(timeout=wait)
            if msg is not None and msg.get("type") == "message":
                frames = alert_frames(msg["data"])
                if frames:
                    yield frames
                    last = time.monotonic()
            elif time.monotonic() - last >= keepalive_s:
                yield ": keepalive\n\n"
                last = time.monotonic()
    except redis.exceptions.RedisError as exc:
        log.warning("alert stream ended: Redis failed: %s", exc)
    finally:
        cleanup()


@bp.get("/alerts")
def stream_alerts() -> Response:
    slots: threading.BoundedSemaphore = current_app.extensions[_SLOTS_KEY]
    if not slots.acquire(blocking=False):
        return error_response(
            503,
            f"too many open streams (at most {MAX_STREAM_CLIENTS}); retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    pubsub: Any = None
    done = threading.Lock()

    def cleanup() -> None:
        """Once, whichever comes first: the generator ending or the server closing the
        response (which also covers a generator that never started)."""
        if done.acquire(blocking=False):
            try:
                if pubsub is not None:
                    pubsub.close()
            finally:
                slots.release()

    try:
        # Subscribed before answering, so nothing published after the headers is missed,
        # and a Redis outage is a 503 rather than a stream that ends at once.
        pubsub = current_clients().redis_text.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(ALERTS_LIVE)
    except BaseException:
        cleanup()
        raise
    resp = Response(
        stream_with_context(_events(pubsub, cleanup)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    resp.call_on_close(cleanup)
    return resp
