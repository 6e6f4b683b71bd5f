"""Run a simulated fleet against an MQTT broker: the I/O half of the simulator.

One loop publishes every drone's reading once per period, each drone in its own slot so the
broker sees a steady stream rather than a burst per period. The hot loop avoids per-message
overhead (precomputed topics, no per-message logging) so one core keeps up with thousands of
messages per second.

Each drone connects with its own MQTT credentials (``logins``), as a real drone would, or,
against a broker with insecure devices, one anonymous connection carries the fleet (see
``links``). The same connections take the dispatcher's commands; the loop drives their I/O
between slots (no network thread), queues the commands and applies them between slots, which
keeps every drone owned by one thread, and publishes the delivery events they cause.

A drone in a radio outage (the ``offline`` fault) publishes nothing: its readings are lost,
its delivery events wait in the drone, and commands for it wait in the queue (as a broker
holds them for a persistent session) until the link is back.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
from paho.mqtt.enums import MQTTErrorCode

from skyhive.domain.commands import InvalidCommand, parse_command
from skyhive.domain.fleet import DroneSpec
from skyhive.simulator.drone import OFFLINE_S, Event, SimDrone, make_fleet
from skyhive.simulator.faults import FaultKind, FaultRates, MessageFaults
from skyhive.simulator.links import Links

log = logging.getLogger(__name__)

TOPIC_TEMPLATE = "skyhive/drones/{drone_id}/telemetry"
EVENTS_TEMPLATE = "skyhive/drones/{drone_id}/events"
QOS = 1
CONNECT_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 10.0
PROGRESS_INTERVAL_S = 5.0
MAX_RATE_HZ = 100.0  # per drone; real drones report at a few Hz, timestamps are in ms
MIN_TICK_S = 0.005  # publish in small batches at high rates instead of sleeping per message
MAX_PUMP_S = 0.1  # network I/O at least this often, and a stop noticed within it
_ID_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """What to simulate: fleet size, per-drone publish rate, how long, and which faults.

    ``autonomous_legs=False`` keeps drones docked until commanded, so every flight is one the
    dispatcher asked for. ``time_scale`` runs simulated time that many times faster than the
    wall clock, for tests and benchmarks; telemetry is stamped with simulated time, so the
    speed its positions imply is the drone's real speed (wall-clock stamps would make a
    drone at ten times cover 150 m per stamped second and look like a GPS jump).

    ``fault_once``: every drone has these faults once, right after its first take-off (for
    tests that need a given alert now). ``offline_s``: how long a radio outage lasts, in
    wall-clock seconds whatever ``time_scale`` (the server times silence by its own clock).
    """

    drones: int = 50
    rate_hz: float = 1.0
    duration_s: float | None = None
    seed: int | None = None
    id_prefix: str = "drone"
    faults: FaultRates = field(default_factory=FaultRates)
    autonomous_legs: bool = True
    time_scale: float = 1.0
    fault_once: tuple[FaultKind, ...] = ()
    offline_s: float = OFFLINE_S

    def __post_init__(self) -> None:
        if self.drones < 1:
            raise ValueError(f"drones must be at least 1, got {self.drones}")
        if not 0.0 < self.rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate_hz must be in (0, {MAX_RATE_HZ:g}], got {self.rate_hz}")
        if self.duration_s is not None and not self.duration_s > 0.0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        if not _ID_PREFIX_RE.match(self.id_prefix):
            raise ValueError(f"id_prefix must be 1-40 of [A-Za-z0-9_-], got {self.id_prefix!r}")
        if not 0.0 < self.time_scale < math.inf:
            raise ValueError(f"time_scale must be positive and finite, got {self.time_scale}")
        if not 0.0 < self.offline_s < math.inf:
            raise ValueError(f"offline_s must be positive and finite, got {self.offline_s}")
        unknown = [k for k in self.fault_once if not isinstance(k, FaultKind)]
        if unknown:
            raise ValueError(f"fault_once takes FaultKind values, got {unknown!r}")


@dataclass(slots=True)
class SimStats:
    """Counters of a run. ``published`` counts publish calls, duplicates and events included."""

    published: int = 0
    acked: int = 0  # PUBACKs received (written by paho's network thread only)
    dropped: int = 0  # refused by paho because the outage buffer was full
    skipped: int = 0  # reading slots dropped because the loop fell a whole period behind
    duplicates: int = 0
    out_of_order: int = 0
    malformed: int = 0
    emergencies: int = 0  # drone faults started, by kind
    battery_drains: int = 0
    gps_jumps: int = 0
    overspeeds: int = 0
    altitude_excursions: int = 0
    battery_drops: int = 0
    outages: int = 0
    silent: int = 0  # readings lost in radio outages (not published)
    commands: int = 0  # commands applied to our drones
    bad_commands: int = 0  # commands for our drones that could not be applied
    events: int = 0  # delivery events published
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_STAT_OF_FAULT = {
    FaultKind.EMERGENCY: "emergencies",
    FaultKind.BATTERY_DRAIN: "battery_drains",
    FaultKind.GPS_JUMP: "gps_jumps",
    FaultKind.OVERSPEED: "overspeeds",
    FaultKind.ALTITUDE: "altitude_excursions",
    FaultKind.BATTERY_DROP: "battery_drops",
    FaultKind.OFFLINE: "outages",
}


def telemetry_topic(drone_id: str) -> str:
    return TOPIC_TEMPLATE.format(drone_id=drone_id)


def events_topic(drone_id: str) -> str:
    return EVENTS_TEMPLATE.format(drone_id=drone_id)


class Publishes(Protocol):
    """What the publish loop needs of the MQTT side (paho-like; a fake in unit tests)."""

    def publish(self, topic: str, payload: bytes, qos: int) -> Any: ...


def run_simulator(
    config: SimulatorConfig,
    mqtt_host: str,
    mqtt_port: int,
    stop_event: threading.Event | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    register: Callable[[list[DroneSpec]], None] | None = None,
    logins: Callable[[list[DroneSpec]], Mapping[str, str]] | None = None,
) -> SimStats:
    """Publish the fleet's telemetry, and obey commands, until ``duration_s`` elapses or
    ``stop_event`` is set.

    ``logins`` is called once, before connecting, with the fleet's specs (home: the station
    each drone starts at) and returns each drone's MQTT password; every drone then connects
    as itself. Without it one anonymous connection carries the fleet (the broker must admit
    insecure devices). ``register`` is called once, before the first reading, with the same
    specs, so the dispatcher knows the drones it may command; commands are subscribed to by
    then, so none sent after it are missed. Their errors propagate.

    Raises ``ConnectionError`` if the broker cannot be reached (or refuses a drone) within
    ``CONNECT_TIMEOUT_S``; after that, broker losses are ridden out (connections come back
    and queued messages are resent). ``duration_s`` counts from the connection. Stopped
    before connecting: empty stats.
    """
    stop = stop_event if stop_event is not None else threading.Event()
    stats = SimStats()
    commands: deque[tuple[str, bytes]] = deque()
    links = Links(mqtt_host, mqtt_port, stats, commands)
    publisher = _Publisher(config, links, stats, commands)
    specs = [d.spec for d in publisher.fleet]
    passwords = logins(specs) if logins is not None else None
    try:
        links.open([s.drone_id for s in specs], passwords)
        if not _wait_connected(links, stop, mqtt_host, mqtt_port):
            return stats
        if register is not None:
            register(specs)
        try:
            publisher.run(stop, progress, links.pump)
        finally:
            links.drain(DRAIN_TIMEOUT_S)  # in-flight QoS 1 publishes: a bounded wait for acks
            if stats.acked < stats.published:
                unacked = stats.published - stats.acked
                log.warning("%d publishes unacknowledged at shutdown", unacked)
    finally:
        links.close()
    return stats


def _wait_connected(links: Links, stop: threading.Event, host: str, port: int) -> bool:
    """Pump until every connection is up and subscribed to its commands; False if stopped."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while not links.all_ready:
        if stop.is_set():
            return False
        if time.monotonic() >= deadline:
            raise ConnectionError(
                f"cannot connect to MQTT broker {host}:{port}: {links.last_error}"
            )
        links.pump(0.05)
    log.info("simulator connected to the MQTT broker")
    return True


