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
    signalled: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        # Python runs this in the main thread between two bytecodes, maybe while that thread
        # holds the event's lock (in ``stop.wait``, or in this handler's own ``stop.set`` when
        # a second signal comes): setting the event here could wait for itself forever. A
        # thread sets it; a repeated signal changes nothing.
        if signalled:
            return
        signalled.append(signum)
        faulthandler.dump_traceback_later(grace_s, exit=True)
        threading.Thread(target=stop.set, name="stop-on-signal", daemon=True).start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
