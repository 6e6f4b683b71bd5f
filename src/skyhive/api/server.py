"""Serve the API with waitress, started from Python so `skyhive api` needs no other command.

Why waitress and not gunicorn: waitress's I/O loop (one thread, ``poll``) reads each request
whole, headers and body, chunked or not, before it hands the request to a worker thread. A
client that sends slowly costs a socket, never a thread. gunicorn's gthread worker gives a
connection to a thread as soon as it is readable, and that thread then blocks on the rest of
the headers with no deadline: twelve half-sent requests held all eight threads and /healthz
timed out. gunicorn's async workers (gevent, eventlet) would fix that, but by monkey-patching
the threads and sockets that the Redis and MongoDB clients rely on.

On top of waitress this module adds what waitress lacks or does in its own way:

- deadlines (``settings.http``): the headers must arrive within ``header_timeout_s`` of the
  connection opening (or of a later request's first byte), the whole request within
  ``request_timeout_s``, and a connection that makes no
  progress (or idles between requests) is closed after ``idle_timeout_s``; checked every
  second by the I/O loop, so the timed-out sockets are dropped without any thread;
- body limits per route (``api/body_limit.py``) while reading: a declared ``Content-Length``
  over the route's limit is refused as soon as the headers are in, a chunked body as soon as
  it passes the limit (plus room for the chunk framing);
- waitress's own errors (400, 413, 431, 500...) in the app's JSON error format;
- a graceful stop: stop accepting, end the event streams, give in-flight requests
  ``graceful_timeout_s``, then close.

One process, ``settings.http.threads`` (8) worker threads: the views are I/O-bound (Redis,
MongoDB), threads share one connection pool per store, and Prometheus metrics stay correct
in one process. An SSE stream holds a thread for as long as it lasts (``api/stream.py``
caps them). Scale out by running more `skyhive api` processes behind a balancer.
"""

from __future__ import annotations

import copy
import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from functools import cached_property
from types import FrameType
from typing import Any

from flask import Flask
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.adjustments import Adjustments  # type: ignore[import-untyped]
from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.parser import HTTPRequestParser  # type: ignore[import-untyped]
from waitress.server import TcpWSGIServer  # type: ignore[import-untyped]
from waitress.task import ErrorTask, ThreadedTaskDispatcher  # type: ignore[import-untyped]
from waitress.utilities import RequestEntityTooLarge  # type: ignore[import-untyped]

from skyhive.api.body_limit import body_limit_for, too_large_message
from skyhive.api.responses import EXTENSION_KEY, json_bytes
from skyhive.settings import HttpConfig, Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

LOOP_TIMEOUT_S = 1.0  # the I/O loop wakes at least this often (deadlines, stop)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wire_body_cap(limit: int) -> int:
    """What the server reads of a chunked body before refusing it: the route's limit plus
    room for the chunk framing (a few bytes per chunk). The app then checks the exact
    de-chunked length, which waitress gives it as ``Content-Length``."""
    return limit + limit // 8 + 4096


