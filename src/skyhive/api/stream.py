"""Server-Sent Events: what changes, as it happens, for the dashboard.

Two streams over one mechanism:

- ``/api/v1/stream/alerts``: alert changes. The processor publishes each batch's alert
  changes on Redis pub/sub ``alerts:live`` as a JSON array; each alert becomes one
  ``event: alert`` frame.
- ``/api/v1/stream/live``: the same alert frames plus the fleet. Each batch of changed drone
  states the processor publishes on ``fleet:updates`` becomes ONE ``event: drones`` frame (a
  JSON array), so a dashboard redraws once per batch, not once per drone, and a browser tab
  costs one stream slot for both.

Pub/sub keeps no history, so a client sees the changes made while it is connected: list
``/api/v1/drones`` and ``/api/v1/alerts`` first, then follow.

An open stream holds one of the server's threads (waitress, 8 threads) for as long as it
lasts, so at most ``MAX_STREAM_CLIENTS`` are served at once (both streams together) and the
next is told to retry (503) rather than starving the rest of the API. One identity (an API
key, a drone, or an address: ``ratelimit.client_identity``) holds at most
``settings.http.streams_per_identity`` of them (429 past that), so nobody can take every
slot and lock the dashboard out. A comment line goes out after ``KEEPALIVE_S`` of silence:
proxies keep the connection open, and a client that went away is noticed (a write fails) and
its thread, Redis connection and slot are given back. When the server stops
(:func:`stop_streams`) every stream ends within ``STOP_CHECK_S``; clients reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
import redis.exceptions
from flask import Flask, Response, current_app, stream_with_context
from flask.blueprints import BlueprintSetupState
from flask_openapi3 import APIBlueprint, Tag

from skyhive.adapters.live_state import ALERTS_LIVE, FLEET_UPDATES, state_from_hash
from skyhive.api.errors import RETRY_AFTER_S, error_response
from skyhive.api.operation import VIEWER, operation
from skyhive.api.ratelimit import client_identity
from skyhive.api.responses import current_clients

log = logging.getLogger(__name__)

bp = APIBlueprint("stream", __name__, url_prefix="/api/v1/stream", abp_tags=[Tag(name="stream")])

MAX_STREAM_CLIENTS = 4  # of the server's 8 threads; read when the app is built
KEEPALIVE_S = 15.0
RETRY_MS = 3000  # how long a browser's EventSource waits before reconnecting
STOP_CHECK_S = 1.0  # how often an idle stream looks whether the server is stopping

_SLOTS_KEY = "skyhive.stream_slots"

Framer = Callable[[str | bytes], str]


class Slots:
    """The process's stream slots: at most ``total``, and at most a given number per
    identity. A refusal says which cap it hit."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._used = 0

    def acquire(self, identity: str, per_identity: int) -> str | None:
        """None when a slot was taken; else "total" or "identity", the cap that was hit."""
        with self._lock:
            if self._used >= self.total:
                return "total"
            held = self._held.get(identity, 0)
            if held >= per_identity:
                return "identity"
            self._held[identity] = held + 1
            self._used += 1
            return None

    def release(self, identity: str) -> None:
        with self._lock:
            held = self._held.get(identity, 0)
            if held <= 0:
                raise ValueError(f"no stream slot held by {identity}")
            if held == 1:
                del self._held[identity]
            else:
                self._held[identity] = held - 1
            self._used -= 1

    def held(self, identity: str) -> int:
        with self._lock:
            return self._held.get(identity, 0)


@bp.record_once
def _init_slots(state: BlueprintSetupState) -> None:
    state.app.extensions[_SLOTS_KEY] = Slots(MAX_STREAM_CLIENTS)


def stop_streams(app: Flask) -> None:
    """End every open stream of ``app`` (within ``STOP_CHECK_S``) and refuse new ones (503):
    the server is shutting down, and a stream would otherwise hold its thread to the end."""
    slots: Slots | None = app.extensions.get(_SLOTS_KEY)
    if slots is not None:
        slots.stopping.set()


