"""A steady QoS 1 load for the fault tests, recording exactly which readings the broker
acknowledged (PUBACK): those are the ones SkyHive promises never to lose.

Acknowledgements are read from paho's message handles after the fact, not taken in an
``on_publish`` callback: paho runs that callback holding its own lock, and a callback that
waits for ours while ``publish`` (holding ours) waits for paho's deadlocks the load, which
then looks exactly like a stalled pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BASE_MS = 1_795_428_000_000

Body = Callable[[int, int], dict[str, Any]]  # (drone index, seq) → the reading's fields


def in_flight(d: int, seq: int) -> dict[str, Any]:
    """A healthy drone cruising east: no alert, no jump."""
    return {
        "battery_pct": 90.0,
        "lat": 37.80 + d * 1e-3,
        "lon": -122.27 + seq * 1e-5,
        "status": "in_flight",
    }


@dataclass
class Load:
    """``drones`` drones, ``rate`` readings/s in all, over one connection (the stack runs
    with insecure devices, so one client may publish as any drone).

    For high rates: ``min_sleep_s`` paces in bursts (sleep only once at least that far
    ahead, instead of before every reading: a sleep of a few µs costs far more than it
    waits), ``inflight`` widens paho's window of unacknowledged messages (a window of 100
    caps the rate at 100 per broker round trip), ``seq0`` starts the sequence numbers
    after those of an earlier load. ``offered`` is how many readings were due by the
    schedule, so ``sent < offered`` says the generator could not keep the pace.
    ``max_unacked`` (0: no bound) models devices with a bounded outbox: a reading due while
    that many sent ones still wait for their PUBACK is not sent (counted in ``skipped``),
    so an overloaded broker's queue does not pile up without end in this process.
    ``body`` says what each reading holds besides ``seq`` and ``ts`` (``BASE_MS + seq * 1000``);
    drone ids are ``fault-<prefix>NNN``."""

    port: int
    body: Body = in_flight
    prefix: str = ""
    client_id: str = "fault-load"
    drones: int = 50
    rate: float = 200.0
    min_sleep_s: float = 0.0
    inflight: int = 100
    seq0: int = 0
    max_unacked: int = 0
    sent: int = 0
    skipped: int = 0
    started_at: float = 0.0
    stopped_at: float = 0.0
    _published: list[tuple[mqtt.MQTTMessageInfo, tuple[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _acked_upto: int = 0  # every handle before this index is acknowledged
    _offered_before: float = 0.0  # readings due at earlier rates (``set_rate``)
    _rate_since: float = 0.0

    def drone(self, d: int) -> str:
        return f"fault-{self.prefix}{d:03d}"

    def start(self) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False
        )
        self._client.max_inflight_messages_set(self.inflight)
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = self.seq0
        next_at = self.started_at = self._rate_since = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            for d in range(self.drones):
                drone = self.drone(d)
                body = orjson.dumps({"seq": seq, "ts": BASE_MS + seq * 1000, **self.body(d, seq)})
                if self.max_unacked and self._unacked() >= self.max_unacked:
                    self.skipped += 1
                else:
                    info = self._client.publish(f"skyhive/drones/{drone}/telemetry", body, qos=1)
                    self._published.append((info, (drone, seq)))
                    self.sent += 1
                next_at += 1.0 / self.rate
                delay = next_at - time.monotonic()
                if delay > self.min_sleep_s:
                    time.sleep(delay)
                if self._stop.is_set():
                    break
        self.stopped_at = time.monotonic()

    def set_rate(self, rate: float) -> None:
        """Go on at ``rate`` readings/s from now."""
        now = time.monotonic()
        self._offered_before += (now - self._rate_since) * self.rate
        self._rate_since, self.rate = now, rate

    @property
    def offered(self) -> int:
        """Readings due by the schedule from the start until publishing stopped (or now)."""
        if not self.started_at:
            return 0
        end = self.stopped_at or time.monotonic()
        return int(self._offered_before + (end - self._rate_since) * self.rate)

    def _unacked(self) -> int:
        """About how many sent readings wait for their PUBACK (PUBACKs come in order, so
        the first unacknowledged handle is the edge; cheap when called often)."""
        i, published = self._acked_upto, self._published
        while i < len(published) and published[i][0].is_published():
            i += 1
        self._acked_upto = i
        return len(published) - i

    @property
    def acked(self) -> set[tuple[str, int]]:
        """The readings the broker has acknowledged so far."""
        return {reading for info, reading in list(self._published) if info.is_published()}

    def stop(self, settle_s: float = 10.0) -> None:
        """Stop publishing; wait up to ``settle_s`` for the last acknowledgements."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and len(self.acked) < self.sent:
            time.sleep(0.1)
        self._client.disconnect()
        self._client.loop_stop()
