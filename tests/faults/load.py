"""A steady QoS 1 load for the fault tests, recording exactly which readings the broker
acknowledged (PUBACK): those are the ones SkyHive promises never to lose."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BASE_MS = 1_795_428_000_000


@dataclass
class Load:
    """``drones`` drones, ``rate`` readings/s in all, over one connection (the stack runs
    with insecure devices, so one client may publish as any drone)."""

    port: int
    drones: int = 50
    rate: float = 200.0
    acked: set[tuple[str, int]] = field(default_factory=set)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="fault-load", clean_session=False
        )
        self._client.max_inflight_messages_set(100)
        self._pending: dict[int, tuple[str, int]] = {}
        self._client.on_publish = self._on_publish
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:
            reading = self._pending.pop(mid, None)
            if reading is not None:
                self.acked.add(reading)

    def _run(self) -> None:
        seq = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            for d in range(self.drones):
                drone = f"fault-{d:03d}"
                body = orjson.dumps(
                    {
                        "seq": seq,
                        "ts": BASE_MS + seq * 1000,
                        "battery_pct": 90.0,
                        "lat": 37.80 + d * 1e-3,
                        "lon": -122.27 + seq * 1e-5,
                        "status": "in_flight",
                    }
                )
                with self._lock:
                    info = self._client.publish(f"skyhive/drones/{drone}/telemetry", body, qos=1)
                    self._pending[info.mid] = (drone, seq)
                    self.sent += 1
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if self._stop.is_set():
                    break

    def stop(self, settle_s: float = 10.0) -> None:
        """Stop publishing; wait up to ``settle_s`` for the last acknowledgements."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.1)
        self._client.disconnect()
        self._client.loop_stop()