class FleetLoop(ABC):
    """The paced loop over the fleet: applies the commands received, steps each drone in its
    slot and sends what it says; how commands arrive and readings leave is the subclass's
    (MQTT here, MAVLink in ``mavlink_runner``)."""

    def __init__(self, config: SimulatorConfig, stats: SimStats) -> None:
        self.config = config
        self.stats = stats
        self.rng = random.Random(config.seed)
        self.started_ms = wall_ms()
        self.fleet: list[SimDrone] = make_fleet(
            config.drones,
            self.started_ms,
            self.rng,
            config.id_prefix,
            config.faults,
            config.autonomous_legs,
            config.offline_s,
            config.fault_once,
        )
        self.by_id = {d.drone_id: d for d in self.fleet}
        self.last_ms = [self.started_ms] * len(self.fleet)
        self.faults = MessageFaults(config.faults)

    def run(
        self,
        stop: threading.Event,
        progress: Callable[[dict[str, Any]], None] | None,
        pump: Callable[[float], None] | None = None,
    ) -> None:
        """``pump(timeout)``: the network I/O to drive while waiting for the next slot."""
        n = len(self.fleet)
        slot_s = 1.0 / (self.config.rate_hz * n)
        # The clocks start now, not when the fleet was made (connecting may have taken a while).
        self.started_ms = wall_ms()
        self.last_ms = [self.started_ms] * n
        t0 = time.monotonic()
        duration = self.config.duration_s
        end = math.inf if duration is None else t0 + duration
        next_progress = t0 + PROGRESS_INTERVAL_S
        done = 0  # slots published (or skipped) so far
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - t0) / slot_s) + 1
            if due - done > n:  # a whole period behind: skip, don't burst to catch up
                self.stats.skipped += due - n - done
                done = due - n
            self._apply_commands()
            self._publish_slots(done, due)
            done = due
            if progress is not None and now >= next_progress:
                next_progress += PROGRESS_INTERVAL_S
                progress(self._snapshot(now - t0))
            now = time.monotonic()
            wait_s = min(max(t0 + done * slot_s - now, MIN_TICK_S), max(end - now, 0.0))
            _idle(stop, wait_s, pump)
        self._flush_held()
        self._snapshot(time.monotonic() - t0)

    @abstractmethod
    def _apply_commands(self) -> None:
        """Apply the commands received since the last tick."""

    @abstractmethod
    def _publish_slots(self, first: int, end: int) -> None:
        """Step and report the drones of slots ``first`` to ``end`` (exclusive)."""

    @abstractmethod
    def _flush_held(self) -> None:
        """At the end of a run: send what the message faults held back."""

    def _message_ms(self, now_ms: int) -> int:
        """The simulated clock: the wall clock at the start, then ``time_scale`` times as fast."""
        return self.started_ms + int((now_ms - self.started_ms) * self.config.time_scale)

    def _snapshot(self, elapsed_s: float) -> dict[str, Any]:
        stats, counts = self.stats, self.faults.counts
        stats.duplicates = counts.duplicates
        stats.out_of_order = counts.out_of_order
        stats.malformed = counts.malformed
        started: Counter[FaultKind] = Counter()
        for d in self.fleet:
            if d.faults_started:
                started.update(d.faults_started)
        for kind, name in _STAT_OF_FAULT.items():
            setattr(stats, name, started[kind])
        stats.elapsed_s = round(elapsed_s, 3)
        return stats.as_dict()


