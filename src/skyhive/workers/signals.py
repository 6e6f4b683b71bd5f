"""SIGINT/SIGTERM → a stop event, with a shutdown watchdog: every process of a stack stops the
same way. Kept apart from the runner so the CLI imports no server client to use it."""

from __future__ import annotations

import faulthandler
import signal
import threading
from types import FrameType

# After SIGINT/SIGTERM a process has this long to stop cleanly; then every thread's stack is
# written to stderr (its log) and it exits, so a stuck shutdown is both bounded and explained.
SHUTDOWN_GRACE_S = 45.0


def stop_on_signals(grace_s: float = SHUTDOWN_GRACE_S) -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            faulthandler.dump_traceback_later(grace_s, exit=True)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
