"""Timestamps every ``deliver`` command on ``skyhive/drones/+/commands``, in a process of its
own so the benchmark's HTTP client threads never delay the timestamp (one GIL each).

``python -m skyhive.bench.command_watch PORT OUT``: prints ``ready`` once subscribed, then
appends ``delivery_id epoch_seconds`` lines to OUT (flushed per message) until terminated.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(port: int, out_path: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    subscribed = threading.Event()
    with open(out_path, "a", encoding="utf-8") as out:

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            now = time.time()
            cmd = orjson.loads(m.payload)
            if cmd.get("type") == "deliver":
                out.write(f"{cmd['delivery_id']} {now:.6f}\n")
                out.flush()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-dispatch-watch")
        sub.on_message = on_message
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.connect("127.0.0.1", port)
        sub.subscribe("skyhive/drones/+/commands", qos=1)
        sub.loop_start()
        if not subscribed.wait(30):
            raise SystemExit("command watch: no SUBACK from the broker")
        print("ready", flush=True)
        stop.wait()
        sub.loop_stop()
        sub.disconnect()


def read(path: str | Path) -> dict[str, float]:
    """What a watcher wrote: delivery id → first time its command was seen."""
    seen: dict[str, float] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            delivery_id, at = line.split()
            seen.setdefault(delivery_id, float(at))
    return seen


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
