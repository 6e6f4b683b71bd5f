"""SIGINT/SIGTERM stop a process even when the signal comes while its main thread holds the
stop event's lock: a second signal during the first one's handler, or one during
``stop.wait``. Setting the event in the handler itself then waited for itself forever (a
processor hung at shutdown until the watchdog, seen under `skyhive up` killed with -9)."""

from __future__ import annotations

import subprocess
import sys

# The main thread holds the event's lock when the signals come, as it does inside
# ``Event.wait``/``Event.set``; it must still see the event set once it lets go.
_HELD = """
import os, signal, sys, time
from skyhive.workers.signals import stop_on_signals
stop = stop_on_signals(grace_s=30)
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs here, lock held
    os.kill(os.getpid(), signal.SIGTERM)  # and again: a repeated signal
    time.sleep(0.05)
print("set" if stop.wait(5) else "not set", flush=True)
"""


def test_a_signal_while_the_stop_lock_is_held_still_stops() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HELD], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "set"
