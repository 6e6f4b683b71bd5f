"""Dispatcher: assigns pending deliveries to drones and drives the delivery lifecycle.

Every tick (and at once when an order arrives, via ``dispatch:wake``):
- relay queued commands (e.g. a cancelled delivery's recall) to the drones over MQTT;
- try to assign each pending delivery: candidates near the pickup station from Redis GEO,
  judged by payload and energy (``domain/dispatch.py``), best score first; a drone grounded
  by an alert (``ports/grounding.py``) is passed over. One Redis script
  claims the drone, moves the delivery pending → assigned, journals the assignment and queues
  the drone's command on the commands stream, all or nothing, so two dispatchers never
  double-book a drone or a delivery and a crash never leaves an assigned drone untold; the
  command is relayed at once and the MongoDB record written behind (``assignment_recorder.py``).
  The dispatch path reads and writes Redis only.

The recorder runs on a thread of its own; what happens after assignment (drone events,
ETA, silent drones) is the tracker's (``tracker.py``), in another process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from skyhive.domain.commands import commands_topic, deliver_command
from skyhive.domain.dispatch import (
    Candidate,
    DispatchPolicy,
    PendingOrder,
    Trip,
    Verdict,
    judge,
    promised_eta_seconds,
    rank,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m, nearest
from skyhive.domain.stations import Station
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.dispatch_queue import DispatchQueue
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.ports.live_fleet import LiveFleet
from skyhive.ports.stations import StationLookup
from skyhive.services.assignment_recorder import AssignmentRecorder
from skyhive.services.group_consumer import GroupConsumer
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

log = logging.getLogger(__name__)

GROUP = "dispatcher"
# Where to look for candidates: (radius km, None = the configured radius; how many nearest).
# Nearest first, further only for orders that found none usable: a search's cost in Redis
# grows with the drones inside its radius, and most orders are served by the drones docked
# at or near their pickup station.
SEARCH_STEPS: tuple[tuple[float | None, int], ...] = ((2.0, 10), (None, 50), (None, 1000))
RETRY_WAITING_S = 1.0  # a delivery with no eligible drone is looked at again this often
DOCKED_TTL_S = 1.0  # how long a station's count of docked drones is trusted
RELAY_BATCH = 200  # commands relayed per read


class Receipt(Protocol):
    def is_published(self) -> bool: ...


Publish = Callable[[str, bytes], Receipt | None]
_REASON_KINDS = (
    ("battery", "battery too low"),
    ("payload", "payload too heavy"),
    ("grounded", "grounded by an alert"),
)


def _confirmed(receipt: Receipt | None) -> bool:
    """Whether the broker has the command. paho raises for a message published while it was
    disconnected (it sends it on reconnect, but that receipt never says so): such a command
    stays pending on the stream, and is taken back and relayed again once idle."""
    if receipt is None:
        return True
    try:
        return receipt.is_published()
    except (RuntimeError, ValueError):
        return False


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_m(lat1, lon1, lat2, lon2) / 1000.0


def _where(station: Station) -> tuple[float, float]:
    return station.lat, station.lon


def _iso(value: datetime) -> str:
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class _Order:
    """A pending delivery with what dispatching it needs."""

    id: str
    station: Station
    dest: tuple[float, float]
    back: Station
    leg_km: float
    back_km: float
    weight: float
    accepted_at: float  # epoch seconds: when the API had the order stored


@dataclass(frozen=True, slots=True)
class _FleetView:
    states: dict[str, tuple[float, str]]  # drone → (battery %, flight status)
    claimed: dict[str, str]
    specs: dict[str, DroneSpec]
    grounded: dict[str, str]  # drone → an alert that grounds it


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        queue: DispatchQueue,
        records: DeliveryRecords,
        live: LiveFleet,
        fleet: DroneSpecs,
        stations: StationLookup,
        bus: Bus,
        clock: Clock,
        publish: Publish,
        consumer: str,
    ) -> None:
        """``publish`` queues a command to a drone and returns its receipt (None: already
        delivered), whose ``is_published()`` says when the broker has it."""
        self._s = settings
        self._queue = queue
        self._records = records
        self._live = live
        self._fleet = fleet
        self._stations = stations
        self._clock = clock
        self._publish = publish
        self._unconfirmed: list[tuple[str, Receipt | None]] = []  # relayed, no PUBACK yet
        self.consumer = consumer
        self._policy = DispatchPolicy(
            reserve_pct=settings.dispatch_reserve_pct,
            require_remote_id=settings.remote_id.required,
        )
        self._specs = SpecCache(fleet, clock)
        self._waiting: dict[str, str] = {}
        self._next_try: dict[str, float] = {}
        self._docked: dict[str, tuple[float, int]] = {}
        self.recorder = AssignmentRecorder(
            records, queue, stations, bus, clock, settings.commands_stream
        )
        # Commands to relay: new ones at once (no blocking: the tick waits on the wake channel),
        # a dead dispatcher's left idle looked for about once a second, not on every tick.
        self._commands = GroupConsumer(
            bus, settings.commands_stream, GROUP, consumer, RELAY_BATCH, 0,
            settings.claim_idle_ms, clock,
        )  # fmt: skip

    def setup(self) -> None:
        self._commands.setup()
        self._fleet.sync_registered_set()
        self._specs.refresh()
        if requeued := self._records.requeue_pending():
            log.info("re-queued %d pending deliveries Redis had lost track of", requeued)

    # --- the loop -------------------------------------------------------------------------

    def tick(self) -> None:
        """Relayed commands and assignments: the latency-critical work."""
        self.relay_commands()
        self.dispatch_pending()

    # --- assignment -----------------------------------------------------------------------

    def dispatch_pending(self, limit: int = 500, retry_all: bool = False) -> int:
        """Try the pending deliveries, oldest first, in batches: new ones at once, waiting
        ones once a second (``retry_all`` forces every one)."""
        now = self._clock.monotonic()
        pending = self._queue.pending(limit)
        for memo in (self._next_try, self._waiting):
            for gone in memo.keys() - set(pending):
                del memo[gone]
        due = [d for d in pending if retry_all or self._next_try.get(d, 0.0) <= now]
        done = 0
        size = self._s.dispatch_batch
        for i in range(0, len(due), size):
            chunk = due[i : i + size]
            started = self._clock.monotonic()
            won, contended = self.dispatch_batch(chunk)
            log.debug(
                "batch of %d: %d assigned in %.0f ms",
                len(chunk),
                len(won),
                (self._clock.monotonic() - started) * 1000,
            )
            done += len(won)
            for delivery_id in chunk:
                if delivery_id in won or delivery_id in contended:
                    self._next_try.pop(delivery_id, None)  # done, or worth another go at once
                else:
                    self._next_try[delivery_id] = now + RETRY_WAITING_S
        return done

    def dispatch_batch(self, delivery_ids: list[str]) -> tuple[set[str], set[str]]:
        """Assign a batch of pending deliveries with a fixed number of round trips, whatever
        its size. Returns (assigned, lost a race for their drone: retry at once)."""
        pending, unsummarized = self._queue.pending_orders(delivery_ids)
        if unsummarized:
            pending |= self._records.restore_orders(unsummarized)
        orders = self._orders(pending)
        won: set[str] = set()
        contended: set[str] = set()
        verdicts_of: dict[str, list[Verdict]] = {}
        # Nearest drones first; look further out only for orders that found none usable.
        for step_km, count in SEARCH_STEPS:
            if not orders:
                break
            radius = min(step_km or self._s.dispatch_radius_km, self._s.dispatch_radius_km)
            hits_per_order = self._nearby_many(orders, radius, count)
            views = self._fleet_view({d for hits in hits_per_order for d, _ in hits})
            choices, further, taken = [], [], set[str]()
            for order, hits in zip(orders, hits_per_order, strict=True):
                verdicts = self._judge_all(order, hits, views, taken)
                verdicts_of[order.id] = verdicts
                ranked = rank(verdicts)
                if ranked:
                    best = ranked[0]
                    taken.add(best.drone_id)
                    choices.append((order, best, dict(hits)[best.drone_id], len(verdicts)))
                elif len(hits) == count or radius < self._s.dispatch_radius_km:
                    further.append(order)
            assigned = self._commit(choices)
            won |= assigned
            contended |= {o.id for o, *_ in choices} - assigned
            orders = further
        for delivery_id, verdicts in verdicts_of.items():
            if delivery_id not in won and delivery_id not in contended:
                self._wait(delivery_id, self._why_waiting(verdicts))
        return won, contended

    def _orders(self, pending: dict[str, PendingOrder]) -> list[_Order]:
        known = []
        for delivery_id, order in pending.items():
            station = self._stations.get(order.station)
            if station is None:
                self._wait(delivery_id, f"pickup station {order.station} is unknown")
            else:
                known.append((delivery_id, order, station))
        dests = [(o.lat, o.lon) for _, o, _ in known]
        orders = []
        for (delivery_id, o, station), (dlat, dlon), back in zip(
            known, dests, self.return_stations(dests), strict=True
        ):
            orders.append(
                _Order(
                    delivery_id,
                    station,
                    (dlat, dlon),
                    back,
                    o.km or _km(station.lat, station.lon, dlat, dlon),
                    _km(dlat, dlon, back.lat, back.lon),
                    o.kg,
                    o.accepted_at,
                )
            )
        return orders

    def refresh_specs(self) -> None:
        self._specs.refresh()

    def return_stations(self, points: list[tuple[float, float]]) -> list[Station]:
        """For each (lat, lon): the nearest station with a free pad (docked drones < pads),
        among the five nearest; else the nearest. Counts are read at most once a second per
        station, in one round trip for all the points."""
        stations = list(self._stations.all().values())
        shortlists = [nearest(lat, lon, stations, _where, 5) for lat, lon in points]
        docked = self._docked_counts({s.code: s for short in shortlists for s in short})
        return [
            next((s for s in short if docked[s.code] < s.pads), short[0]) for short in shortlists
        ]

    def _docked_counts(self, stations: dict[str, Station]) -> dict[str, int]:
        now = self._clock.monotonic()
        stale = [
            s for c, s in stations.items() if now - self._docked.get(c, (-1e9, 0))[0] > DOCKED_TTL_S
        ]
        if stale:
            cap = max(s.pads for s in stale) + 1
            counts = self._live.count_near([(s.lat, s.lon) for s in stale], 0.15, cap)
            for s, n in zip(stale, counts, strict=True):
                self._docked[s.code] = (now, n)
        return {c: self._docked[c][1] for c in stations}

    def _nearby_many(
        self, orders: list[_Order], radius_km: float, count: int
    ) -> list[list[tuple[str, float]]]:
        points = [(o.station.lat, o.station.lon) for o in orders]
        return self._live.nearby_many(points, radius_km, count)

    def _fleet_view(self, drone_ids: set[str]) -> _FleetView:
        """Live state, claims and registry spec of every candidate, in one Redis round trip
        (specs come from a short-lived cache)."""
        ids = sorted(drone_ids)
        if not ids:
            return _FleetView({}, {}, {}, {})
        states, claimed, grounded = self._queue.fleet_view(ids)  # registered drones' only
        return _FleetView(states, claimed, self._specs.get_many(list(states)), grounded)

    def _judge_all(
        self, order: _Order, hits: list[tuple[str, float]], view: _FleetView, taken: set[str]
    ) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for drone_id, dist_km in hits:
            spec, state = view.specs.get(drone_id), view.states.get(drone_id)
            if spec is None or state is None:
                verdicts.append(Verdict(drone_id, False, "not in the fleet registry"))
                continue
            if drone_id in view.grounded:
                why = f"grounded by alert {view.grounded[drone_id]}"
                verdicts.append(Verdict(drone_id, False, why))
                continue
            cand = Candidate(spec, state[0], state[1], dist_km)
            trip = Trip(dist_km, order.leg_km, order.back_km)
            busy = drone_id in view.claimed or drone_id in taken
            verdicts.append(judge(cand, trip, order.weight, self._policy, busy))
        return verdicts

    def _commit(self, choices: list[tuple[_Order, Verdict, float, int]]) -> set[str]:
        """Claim the chosen drones and assign in one Redis script, which also queues each
        drone's command on the commands stream; relay the commands at once, and leave the
        MongoDB record to the recorder. Returns the deliveries assigned.

        The command goes through the stream, not straight to MQTT, so a dispatcher that dies
        between the assignment and the publish does not leave a drone claimed and never told:
        the next dispatcher relays what it left (a drone may then get the same command twice,
        which it ignores: same delivery, same ``issued_at``)."""
        now = self._clock.now()
        won = self._queue.claim_assign(
            [
                (
                    order.id,
                    best.drone_id,
                    self._assignment(order, best, to_pickup, considered, now),
                    deliver_command(
                        order.id, order.station, order.dest, order.back, now, order.weight
                    ).to_json(),
                )
                for order, best, to_pickup, considered in choices
            ],
            self._s.commands_stream,
            self._s.stream_maxlen,
        )
        for order, best, *_ in choices:
            if order.id in won:
                self._waiting.pop(order.id, None)
                log.info("delivery %s → %s (%s)", order.id, best.drone_id, best.reason)
        if won:
            self.relay_commands()
            self.recorder.notify()
        return won

    def _assignment(
        self, order: _Order, best: Verdict, to_pickup: float, considered: int, now: datetime
    ) -> dict[str, Any]:
        """The journal record of an assignment (see ``DeliveryRecords.record_journal``)."""
        spec = self._specs.get_many([best.drone_id])[best.drone_id]
        eta_s = promised_eta_seconds(to_pickup, order.leg_km, spec.cruise_speed_mps)
        accepted = datetime.fromtimestamp(order.accepted_at, UTC)
        eta = _iso(now + timedelta(seconds=eta_s))
        return {
            "drone_id": best.drone_id,
            "at": _iso(now),
            "note": f"assigned to {best.drone_id}: {best.reason}",
            "fields": {
                "drone_id": best.drone_id,
                "return_station": order.back.code,
                "eta": eta,  # moved on by the tracker as the drone flies
                "waiting_reason": None,
                "dispatch": {
                    "drone_id": best.drone_id,
                    "reason": best.reason,
                    "score": round(best.score, 2),
                    "needed_pct": round(best.needed_pct, 1),
                    "candidates_considered": considered,
                    "dispatcher": self.consumer,
                    "accepted_at": _iso(accepted),
                    "assigned_at": _iso(now),
                    "latency_ms": round((now - accepted).total_seconds() * 1000, 1),
                    "eta": eta,  # as promised at assignment: the on-time rate's yardstick
                },
            },
        }

    @staticmethod
    def _why_waiting(verdicts: list[Verdict]) -> str:
        if not verdicts:
            return "no drone within range of the pickup station"
        reasons: dict[str, int] = {}
        for v in verdicts:
            # Battery and payload reasons carry per-drone figures: count them as one kind.
            key = next(
                (kind for prefix, kind in _REASON_KINDS if v.reason.startswith(prefix)), v.reason
            )
            reasons[key] = reasons.get(key, 0) + 1
        summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
        return f"no eligible drone among {len(verdicts)} nearby: {summary}"

    def _wait(self, delivery_id: str, reason: str) -> None:
        """Record why a delivery waits, writing only when the reason changes."""
        if self._waiting.get(delivery_id) != reason:
            self._waiting[delivery_id] = reason
            self.recorder.note_waiting(delivery_id, reason)

    # --- commands queued by other processes -----------------------------------------------

    def relay_commands(self) -> int:
        """Commands other processes queued (and this one, on assignment), to their drones;
        each is acknowledged on the stream once the broker has acknowledged it (a later
        relay acknowledges what the broker has confirmed since), so a dispatcher killed with
        commands still in its MQTT client's queue leaves them pending, and one that cannot
        reach the broker goes on assigning. Those a dead dispatcher left are taken over
        (``GroupConsumer``); a drone may then get one twice, as QoS 1 allows anyway: a
        repeated `deliver` names the same delivery and is ignored. Returns how many were
        read."""
        msgs = self._commands.read()
        for m in msgs:
            self._unconfirmed.append((m.id, self._publish(commands_topic(m.key), m.value)))
        done = {i for i, r in self._unconfirmed if _confirmed(r)}
        if done:
            self._unconfirmed = [(i, r) for i, r in self._unconfirmed if i not in done]
            self._commands.bus.ack(self._s.commands_stream, GROUP, sorted(done))
        return len(msgs)
