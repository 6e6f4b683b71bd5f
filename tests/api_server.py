"""The API behind its real server (``run_api``: waitress, deadlines, body limits) in a thread,
on the test's stores: a fixture for the tests that need real sockets."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from auth_helpers import make_key
from skyhive.api.server import run_api
from skyhive.embedded import free_port
from skyhive.settings import Settings
from skyhive.wiring import Clients

HOST = "127.0.0.1"
# Limits far above what these tests send, so only the limit under test can refuse them.
NO_RATE_LIMIT = {"per_key": "100000/second", "per_ip": "100000/second"}


@dataclass
class Api:
    settings: Settings
    clients: Clients
    port: int

    def key(self, role: str = "admin") -> str:
        return str(make_key(self.clients, role))


def serve_api(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Api]]:
    """Start ``run_api`` in a thread with settings overrides; it is stopped (through its
    ``stop`` event, as ``skyhive up``'s tests would) at teardown."""
    running: list[tuple[threading.Event, threading.Thread, Clients]] = []

    def start(**overrides: Any) -> Api:
        overrides.setdefault("rate_limit", NO_RATE_LIMIT)
        settings = make_settings(api_port=free_port(HOST), **overrides)
        stop = threading.Event()
        thread = threading.Thread(target=run_api, args=(settings, stop), daemon=True)
        thread.start()
        clients = Clients(settings)
        running.append((stop, thread, clients))
        api = Api(settings, clients, settings.api_port)
        deadline = time.monotonic() + 15
        while True:
            try:
                if _healthz(api.port) == 200:
                    return api
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    yield start
    for stop, thread, clients in running:
        stop.set()
        thread.join(15)
        clients.close()
        assert not thread.is_alive(), "run_api did not stop"


def _healthz(port: int) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()