def waitress_options(settings: Settings) -> dict[str, Any]:
    http = settings.http
    largest = max(http.body_limit_bytes, http.ingest_body_limit_bytes)
    options: dict[str, Any] = {
        "listen": bind_address(settings.host, settings.api_port),
        "threads": http.threads,
        "connection_limit": http.connection_limit,
        # Deadlines are this module's (fractions of a second, per phase); waitress's own
        # inactivity timeout is only a backstop.
        "channel_timeout": int(http.idle_timeout_s) + 1,
        "cleanup_interval": 1,
        "asyncore_loop_timeout": 1,
        "asyncore_use_poll": True,  # select() stops at file descriptor 1024
        "max_request_body_size": wire_body_cap(largest),
        "ident": "skyhive",
        "expose_tracebacks": False,
    }
    if http.trusted_proxy:
        options |= {
            "trusted_proxy": http.trusted_proxy,
            "trusted_proxy_count": http.trusted_proxy_count,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
        }
    return options


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """Waitress's own refusals (a malformed request, a body or headers too large) in the
    app's error format, ``{"error": {"code", "message"}}``."""

    def execute(self) -> None:
        err = self.request.error
        limit = getattr(self.request, "body_limit", None)
        if isinstance(err, RequestEntityTooLarge) and limit is not None:
            message = too_large_message(limit)
        else:
            message = f"{err.reason}: {err.body}" if err.body else str(err.reason)
        body = json_bytes({"error": {"code": err.code, "message": message}})
        self.status = f"{err.code} {err.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _server_class(http: HttpConfig, adj: Adjustments) -> type[TcpWSGIServer]:
    """The waitress server, its connections and its request parser, bound to ``http``."""
    # One copy of the adjustments per route limit: the parser reads its body cap from them.
    capped: dict[int, Adjustments] = {}
    for limit in {http.body_limit_bytes, http.ingest_body_limit_bytes}:
        capped[limit] = copy.copy(adj)
        capped[limit].max_request_body_size = wire_body_cap(limit)

    class Request(HTTPRequestParser):  # type: ignore[misc]
        """Knows its route's body limit once the headers are in, and reads no further than
        it allows."""

        body_limit: int | None = None

        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            limit = body_limit_for(self.path, http)
            self.body_limit = limit
            self.adj = capped[limit]
            if not self.chunked and self.content_length > limit:
                self.error = RequestEntityTooLarge(too_large_message(limit))
                self.completed = True
                self.expect_continue = False  # no "100 Continue" for a refused body

    class Channel(HTTPChannel):  # type: ignore[misc]
        """One client connection; remembers when its unfinished request began (for a new
        connection, when it was accepted: its first headers are due as soon as it opens)."""

        parser_class = Request
        error_task_class = JsonErrorTask
        request_started: float | None = None
        silent = True  # nothing received yet

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.request_started = time.monotonic()

        def received(self, data: bytes) -> bool:
            self.silent = False
            if self.request is None:
                self.request_started = time.monotonic()
            result: bool = super().received(data)
            if self.request is None:
                self.request_started = None
            return result

        def overdue(self, now: float, wall_now: float) -> str | None:
            """Why this connection should be closed now, if it should."""
            if self.requests:  # being answered (an event stream can last hours)
                return None
            started = self.request_started
            if self.silent and started is not None and now - started > http.header_timeout_s:
                return "headers"
            if self.request is not None and started is not None:
                if not self.request.headers_finished and now - started > http.header_timeout_s:
                    return "headers"
                if now - started > http.request_timeout_s:
                    return "request"
            if wall_now - self.last_activity > http.idle_timeout_s:
                return "idle"
            return None

    class Server(TcpWSGIServer):  # type: ignore[misc]
        channel_class = Channel

        def maintenance(self, now: float) -> None:
            """Close the connections past a deadline (runs in the I/O loop, every second)."""
            mono = time.monotonic()
            for channel in list(self.active_channels.values()):
                if channel.will_close:
                    continue
                reason = channel.overdue(mono, now)
                if reason is not None:
                    log.debug("closing %s: %s deadline passed", channel.addr, reason)
                    channel.will_close = True

    return Server


def prebuilt_clients(settings: Settings) -> Clients:
    """Clients with every lazy member built now, before 8 threads race to build them (two
    at once would each make a connection pool and leak one). Building opens no connection."""
    clients = Clients(settings)
    for name, member in vars(Clients).items():
        if isinstance(member, cached_property):
            getattr(clients, name)
    return clients


