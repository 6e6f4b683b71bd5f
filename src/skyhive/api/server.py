"""Serve the API with gunicorn, started from Python so `skyhive api` needs no other command.

One worker process with eight threads: the views are I/O-bound (Redis, MongoDB), threads
share one connection pool per store, and Prometheus metrics stay correct without gunicorn's
multiprocess mode. Scale out by running more `skyhive api` processes behind a balancer.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from functools import cached_property
from typing import Any, NoReturn

from flask import Flask
from gunicorn.app.base import BaseApplication

from skyhive.settings import Settings
from skyhive.wiring import Clients


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": bind_address(settings.host, settings.api_port),
        "workers": 1,
        "worker_class": "gthread",
        "threads": 8,
        "timeout": 30,
        "graceful_timeout": 5,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "skyhive-api",
        # gunicorn >= 25.1 opens a control socket at a per-user path by default; two APIs on
        # one machine would fight over it, and nothing here uses it.
        "control_socket_disable": True,
    }


class ApiServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        known = self.cfg.settings
        for key, value in gunicorn_options(self._settings).items():
            if key in known:  # options an older gunicorn lacks are skipped, not fatal
                self.cfg.set(key, value)

    def load(self) -> Flask:
        # Runs in the worker, after fork: no connection is ever shared across processes.
        from skyhive.api import create_app

        return create_app(self._settings, prebuilt_clients(self._settings))


def prebuilt_clients(settings: Settings) -> Clients:
    """Clients with every lazy member built now, before 8 threads race to build them (two
    at once would each make a connection pool and leak one). Building opens no connection."""
    clients = Clients(settings)
    for name, member in vars(Clients).items():
        if isinstance(member, cached_property):
            getattr(clients, name)
    return clients


def run_api(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (gunicorn's own handlers: graceful, 5 s) or until ``stop``.

    Must be called from the main thread, as gunicorn's master installs signal handlers.
    ``stop`` is honoured by sending this process SIGTERM, i.e. the same graceful path.
    Returns normally on a clean shutdown; exits non-zero if gunicorn fails to start.
    """
    master_pid = os.getpid()
    done = threading.Event()
    if stop is not None:
        if stop.is_set():
            return

        def relay() -> None:
            while not done.is_set():
                if stop.wait(0.25) and not done.is_set():
                    os.kill(master_pid, signal.SIGTERM)
                    return

        threading.Thread(target=relay, name="api-stop", daemon=True).start()
    try:
        ApiServer(settings).run()
    except SystemExit as exc:
        if os.getpid() != master_pid:
            _exit_worker(exc)
        if exc.code not in (0, None):
            raise
    finally:
        done.set()


def _exit_worker(exc: SystemExit) -> NoReturn:
    """A forked worker leaves gunicorn by SystemExit, which would otherwise unwind through
    the caller's stack and run the master's cleanup code (stopping servers, say) in the
    worker. End the worker right here instead, with the exit status gunicorn chose."""
    sys.stdout.flush()
    sys.stderr.flush()
    code = exc.code
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
