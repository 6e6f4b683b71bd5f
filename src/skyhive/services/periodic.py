"""Periodic background work, for roles and for services that keep a helper thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def every(period_s: float, work: Callable[[], object], stop: threading.Event) -> None:
    """Call ``work`` every ``period_s`` until ``stop``; a failure is logged and retried at the
    next period (a dead helper thread would go unnoticed)."""
    while not stop.wait(period_s):
        try:
            work()
        except Exception:
            log.exception("%s failed; trying again in %.0fs", work.__name__, period_s)


def start_every(
    period_s: float, work: Callable[[], object], stop: threading.Event, name: str
) -> threading.Thread:
    thread = threading.Thread(target=every, args=(period_s, work, stop), name=name)
    thread.start()
    return thread