class ApiServer:
    """The app behind waitress, listening once constructed; :meth:`serve` runs the I/O loop
    in the calling thread until :meth:`stop`."""

    def __init__(self, settings: Settings, app: Flask | None = None) -> None:
        if app is None:
            from skyhive.api import create_app

            app = create_app(settings, prebuilt_clients(settings))
        self.settings = settings
        self.app = app
        self._stopping = threading.Event()
        self._closed = False
        self._lock = threading.RLock()  # stop() may run in a signal handler, mid-close
        self._map: dict[int, Any] = {}
        adj = Adjustments(**waitress_options(settings))
        self._dispatcher = ThreadedTaskDispatcher()
        server_class = _server_class(settings.http, adj)
        self._servers: list[Any] = []
        try:
            for sockinfo in adj.listen:
                self._servers.append(
                    server_class(
                        app, self._map, dispatcher=self._dispatcher, adj=adj, sockinfo=sockinfo
                    )
                )
        except BaseException:
            self._close_all()
            raise
        self._dispatcher.set_thread_count(adj.threads)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(s.effective_host, int(s.effective_port)) for s in self._servers]

    def stop(self) -> None:
        """Ask :meth:`serve` to stop (any thread, or a signal handler)."""
        self._stopping.set()
        with self._lock:  # never write to a trigger's descriptor once closed (and reused)
            if not self._closed:
                for server in self._servers:
                    server.pull_trigger()

    def serve(self) -> None:
        http = self.settings.http
        log.info(
            "serving on %s (waitress, %d threads)",
            ", ".join(f"http://{bind_address(h, p)}" for h, p in self.addresses),
            http.threads,
        )
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=LOOP_TIMEOUT_S, map=self._map, use_poll=True, count=1)
        finally:
            self._shutdown(http.graceful_timeout_s)

    def _shutdown(self, grace_s: float) -> None:
        """Stop accepting, end the event streams, let in-flight requests finish (at most
        ``grace_s``), then close every connection and the stores' clients."""
        from skyhive.api.stream import stop_streams

        deadline = time.monotonic() + grace_s
        for server in self._servers:
            wasyncore.dispatcher.close(server)  # the listening socket only
        stop_streams(self.app)
        while time.monotonic() < deadline and any(
            ch.requests for s in self._servers for ch in list(s.active_channels.values())
        ):
            wasyncore.loop(timeout=0.05, map=self._map, use_poll=True, count=1)
        self._dispatcher.shutdown(
            cancel_pending=True, timeout=max(0.1, deadline - time.monotonic())
        )
        self._close_all()
        clients = self.app.extensions.get(EXTENSION_KEY)
        if isinstance(clients, Clients):
            clients.close()
        log.info("stopped serving")

    def _close_all(self) -> None:
        with self._lock:
            self._closed = True
            wasyncore.close_all(self._map, ignore_all=True)


def _raise_file_limit(wanted: int) -> None:
    """Room for ``connection_limit`` sockets plus the stores' connections and files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def run_api(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (graceful, ``settings.http.graceful_timeout_s``) or until
    ``stop`` is set.

    Signals are caught only when called from the main thread (a previous Python handler is
    still called first); from another thread, ``stop`` is the way to end it. Returns on a
    clean shutdown; exits non-zero (SystemExit) if the address cannot be bound.
    """
    if stop is not None and stop.is_set():
        return
    _raise_file_limit(settings.http.connection_limit + 1024)
    bind = bind_address(settings.host, settings.api_port)
    try:
        server = ApiServer(settings)
    except OSError as exc:
        raise SystemExit(f"skyhive api: cannot listen on {bind}: {exc}") from None

    previous: dict[int, SignalHandler] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; stopping the API", signal.Signals(signum).name)
            before = previous.get(signum)
            if callable(before) and before is not signal.default_int_handler:
                before(signum, frame)
            server.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)

    done = threading.Event()
    if stop is not None:

        def relay() -> None:
            while not done.is_set():
                if stop.wait(0.25):
                    server.stop()
                    return

        threading.Thread(target=relay, name="api-stop", daemon=True).start()
    try:
        server.serve()
    finally:
        done.set()
        for number, handler in previous.items():
            signal.signal(number, handler)