def _json(channel: str, payload: str | bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("ignoring a message on %s that is not JSON: %.80r", channel, payload)
        return None


def alert_frames(payload: str | bytes) -> str:
    """The ``event: alert`` frames of one published message (a JSON array of alerts, or one
    alert); empty, and logged, for anything else."""
    data = _json(ALERTS_LIVE, payload)
    if data is None:
        return ""
    alerts = data if isinstance(data, list) else [data]
    frames = [
        f"event: alert\ndata: {orjson.dumps(a).decode()}\n\n" for a in alerts if isinstance(a, dict)
    ]
    if len(frames) != len(alerts):
        log.warning("ignoring non-object alerts on %s: %.80r", ALERTS_LIVE, payload)
    return "".join(frames)


def drones_frame(payload: str | bytes) -> str:
    """One ``event: drones`` frame for one published batch of drone states; empty, and
    logged, for anything but a JSON array of objects. The processor publishes the flat string
    fields of the Redis hash: they go out typed, as ``/api/v1/drones`` gives them."""
    data = _json(FLEET_UPDATES, payload)
    if data is None:
        return ""
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        log.warning("ignoring a batch on %s that is not an array of objects", FLEET_UPDATES)
        return ""
    states = [state_from_hash(d) for d in data]
    return f"event: drones\ndata: {orjson.dumps(states).decode()}\n\n" if states else ""


def _events(
    pubsub: Any,
    framers: Mapping[str, Framer],
    cleanup: Callable[[], None],
    stopping: threading.Event,
) -> Iterator[str]:
    """The stream until the client goes away (GeneratorExit at the next write), Redis
    fails or the server stops (the stream ends; the client reconnects after ``retry``)."""
    keepalive_s = KEEPALIVE_S
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last = time.monotonic()
        while not stopping.is_set():
            wait = max(0.0, last + keepalive_s - time.monotonic())
            msg = pubsub.get_message(timeout=min(wait, STOP_CHECK_S))
            if msg is not None and msg.get("type") == "message":
                frames = framers[msg["channel"]](msg["data"])
                if frames:
                    yield frames
                    last = time.monotonic()
            elif time.monotonic() - last >= keepalive_s:
                yield ": keepalive\n\n"
                last = time.monotonic()
    except redis.exceptions.RedisError as exc:
        log.warning("event stream ended: Redis failed: %s", exc)
    finally:
        cleanup()


def _stream(framers: Mapping[str, Framer]) -> Response:
    """An SSE response following the channels of ``framers``, each message framed by its
    channel's function; 503 when every slot is taken, 429 when the caller's are."""
    slots: Slots = current_app.extensions[_SLOTS_KEY]
    if slots.stopping.is_set():
        return error_response(
            503, "the server is shutting down; retry", headers={"Retry-After": RETRY_AFTER_S}
        )
    identity = client_identity()
    per_identity = current_clients().settings.http.streams_per_identity
    refused = slots.acquire(identity, per_identity)
    if refused == "total":
        return error_response(
            503,
            f"too many open streams (at most {slots.total}); retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    if refused == "identity":
        return error_response(
            429,
            f"too many open streams for this client (at most {per_identity}); close one",
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
                slots.release(identity)

    try:
        # Subscribed before answering, so nothing published after the headers is missed,
        # and a Redis outage is a 503 rather than a stream that ends at once.
        pubsub = current_clients().redis_text.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(*framers)
    except BaseException:
        cleanup()
        raise
    resp = Response(
        stream_with_context(_events(pubsub, framers, cleanup, slots.stopping)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    resp.call_on_close(cleanup)
    return resp


_SLOTS_DOC = (
    f"At most {MAX_STREAM_CLIENTS} streams per API process (both kinds together; 503 past "
    "that, as when Redis is unreachable) and at most `SKYHIVE_HTTP__STREAMS_PER_IDENTITY` "
    "(2) per key (429 past that), each with `Retry-After`."
)
_SSE_HEADERS = {
    "Cache-Control": {"schema": {"const": "no-cache"}},
    "X-Accel-Buffering": {"schema": {"const": "no"}},
}
ALERTS_STREAM = {
    "description": f"An endless `text/event-stream`: `retry: {RETRY_MS}` first, then an "
    "`event: alert` frame per opened, escalated or otherwise changed alert, its `data` one "
    f"Alert object as JSON; a `: keepalive` comment after {KEEPALIVE_S:g} s without events. "
    "Only changes made while connected are sent: list the alerts first, then follow the "
    f"stream. {_SLOTS_DOC}",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "headers": _SSE_HEADERS,
}
LIVE_STREAM = {
    "description": f"An endless `text/event-stream`: `retry: {RETRY_MS}` first; an "
    "`event: drones` frame per processor batch (`data`: a JSON array of drone states, as "
    "`/api/v1/drones` gives them) and the `event: alert` frames of `/api/v1/stream/alerts`; "
    f"a `: keepalive` comment after {KEEPALIVE_S:g} s without events. One connection per "
    f"dashboard. {_SLOTS_DOC}",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "headers": _SSE_HEADERS,
}


@operation(bp.get, "/alerts", access=VIEWER, ok=ALERTS_STREAM, summary="Alert changes (SSE)")
def stream_alerts() -> Response:
    return _stream({ALERTS_LIVE: alert_frames})


@operation(bp.get, "/live", access=VIEWER, ok=LIVE_STREAM, summary="Drones and alerts (SSE)")
def stream_live() -> Response:
    """Drone batches and alert changes on one connection: what the dashboard follows."""
    return _stream({FLEET_UPDATES: drones_frame, ALERTS_LIVE: alert_frames})
