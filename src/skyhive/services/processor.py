"""Stream processor: telemetry from the bus → live state and alerts (Redis, MongoDB alerts).

History is the archiver's (``archiver.py``, a consumer group of its own on the same stream),
so alerts never wait behind history writes. Per batch: decode and validate; drop duplicates
by (drone_id, seq); run the alert rules over each drone's new readings
(``domain/alert_rules.py``) and fold their findings into its alerts (``services/alerting.py``);
update live state, rule memory and active alerts in one Redis pipeline (never moving a drone
backwards); acknowledge last. A crash anywhere before the acknowledgement replays the batch,
and every write is keyed so a replay is harmless. Everything a batch needs from Redis before
the writes (seen sequence numbers, registry membership, rule memory, active alerts, nearest
stations) comes in one round trip.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from skyhive.adapters.deadletters import DeadLetter
from skyhive.adapters.drone_memory import DroneMemory
from skyhive.adapters.fleet_repo import REGISTERED
from skyhive.adapters.live_state import FLEET_UPDATES, STATIONS_GEO
from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.alert_rules import AIRBORNE, Context, Finding, Memory, Zone, evaluate
from skyhive.domain.geo import haversine_m
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.bus import BusMessage
from skyhive.services.alerting import ALERTS_LIVE, AlertEngine
from skyhive.services.geofence_cache import GeofenceCache
from skyhive.services.group_consumer import GroupConsumer, run_polling
from skyhive.services.offline_watch import HEARD, OfflineWatch
from skyhive.services.periodic import start_every
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

__all__ = ["ALERTS_LIVE", "Processor", "run_processor"]

NEAREST_STATION_KM = 100.0
SPEC_REFRESH_S = 5.0  # registry changes reach the rules within this (plus the cache's TTL)


def _cell(t: Telemetry) -> tuple[float, float]:
    """A ~1 km cell: the nearest station is the same from anywhere in it, within a km."""
    return (round(t.lat or 0.0, 2), round(t.lon or 0.0, 2))


@dataclass(slots=True)
class _DroneView:
    """What a batch reads from Redis about one of its drones before writing."""

    readings: dict[int, Telemetry]  # by seq, the batch's first of each
    seen: list[bool]  # per reading: its seq was seen before
    registered: bool = True
    memory: Memory | None = None
    has_alerts: bool = False
    nearest: tuple[str, float] | None = None
    remember: bytes | None = None  # the rules' memory to store, when it changed


@dataclass(slots=True)
class BatchStats:
    received: int = 0
    invalid: int = 0
    duplicates: int = 0
    live_updates: int = 0
    alert_changes: int = 0


class Processor:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        consumer: str | None = None,
        stream: str | None = None,
        specs: SpecCache | None = None,
    ) -> None:
        self._s = settings
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._engine = AlertEngine(settings, clients)
        # Specs missing from the cache are read on the way; run_processor refreshes it.
        self.specs = specs or SpecCache(clients.fleet)
        self._zones = GeofenceCache(clients.geofences)
        self._memory = DroneMemory(clients.redis_text)
        self._nearest: dict[tuple[float, float], str] = {}  # position cell → nearest station
        self.totals = BatchStats()
        self.batch_size = settings.processor_batch_size
        self._group = GroupConsumer(
            clients.bus,
            stream or settings.telemetry_stream,
            settings.processor_group,
            self.consumer,
            self.batch_size,
            settings.processor_block_ms,
            settings.group_claim_idle_ms(),
            redis=clients.redis_bytes,  # keeps a long batch claimed (issue 12)
        )

    @property
    def clients(self) -> Clients:
        return self._c

    def setup(self) -> None:
        self._group.setup()

    def poll(self) -> int:
        """Process one batch (stale entries of dead consumers first); returns its size."""
        return self._group.poll(self.process)

    def process(self, msgs: list[BusMessage]) -> BatchStats:
        st = BatchStats(received=len(msgs))
        readings, invalid = self._decode(msgs)
        st.invalid = len(invalid)
        views = self._read_views(readings)
        fresh = self._drop_seen(views)
        st.duplicates = len(readings) - len(fresh)
        pipe = self._c.redis_text.pipeline(transaction=False)
        changes = self._alerts(fresh, views, pipe)
        st.alert_changes = len(changes)
        if readings:
            heard = time.time()
            pipe.zadd(HEARD, dict.fromkeys(views, heard), gt=True)
        st.live_updates = self._update_live(fresh, views, pipe)
        self._c.deadletters.add(invalid)
        self._add(st)
        return st

    def _decode(self, msgs: list[BusMessage]) -> tuple[list[Telemetry], list[DeadLetter]]:
        readings, invalid = [], []
        for m in msgs:
            try:
                readings.append(parse_telemetry(m.value, max_bytes=self._s.max_message_bytes * 2))
            except InvalidTelemetry as exc:
                invalid.append(DeadLetter(exc.reason, m.value, "processor"))
        return readings, invalid

    def _read_views(self, readings: list[Telemetry]) -> dict[str, _DroneView]:
        """One pipeline for everything the batch needs to know first, per drone: which
        sequence numbers were seen, registry membership, rule memory, whether it has active
        alerts, and (in the air) its nearest station."""
        by_drone: dict[str, dict[int, Telemetry]] = defaultdict(dict)
        for t in readings:
            by_drone[t.drone_id].setdefault(t.seq, t)
        if not by_drone:
            return {}
        pipe = self._c.redis_text.pipeline(transaction=False)
        airborne: list[tuple[str, Telemetry]] = []
        for drone_id, seqs in by_drone.items():
            self._memory.queue_recall(pipe, drone_id, list(seqs))
            last = max(seqs.values(), key=lambda t: (t.ts_ms, t.seq))
            if last.lat is not None and last.lon is not None and last.status in AIRBORNE:
                airborne.append((drone_id, last))
        cached = {d: hit for d, t in airborne if (hit := self._cached_nearest(t)) is not None}
        airborne = [(d, t) for d, t in airborne if d not in cached]
        for _, last in airborne:
            assert last.lat is not None and last.lon is not None
            pipe.geosearch(
                STATIONS_GEO,
                longitude=last.lon,
                latitude=last.lat,
                radius=NEAREST_STATION_KM,
                unit="km",
                sort="ASC",
                count=1,
                withdist=True,
            )
        pipe.smismember(REGISTERED, list(by_drone))
        results = iter(pipe.execute())
        views: dict[str, _DroneView] = {}
        for drone_id in by_drone:
            got = DroneMemory.recalled(next(results))
            mem = Memory.decode(orjson.loads(got.memory)) if got.memory else Memory()
            views[drone_id] = _DroneView(
                by_drone[drone_id], got.seen, memory=mem, has_alerts=got.has_alerts
            )
        for drone_id, last in airborne:
            found = next(results)
            if found:
                code, km = found[0]
                self._nearest[_cell(last)] = str(code)
                views[drone_id].nearest = (str(code), float(km))
        for drone_id, nearest in cached.items():
            views[drone_id].nearest = nearest
        for drone_id, ok in zip(by_drone, next(results), strict=True):
            views[drone_id].registered = bool(ok)
        return views

    def _cached_nearest(self, t: Telemetry) -> tuple[str, float] | None:
        """The nearest station (code, km) from the per-cell cache, when this ~1 km cell was
        searched before (stations do not move); the distance is the reading's own."""
        code = self._nearest.get(_cell(t))
        station = self._c.stations.get(code) if code else None
        if station is None or t.lat is None or t.lon is None:
            return None
        return station.code, haversine_m(t.lat, t.lon, station.lat, station.lon) / 1000.0

    @staticmethod
    def _drop_seen(views: dict[str, _DroneView]) -> list[Telemetry]:
        """Duplicates within the batch, then against each drone's recent-sequence window."""
        fresh: list[Telemetry] = []
        for view in views.values():
            pairs = zip(view.readings.values(), view.seen, strict=True)
            fresh.extend(t for t, seen in pairs if not seen)
        return fresh

    def _alerts(
        self, fresh: list[Telemetry], views: dict[str, _DroneView], pipe: Any
    ) -> list[AlertUpdate]:
        """Run the rules over each drone's readings newer than the last judged (oldest
        first), remember what they need next time, and fold the findings into the alerts of
        drones that have some or got some."""
        by_drone: dict[str, list[Telemetry]] = defaultdict(list)
        for t in fresh:
            by_drone[t.drone_id].append(t)
        # Only registered drones have specs: the others must not cost a registry read.
        specs = self.specs.get_many([d for d in by_drone if views[d].registered])
        zones = self._zones.current()
        config = self._s.alerts
        findings: list[tuple[str, Finding]] = []
        for drone_id, items in by_drone.items():
            view = views[drone_id]
            mem = view.memory or Memory()
            spec = specs.get(drone_id)
            th = config.for_model(spec.model if spec else None)
            mine: list[Finding] = []
            for t in sorted(items, key=lambda t: (t.ts_ms, t.seq)):
                if not mem.is_newer(t):
                    continue  # out of order or replayed: history only
                inside = None
                if t.lat is not None and t.lon is not None:
                    hits = zones.violations(t.lat, t.lon, t.alt_m, t.ts)
                    inside = tuple(Zone(z.id, z.name) for z in hits)
                ctx = Context(th, spec, view.nearest, inside)
                mine += evaluate(t, ctx, mem)
            if mine:
                view.remember = orjson.dumps(mem.encode())
            if view.has_alerts or any(f.severity for f in mine):
                findings += [(drone_id, f) for f in mine]
        return self._engine.apply(findings, pipe)

    def _update_live(self, fresh: list[Telemetry], views: dict[str, _DroneView], pipe: Any) -> int:
        """Queue the live state, seen marks and rule memory on ``pipe`` (which already holds
        the batch's other Redis writes) and run it."""
        latest: dict[str, Telemetry] = {}
        for t in fresh:
            cur = latest.get(t.drone_id)
            if cur is None or t.newer_than(cur.ts_ms, cur.seq):
                latest[t.drone_id] = t
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        live = self._c.live
        first = len(pipe)
        for t in latest.values():
            live.queue_apply(pipe, t, now, registered=views[t.drone_id].registered)
        seqs: dict[str, list[int]] = defaultdict(list)
        for t in fresh:
            seqs[t.drone_id].append(t.seq)
        window = self._s.dedup_window
        for drone_id, drone_seqs in seqs.items():
            remember = views[drone_id].remember
            self._memory.queue_remember(pipe, drone_id, drone_seqs, window, remember)
        results = pipe.execute()[first:]
        applied = [t for t, ok in zip(latest.values(), results, strict=False) if ok == 1]
        if applied:
            updates = [{**t.live_fields(), "updated_at": now} for t in applied]
            self._c.redis_text.publish(FLEET_UPDATES, orjson.dumps(updates))
        return len(applied)

    def _add(self, st: BatchStats) -> None:
        for name in BatchStats.__slots__:
            setattr(self.totals, name, getattr(self.totals, name) + getattr(st, name))


