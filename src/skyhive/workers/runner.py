"""The one worker runner: how every long-running role process runs.

A role (``workers/<role>.py``) declares a :class:`Worker`: what to wait for, the work (each
piece a function of the stop event) and what to close. The runner does the rest, the same way
for every role: builds the clients from the settings once, retries the setup until the servers
answer, runs the work on threads, and on the way out stops every thread before the clients
close. The stop event comes from ``signals.stop_on_signals`` (SIGINT/SIGTERM, with a shutdown
watchdog).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from skyhive.services import periodic
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

# A failed round backs off to this at most by default: a server that `skyhive up` restarts is
# back within seconds, and a longer wait would only delay the resume.
RETRY_MAX_S = 2.0
STATUS_EVERY_S = 30.0

Work = Callable[[threading.Event], object]
T = TypeVar("T")


@dataclass
class Worker:
    """What a role runs. ``work``: (thread name, function of the stop event); the first runs
    on the caller's thread (an error there ends the process, so the supervisor restarts it),
    the others on threads of their own."""

    name: str
    work: Sequence[tuple[str, Work]]
    setup: Callable[[], object] | None = None  # retried until the servers answer
    close: Callable[[], object] | None = None  # once every thread has ended
    # Bulk work (history) that may wait: it runs at ``Settings.bulk_nice`` so that, on a
    # machine short of CPU, dispatch, alerts, live state and the API go first.
    bulk: bool = False


def consumer_name() -> str:
    """This process's name in the bus's consumer groups: unique per process and host."""
    return f"{socket.gethostname()}-{os.getpid()}"


def run(settings: Settings, stop: threading.Event, build: Callable[[Clients], Worker]) -> None:
    """Run the worker ``build`` declares until ``stop`` (or until its first work returns)."""
    clients = Clients(settings)
    worker: Worker | None = None
    threads: list[threading.Thread] = []
    try:
        worker = build(clients)
        if worker.bulk and settings.bulk_nice:
            with contextlib.suppress(OSError):  # not allowed here: runs as it is
                os.nice(settings.bulk_nice)
        if worker.setup is not None and not wait_for_servers(worker.name, worker.setup, stop):
            return
        (_, first), *others = worker.work
        for name, work in others:
            threads.append(threading.Thread(target=work, args=(stop,), name=name))
            threads[-1].start()
        first(stop)
    finally:
        stop.set()  # also on an error: the threads must end before their clients close
        for thread in threads:
            thread.join(timeout=30)
        try:
            if worker is not None and worker.close is not None:
                worker.close()
        finally:
            clients.close()


def wait_for_servers(name: str, setup: Callable[[], object], stop: threading.Event) -> bool:
    """Call ``setup`` until it succeeds (the servers may still be starting), once a second;
    False if ``stop`` came first."""
    while not stop.is_set():
        try:
            setup()
            return True
        except Exception as exc:
            log.warning("%s waiting for the servers: %s", name, exc)
            stop.wait(1.0)
    return False


def loop(
    name: str,
    step: Callable[[], T],
    *,
    pause: Callable[[T, threading.Event], object] | None = None,
    status: Callable[[], str] | None = None,
    retry_s: tuple[float, float] = (0.5, RETRY_MAX_S),
) -> Work:
    """Work that calls ``step`` until stop, then ``pause`` with what it returned; a failed
    step is logged and retried after a backoff from ``retry_s[0]`` doubling up to
    ``retry_s[1]``. ``status`` is logged every 30 s."""

    def run_loop(stop: threading.Event) -> None:
        log.info("%s running", name)
        first, cap = retry_s
        backoff = first
        last_log = time.monotonic()
        while not stop.is_set():
            try:
                n = step()
                backoff = first
                if pause is not None:
                    pause(n, stop)
            except Exception:
                log.exception("%s failed; retrying in %.1fs", name, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, cap)
            if status is not None and time.monotonic() - last_log > STATUS_EVERY_S:
                log.info("%s: %s", name, status())
                last_log = time.monotonic()

    return run_loop


def polling(
    name: str,
    poll: Callable[[], int],
    full_batch: int,
    linger_s: float,
    status: Callable[[], str] | None = None,
) -> Work:
    """A batch consumer's loop: after a small batch it lingers ``linger_s`` (per-batch round
    trips dominate small batches); a failed batch stays pending and is read again."""

    def linger(n: int, stop: threading.Event) -> None:
        if 0 < n < full_batch // 4:
            stop.wait(linger_s)

    return loop(name, poll, pause=linger, status=status)


def every(period_s: float, work: Callable[[], object]) -> Work:
    """Work that calls ``work`` every ``period_s`` until stop (``services/periodic.py``)."""
    return partial(periodic.every, period_s, work)
