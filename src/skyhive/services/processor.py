"""Stream processor: telemetry from the bus → live state and alerts (Redis, MongoDB alerts).

History is the archiver's (``archiver.py``, a consumer group of its own on the same stream),
so alerts never wait behind history writes. Per batch: decode and validate; drop duplicates
by (drone_id, seq); run the alert rules over each drone's new readings
(``domain/alert_rules.py``) and the readings of declared flights through the conformance
check (``services/conformance.py``), and fold their findings into its alerts
(``services/alerting.py``);
update live state, rule memory and active alerts in one round trip (the ``FleetState`` port;
never moving a drone backwards); acknowledge last. A crash anywhere before the
acknowledgement replays the batch, and every write is keyed so a replay is harmless.
Everything a batch needs to know before the writes (seen sequence numbers, registry
membership, rule memory, active alerts, nearest stations) comes in one round trip too, and
the batch's declared flights in one more.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import orjson

from skyhive.domain.alert_lifecycle import AlertUpdate
from skyhive.domain.alert_rules import AIRBORNE, Context, Finding, Memory, Zone, evaluate
from skyhive.domain.geo import haversine_m
from skyhive.domain.telemetry import InvalidTelemetry, Telemetry, parse_telemetry
from skyhive.ports.active_alerts import AlertSwap
from skyhive.ports.bus import Bus, BusMessage
from skyhive.ports.clock import Clock
from skyhive.ports.deadletters import DeadLetter, DeadLetterSink
from skyhive.ports.fleet_state import FleetState, FleetWrite
from skyhive.ports.geofences import GeofenceSource
from skyhive.ports.stations import StationLookup
from skyhive.services.alerting import AlertEngine
from skyhive.services.conformance import ConformanceWatch, Judged
from skyhive.services.geofence_cache import GeofenceCache
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Processor"]

NEAREST_STATION_KM = 100.0


def _cell(t: Telemetry) -> tuple[float, float]:
    """A ~1 km cell: the nearest station is the same from anywhere in it, within a km."""
    return (round(t.lat or 0.0, 2), round(t.lon or 0.0, 2))


@dataclass(slots=True)
class _DroneView:
    """What a batch knows about one of its drones before writing."""

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
        *,
        bus: Bus,
        fleet: FleetState,
        engine: AlertEngine,
        specs: SpecCache,
        geofences: GeofenceSource,
        stations: StationLookup,
        deadletters: DeadLetterSink,
        clock: Clock,
        consumer: str,
        stream: str | None = None,
        conformance: ConformanceWatch | None = None,
    ) -> None:
        """``specs``: a registry cache someone keeps fresh (specs missing from it are read on
        the way). ``conformance``: checks readings against the declared flights (off: None)."""
        self._conformance = conformance
        self._s = settings
        self.consumer = consumer
        self._fleet = fleet
        self._engine = engine
        self.specs = specs
        self._zones = GeofenceCache(geofences, clock)
        self._stations = stations
        self._dead = deadletters
        self._clock = clock
        self._nearest: dict[tuple[float, float], str] = {}  # position cell → nearest station
        self.totals = BatchStats()
        self.batch_size = settings.processor_batch_size
        self._group = GroupConsumer(
            bus,
            stream or settings.telemetry_stream,
            settings.processor_group,
            self.consumer,
            self.batch_size,
            settings.processor_block_ms,
            settings.group_claim_idle_ms(),
            clock,
            keep_claimed=True,  # a long batch is not taken over (issue 12)
        )

    def setup(self) -> None:
        self._group.setup()
        self._engine.rebuild_grounding()

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
        now = self._clock.now()
        write = FleetWrite(updated_at=now, heard_at=now)
        judged = self._judge_conformance(fresh, views)
        changes, write.alerts = self._alerts(fresh, views, judged.findings if judged else {})
        st.alert_changes = len(changes)
        write.heard = list(views)
        st.live_updates = self._update_live(fresh, views, write)
        if judged is not None and self._conformance is not None:
            self._conformance.settle(judged)  # last: a replay takes the same steps again
        self._dead.add(invalid)
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
        """Everything the batch needs to know first, per drone, in one round trip: which
        sequence numbers were seen, registry membership, rule memory, whether it has active
        alerts, and (in the air) its nearest station."""
        by_drone: dict[str, dict[int, Telemetry]] = defaultdict(dict)
        for t in readings:
            by_drone[t.drone_id].setdefault(t.seq, t)
        if not by_drone:
            return {}
        airborne: dict[str, Telemetry] = {}
        for drone_id, seqs in by_drone.items():
            last = max(seqs.values(), key=lambda t: (t.ts_ms, t.seq))
            if last.lat is not None and last.lon is not None and last.status in AIRBORNE:
                airborne[drone_id] = last
        cached = {d: hit for d, t in airborne.items() if (hit := self._cached_nearest(t))}
        near = {d: (t.lat or 0.0, t.lon or 0.0) for d, t in airborne.items() if d not in cached}
        recall = self._fleet.recall(
            {d: list(seqs) for d, seqs in by_drone.items()}, near, NEAREST_STATION_KM
        )
        views: dict[str, _DroneView] = {}
        for drone_id, got in recall.drones.items():
            mem = Memory.decode(orjson.loads(got.memory)) if got.memory else Memory()
            views[drone_id] = _DroneView(
                by_drone[drone_id], got.seen, got.registered, mem, got.has_alerts
            )
        for drone_id, (code, km) in recall.nearest.items():
            self._nearest[_cell(airborne[drone_id])] = code
            views[drone_id].nearest = (code, km)
        for drone_id, nearest in cached.items():
            views[drone_id].nearest = nearest
        return views

    def _cached_nearest(self, t: Telemetry) -> tuple[str, float] | None:
        """The nearest station (code, km) from the per-cell cache, when this ~1 km cell was
        searched before (stations do not move); the distance is the reading's own."""
        code = self._nearest.get(_cell(t))
        station = self._stations.get(code) if code else None
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

    def _judge_conformance(
        self, fresh: list[Telemetry], views: dict[str, _DroneView]
    ) -> Judged | None:
        if self._conformance is None:
            return None
        near = {d: v.nearest[0] for d, v in views.items() if v.nearest is not None}
        return self._conformance.judge(fresh, near)

    def _alerts(
        self,
        fresh: list[Telemetry],
        views: dict[str, _DroneView],
        conformance: dict[str, list[Finding]],
    ) -> tuple[list[AlertUpdate], list[AlertSwap]]:
        """Run the rules over each drone's readings newer than the last judged (oldest
        first), remember what they need next time, and fold the findings into the alerts of
        drones that have some or got some; returns the active alerts to record with the
        batch."""
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
            mine += conformance.get(drone_id, [])
            if mine:
                view.remember = orjson.dumps(mem.encode())
            if view.has_alerts or any(f.severity for f in mine):
                findings += [(drone_id, f) for f in mine]
        return self._engine.fold(findings)

    def _update_live(
        self, fresh: list[Telemetry], views: dict[str, _DroneView], write: FleetWrite
    ) -> int:
        """Add the live states, seen marks and rule memory to the batch's other writes, and
        make them all."""
        latest: dict[str, Telemetry] = {}
        for t in fresh:
            cur = latest.get(t.drone_id)
            if cur is None or t.newer_than(cur.ts_ms, cur.seq):
                latest[t.drone_id] = t
        write.latest = [(t, views[t.drone_id].registered) for t in latest.values()]
        seqs: dict[str, list[int]] = defaultdict(list)
        for t in fresh:
            seqs[t.drone_id].append(t.seq)
        write.seen = dict(seqs)
        write.memory = {d: m for d in seqs if (m := views[d].remember) is not None}
        return len(self._fleet.commit(write))

    def _add(self, st: BatchStats) -> None:
        for name in BatchStats.__slots__:
            setattr(self.totals, name, getattr(self.totals, name) + getattr(st, name))