Lane = Literal["all", "routine", "urgent"]


def _poll_forever(proc: Processor, name: str, linger_s: float, stop: threading.Event) -> None:
    t = proc.totals
    run_polling(
        f"{name} {proc.consumer}",
        proc.setup,
        proc.poll,
        proc.batch_size,
        linger_s,
        stop,
        lambda: (
            f"{t.received} received, {t.duplicates} duplicates, {t.invalid} invalid, "
            f"{t.alert_changes} alert changes"
        ),
    )


def run_processor(settings: Settings, stop: threading.Event, lane: Lane = "all") -> None:
    """The routine lane (all telemetry, the offline watch) and the urgent lane (emergencies,
    on their own stream, judged as soon as they arrive, never behind a backlog of routine
    telemetry; the routine lane later finds them seen and skips them). ``all`` runs both in
    one process; `skyhive up` runs them apart, so the urgent lane never waits for the
    routine one's share of the interpreter."""
    clients = Clients(settings)
    specs = SpecCache(clients.fleet)
    helpers = [start_every(SPEC_REFRESH_S, specs.refresh, stop, "specs")]
    lanes: list[tuple[Processor, str, float, threading.Event]] = []
    if lane != "urgent":
        routine = Processor(settings, clients, specs=specs)
        watch = OfflineWatch(settings, clients, AlertEngine(settings, clients), specs)
        helpers.append(start_every(settings.alerts_sweep_s, watch.sweep, stop, "offline-watch"))
        lanes.append((routine, "processor", settings.processor_linger_ms / 1000.0, stop))
    if lane != "routine":
        urgent = Processor(settings, clients, stream=settings.urgent_stream, specs=specs)
        lanes.append((urgent, "urgent lane", 0.0, stop))
    first, *others = lanes
    for args in others:
        helpers.append(threading.Thread(target=_poll_forever, args=args, name=args[1]))
        helpers[-1].start()
    try:
        _poll_forever(*first)
    finally:
        stop.set()  # the helpers must end before their clients close
        for thread in helpers:
            thread.join(timeout=30)
        clients.close()