class _Publisher(FleetLoop):
    """The MQTT publish loop: commands from the queue the links fill, delivery events and
    the telemetry the message faults let out published as JSON."""

    def __init__(
        self,
        config: SimulatorConfig,
        client: Publishes,
        stats: SimStats,
        commands: deque[tuple[str, bytes]],
    ) -> None:
        super().__init__(config, stats)
        self.client = client
        self.commands = commands
        self.topics = [telemetry_topic(d.drone_id) for d in self.fleet]

    def _apply_commands(self) -> None:
        """Commands received since the last tick; a bad one is logged and skipped. Those
        for a drone in a radio outage stay queued, in order, until its link is back."""
        commands = self.commands
        now_ms = wall_ms()
        waiting: list[tuple[str, bytes]] = []
        while commands:
            topic, payload = commands.popleft()
            levels = topic.split("/")  # skyhive/drones/{id}/commands, as subscribed
            drone = self.by_id.get(levels[2]) if len(levels) == 4 else None
            if drone is None:
                continue  # another simulator's drone
            if drone.is_silent(now_ms):
                waiting.append((topic, payload))
                continue
            try:
                cmd = parse_command(payload)
            except InvalidCommand as exc:
                self.stats.bad_commands += 1
                log.warning("ignoring bad command for %s: %s", drone.drone_id, exc)
                continue
            self.stats.commands += 1
            self._publish_events(drone.command(cmd, now_ms, self.rng))
        commands.extendleft(reversed(waiting))

    def _publish_events(self, events: list[Event]) -> None:
        for event in events:
            self._publish(events_topic(event["drone_id"]), orjson.dumps(event))
            self.stats.events += 1

    def _publish_slots(self, first: int, end: int) -> None:
        now_ms = wall_ms()
        n = len(self.fleet)
        fleet, topics, last_ms, rng = self.fleet, self.topics, self.last_ms, self.rng
        sim_s_per_ms = self.config.time_scale / 1000.0
        for slot in range(first, end):
            i = slot % n
            drone = fleet[i]
            events = drone.step(now_ms, max(now_ms - last_ms[i], 0) * sim_s_per_ms, rng)
            last_ms[i] = now_ms
            if events:
                self._publish_events(events)
            reading = drone.reading(self._message_ms(now_ms))
            if drone.is_silent(now_ms):
                self.stats.silent += 1  # lost in a radio outage
                continue
            for payload in self.faults.emit(drone.drone_id, reading, rng):
                self._publish(topics[i], payload)

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=QOS)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.stats.dropped += 1
        else:
            self.stats.published += 1  # MQTT_ERR_NO_CONN: queued, paho sends it on reconnect

    def _flush_held(self) -> None:
        """Out-of-order payloads still held back at the end are sent rather than lost."""
        for drone_id, payload in self.faults.flush():
            self._publish(telemetry_topic(drone_id), payload)


def _idle(stop: threading.Event, seconds: float, pump: Callable[[float], None] | None) -> None:
    """Wait ``seconds`` (less if stopped), driving the network I/O meanwhile; at least one
    round of I/O even when no time is left."""
    if pump is None:
        stop.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        pump(min(max(remaining, 0.0), MAX_PUMP_S))
        if remaining <= MAX_PUMP_S or stop.is_set():
            return


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
