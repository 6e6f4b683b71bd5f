"""Dispatcher: assigns pending deliveries to drones and drives the delivery lifecycle.

Every tick (and at once when an order arrives, via ``dispatch:wake``):
- apply drone events from the bus (picked_up, delivered, failed);
- relay queued commands (e.g. a cancelled delivery's recall) to the drones over MQTT;
- try to assign each pending delivery: candidates near the pickup station from Redis GEO,
  judged by payload and energy (``domain/dispatch.py``), best score first; the drone is
  claimed atomically (SET NX) and the delivery moved pending → assigned with a conditional
  update, so two dispatchers never double-book a drone or a delivery;
- and, on a thread of its own, once a second: watch active deliveries (in transit, ETA,
  silent drones), so many flights in progress never delay a new order.

Policy for a drone that goes silent (no telemetry processed for a while) or reports a failure:
before pickup the delivery goes back to ``pending`` and is re-dispatched to another drone;
with the package on board it is ``failed`` (someone must recover the package).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from skyhive.adapters.deliveries_repo import WAKE, TransitionRefused
from skyhive.adapters.live_state import states_from
from skyhive.domain.commands import DroneEvent, commands_topic, deliver_command
from skyhive.domain.dispatch import (
    DEFAULT_CRUISE_MPS,
    Candidate,
    DispatchPolicy,
    Trip,
    Verdict,
    eta_seconds,
    judge,
    rank,
    remaining_km,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m, point_lat_lon
from skyhive.domain.stations import Station
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

GROUP = "dispatcher"
SPEC_TTL_S = 10.0
CANDIDATE_COUNTS = (20, 100, 1000)
RETRY_WAITING_S = 1.0  # a delivery with no eligible drone is looked at again this often
# What watching an active delivery needs; not the timeline or the dispatch record.
WATCH_FIELDS = ["status", "drone_id", "destination", "pickup_location", "eta", "updated_at"]
Publish = Callable[[str, bytes], None]
_REASON_KINDS = (("battery", "battery too low"), ("payload", "payload too heavy"))


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_m(lat1, lon1, lat2, lon2) / 1000.0


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Order:
    """A pending delivery with what dispatching it needs."""

    doc: dict[str, Any]
    station: Station
    dest: tuple[float, float]
    back: Station
    leg_km: float
    back_km: float
    weight: float

    @property
    def id(self) -> str:
        return str(self.doc["_id"])


@dataclass(frozen=True, slots=True)
class _FleetView:
    states: dict[str, dict[str, Any]]
    claimed: dict[str, str]
    specs: dict[str, DroneSpec]


class Dispatcher:
    def __init__(
        self, settings: Settings, clients: Clients, publish: Publish, consumer: str | None = None
    ) -> None:
        self._s = settings
        self._c = clients
        self._publish = publish
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._policy = DispatchPolicy(reserve_pct=settings.dispatch_reserve_pct)
        self._specs: dict[str, tuple[float, DroneSpec]] = {}
        self._waiting: dict[str, str] = {}
        self._next_try: dict[str, float] = {}
        self._pending_docs: dict[str, dict[str, Any]] = {}
        self.assigned = 0

    def setup(self) -> None:
        # Build the lazy clients here, before the monitor thread could race to build them.
        _ = (self._c.db, self._c.redis_text, self._c.live, self._c.fleet, self._c.stations)
        for stream in (self._s.events_stream, self._s.commands_stream):
            self._c.bus.ensure_group(stream, GROUP)
        self._c.fleet.sync_registered_set()

    # --- the loop -------------------------------------------------------------------------

    def tick(self) -> None:
        """Events, relayed commands and assignments: the latency-critical work. The watch
        over active deliveries (:meth:`monitor`) runs on its own thread, so a large number
        of deliveries in flight never delays a new order."""
        self.handle_events()
        self.relay_commands()
        self.dispatch_pending()

    # --- assignment -----------------------------------------------------------------------

    def dispatch_pending(self, limit: int = 500, retry_all: bool = False) -> int:
        """Try the pending deliveries, oldest first, in batches: new ones at once, waiting
        ones once a second (``retry_all`` forces every one)."""
        now = time.monotonic()
        pending = self._c.deliveries.pending(limit)
        for memo in (self._pending_docs, self._next_try, self._waiting):
            for gone in memo.keys() - set(pending):
                del memo[gone]
        due = [d for d in pending if retry_all or self._next_try.get(d, 0.0) <= now]
        done = 0
        size = self._s.dispatch_batch
        for i in range(0, len(due), size):
            chunk = due[i : i + size]
            started = time.monotonic()
            won, contended = self.dispatch_batch(chunk)
            log.debug(
                "batch of %d: %d assigned in %.0f ms",
                len(chunk),
                len(won),
                (time.monotonic() - started) * 1000,
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
        orders = self._orders(self._pending(delivery_ids))
        won: set[str] = set()
        contended: set[str] = set()
        verdicts_of: dict[str, list[Verdict]] = {}
        # Nearest drones first; look further out only for orders that found none usable.
        for count in CANDIDATE_COUNTS:
            if not orders:
                break
            hits_per_order = self._nearby_many(orders, count)
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
                elif len(hits) == count:
                    further.append(order)
            assigned = self._commit(choices)
            won |= assigned
            contended |= {o.id for o, *_ in choices} - assigned
            orders = further
        for delivery_id, verdicts in verdicts_of.items():
            if delivery_id not in won and delivery_id not in contended:
                self._wait(delivery_id, self._why_waiting(verdicts))
        return won, contended

    def _pending(self, delivery_ids: list[str]) -> list[dict[str, Any]]:
        """The deliveries' records, in the order given. What a pending delivery asks for never
        changes, so each is read once; a stale status only makes the conditional assignment
        fail."""
        missing = [d for d in delivery_ids if d not in self._pending_docs]
        self._pending_docs.update(self._c.deliveries.get_many(missing))
        out = []
        for delivery_id in delivery_ids:
            doc = self._pending_docs.get(delivery_id)
            if doc is None or doc["status"] != "pending":
                self._pending_docs.pop(delivery_id, None)
                self._c.deliveries.reconcile(delivery_id, doc["status"] if doc else None)
            else:
                out.append(doc)
        return out

    def _orders(self, docs: list[dict[str, Any]]) -> list[_Order]:
        known = []
        for doc in docs:
            station = self._c.stations.get(str(doc["pickup_station"]))
            if station is None:
                self._wait(str(doc["_id"]), f"pickup station {doc['pickup_station']} is unknown")
            else:
                known.append((doc, station))
        dests = [point_lat_lon(doc["destination"]) for doc, _ in known]
        orders = []
        for (doc, station), (dlat, dlon), back in zip(
            known, dests, self.return_stations(dests), strict=True
        ):
            leg_km = float(doc.get("distance_km") or _km(station.lat, station.lon, dlat, dlon))
            orders.append(
                _Order(
                    doc,
                    station,
                    (dlat, dlon),
                    back,
                    leg_km,
                    _km(dlat, dlon, back.lat, back.lon),
                    float(doc["package"]["weight_kg"]),
                )
            )
        return orders

    def _spec_lookup(self, drone_ids: list[str]) -> dict[str, DroneSpec]:
        now = time.monotonic()
        stale = [
            d for d in drone_ids if d not in self._specs or now - self._specs[d][0] > SPEC_TTL_S
        ]
        if stale:
            fresh = self._c.fleet.specs(stale)
            for d in stale:
                if d in fresh:
                    self._specs[d] = (now, fresh[d])
                else:
                    self._specs.pop(d, None)
        return {d: self._specs[d][1] for d in drone_ids if d in self._specs}

    def return_stations(self, points: list[tuple[float, float]]) -> list[Station]:
        """For each (lat, lon): the nearest station with a free pad (docked drones < pads),
        among the five nearest; else the nearest. One round trip for all the points."""
        stations = list(self._c.stations.all().values())
        shortlists = [
            sorted(stations, key=lambda s: _km(lat, lon, s.lat, s.lon))[:5] for lat, lon in points
        ]
        flat = [s for short in shortlists for s in short]
        cap = max((s.pads for s in flat), default=0) + 1
        docked = iter(self._c.live.count_near([(s.lat, s.lon) for s in flat], 0.15, cap))
        out = []
        for short in shortlists:
            counts = [next(docked) for _ in short]
            out.append(
                next((s for s, n in zip(short, counts, strict=True) if n < s.pads), short[0])
            )
        return out

    def _nearby_many(self, orders: list[_Order], count: int) -> list[list[tuple[str, float]]]:
        points = [(o.station.lat, o.station.lon) for o in orders]
        return self._c.live.nearby_many(points, self._s.dispatch_radius_km, count)

    def _fleet_view(self, drone_ids: set[str]) -> _FleetView:
        """Live state, claims and registry spec of every candidate, in one Redis round trip
        (specs come from a short-lived cache)."""
        ids = sorted(drone_ids)
        if not ids:
            return _FleetView({}, {}, {})
        pipe = self._c.redis_text.pipeline(transaction=False)
        self._c.live.queue_get_many(pipe, ids)
        self._c.deliveries.queue_claimed(pipe, ids)
        *raw_states, raw_claims = pipe.execute()
        states = {d: state for d, state in zip(ids, states_from(raw_states), strict=True) if state}
        return _FleetView(
            states, self._c.deliveries.claims_from(ids, raw_claims), self._spec_lookup(ids)
        )

    def _judge_all(
        self, order: _Order, hits: list[tuple[str, float]], view: _FleetView, taken: set[str]
    ) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for drone_id, dist_km in hits:
            spec, state = view.specs.get(drone_id), view.states.get(drone_id)
            if spec is None or state is None:
                verdicts.append(Verdict(drone_id, False, "not in the fleet registry"))
                continue
            cand = Candidate(spec, float(state["battery_pct"] or 0), state["status"], dist_km)
            trip = Trip(dist_km, order.leg_km, order.back_km)
            busy = drone_id in view.claimed or drone_id in taken
            verdicts.append(judge(cand, trip, order.weight, self._policy, busy))
        return verdicts

    def _commit(self, choices: list[tuple[_Order, Verdict, float, int]]) -> set[str]:
        """Claim the chosen drones, record the assignments in one bulk write, command the
        drones. Returns the deliveries assigned."""
        repo = self._c.deliveries
        claimed = repo.claim_many([(best.drone_id, order.id) for order, best, *_ in choices])
        now = datetime.now(UTC)
        items = []
        for order, best, to_pickup, considered in choices:
            if best.drone_id in claimed:
                fields = self._assignment(order, best, to_pickup, considered, now)
                note = f"assigned to {best.drone_id}: {best.reason}"
                items.append((order.doc, best.drone_id, fields, note))
        won = repo.assign_many(items, now)
        for order, best, *_ in choices:
            if order.id not in won:
                continue
            self._pending_docs.pop(order.id, None)
            self._waiting.pop(order.id, None)
            cmd = deliver_command(
                order.id, order.station, order.dest, order.back, now, order.weight
            )
            self._publish(commands_topic(best.drone_id), orjson.dumps(cmd))
            self.assigned += 1
            log.info("delivery %s → %s (%s)", order.id, best.drone_id, best.reason)
        return won

    def _assignment(
        self, order: _Order, best: Verdict, to_pickup: float, considered: int, now: datetime
    ) -> dict[str, Any]:
        spec = self._specs[best.drone_id][1]
        eta_s = eta_seconds(to_pickup + order.leg_km, spec.cruise_speed_mps)
        return {
            "drone_id": best.drone_id,
            "return_station": order.back.code,
            "eta": now + timedelta(seconds=eta_s),
            "waiting_reason": None,
            "dispatch": {
                "drone_id": best.drone_id,
                "reason": best.reason,
                "score": round(best.score, 2),
                "needed_pct": round(best.needed_pct, 1),
                "candidates_considered": considered,
                "dispatcher": self.consumer,
                "assigned_at": now,
                "latency_ms": round((now - order.doc["created_at"]).total_seconds() * 1000, 1),
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
            self._c.deliveries.set_fields(delivery_id, {"waiting_reason": reason})

    # --- drone events ---------------------------------------------------------------------

    def handle_events(self, count: int = 200) -> int:
        bus, stream = self._c.bus, self._s.events_stream
        msgs = bus.claim_stale(stream, GROUP, self.consumer, 30_000, count)
        msgs += bus.consume(stream, GROUP, self.consumer, count, 0) if not msgs else []
        for m in msgs:
            try:
                self.apply_event(DroneEvent.model_validate(orjson.loads(m.value), strict=False))
            except (ValueError, KeyError) as exc:
                log.warning("ignoring drone event %s: %s", m.id, exc)
        bus.ack(stream, GROUP, [m.id for m in msgs])
        return len(msgs)

    def apply_event(self, ev: DroneEvent) -> None:
        repo = self._c.deliveries
        doc = repo.get(ev.delivery_id)
        if doc is None or doc.get("drone_id") != ev.drone_id:
            log.warning(
                "event %s from %s for delivery %s it does not hold; ignored",
                ev.event,
                ev.drone_id,
                ev.delivery_id,
            )
            return
        now = datetime.now(UTC)
        status = str(doc["status"])
        try:
            if ev.event == "picked_up":
                repo.transition(ev.delivery_id, "picked_up", now, f"picked up by {ev.drone_id}")
            elif ev.event == "delivered":
                if status == "assigned":  # the pickup report was lost; the drop proves it
                    repo.transition(ev.delivery_id, "picked_up", now, "pickup implied by delivery")
                repo.transition(
                    ev.delivery_id,
                    "delivered",
                    now,
                    f"delivered by {ev.drone_id}",
                    {"price_final": doc.get("price_estimate"), "delivered_at": now, "eta": None},
                )
            elif status == "assigned":
                repo.transition(
                    ev.delivery_id,
                    "pending",
                    now,
                    f"{ev.drone_id} could not take it ({ev.reason or 'no reason given'}); re-dispatching",
                    {"drone_id": None},
                )
            else:
                repo.transition(
                    ev.delivery_id,
                    "failed",
                    now,
                    f"{ev.drone_id} reported failure: {ev.reason or 'no reason given'}",
                )
        except TransitionRefused as exc:
            log.info("event %s for %s ignored: %s", ev.event, ev.delivery_id, exc)

    # --- commands queued by other processes -----------------------------------------------

    def relay_commands(self, count: int = 200) -> int:
        bus, stream = self._c.bus, self._s.commands_stream
        msgs = bus.consume(stream, GROUP, self.consumer, count, 0)
        for m in msgs:
            self._publish(commands_topic(m.key), m.value)
        bus.ack(stream, GROUP, [m.id for m in msgs])
        return len(msgs)

    # --- watching active deliveries -------------------------------------------------------

    def monitor(self) -> None:
        """One read of every active delivery and its drone, then the transitions and ETA
        updates they call for (ETAs in one bulk write)."""
        repo = self._c.deliveries
        now = datetime.now(UTC)
        ids = repo.active()
        docs = repo.get_many(ids, WATCH_FIELDS)
        active = []
        for delivery_id in ids:
            doc = docs.get(delivery_id)
            if doc is None or doc["status"] not in ("assigned", "picked_up", "in_transit"):
                repo.reconcile(delivery_id, doc["status"] if doc else None)
            else:
                active.append(doc)
        drones = [str(doc.get("drone_id")) for doc in active]
        etas: dict[str, dict[str, Any]] = {}
        for doc, drone_id, state in zip(active, drones, self._c.live.get_many(drones), strict=True):
            try:
                eta = self._watch(doc, drone_id, state, now)
            except TransitionRefused:
                continue
            if eta is not None:
                etas[str(doc["_id"])] = {"eta": eta}
        repo.set_fields_many(etas)

    def _watch(
        self, doc: dict[str, Any], drone_id: str, state: dict[str, Any] | None, now: datetime
    ) -> datetime | None:
        """Apply the silent-drone policy and the in-transit step; returns a new ETA when it
        moved by more than a few seconds."""
        repo = self._c.deliveries
        delivery_id, status = str(doc["_id"]), str(doc["status"])
        seen = _parse_iso(state.get("updated_at")) if state else None
        since = doc["updated_at"]  # the time of the last transition
        last = max(seen, since) if seen else since
        silent_s = (now - last).total_seconds()
        if status == "assigned" and silent_s > self._s.dispatch_silent_assigned_s:
            repo.transition(
                delivery_id,
                "pending",
                now,
                f"{drone_id} silent for {silent_s:.0f} s before pickup; re-dispatching",
                {"drone_id": None},
            )
            return None
        if status != "assigned" and silent_s > self._s.dispatch_silent_loaded_s:
            repo.transition(
                delivery_id,
                "failed",
                now,
                f"{drone_id} silent for {silent_s:.0f} s with the package on board",
            )
            return None
        if state is None or state.get("lat") is None:
            return None
        if status == "picked_up" and state.get("status") == "in_flight":
            repo.transition(delivery_id, "in_transit", now, f"{drone_id} en route")
        return self._new_eta(doc, drone_id, state, now)

    def _new_eta(
        self, doc: dict[str, Any], drone_id: str, state: dict[str, Any], now: datetime
    ) -> datetime | None:
        remaining = remaining_km(
            doc["status"],
            (float(state["lat"]), float(state["lon"])),
            point_lat_lon(doc["pickup_location"]),
            point_lat_lon(doc["destination"]),
        )
        spec = self._spec_lookup([drone_id]).get(drone_id)
        speed = spec.cruise_speed_mps if spec else DEFAULT_CRUISE_MPS
        eta = now + timedelta(seconds=eta_seconds(remaining, speed))
        old = doc.get("eta")
        if not isinstance(old, datetime) or abs((eta - old).total_seconds()) > 5:
            return eta
        return None


def _every(period_s: float, work: Callable[[], None], stop: threading.Event) -> None:
    while not stop.wait(period_s):
        try:
            work()
        except Exception:
            log.exception("%s failed; trying again in %.0fs", work.__name__, period_s)


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    from skyhive.adapters.mqtt_url import parse_mqtt_url
    from skyhive.services.mqtt_publisher import MqttPublisher

    clients = Clients(settings)
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    publisher = MqttPublisher(host, port, client_id=f"skyhive-dispatcher-{os.getpid()}")
    dispatcher = Dispatcher(settings, clients, publisher.publish)
    pubsub = None
    watcher: threading.Thread | None = None
    try:
        publisher.start()
        while not stop.is_set():
            try:
                dispatcher.setup()
                break
            except Exception as exc:
                log.warning("dispatcher waiting for MongoDB/Redis: %s", exc)
                stop.wait(1.0)
        watcher = threading.Thread(
            target=_every, args=(1.0, dispatcher.monitor, stop), name="monitor"
        )
        watcher.start()
        pubsub = clients.redis_text.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(WAKE)
        log.info("dispatcher %s running", dispatcher.consumer)
        tick_s = settings.dispatch_tick_ms / 1000.0
        backoff = 0.5
        while not stop.is_set():
            try:
                dispatcher.tick()
                backoff = 0.5
                # Sleep until the next tick, or until an order arrives.
                if pubsub.get_message(timeout=tick_s) is not None:
                    while pubsub.get_message(timeout=0) is not None:
                        pass
            except Exception:
                log.exception("dispatcher tick failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
    finally:
        stop.set()  # also on an error: the watcher must end before its clients close
        if watcher is not None:
            watcher.join(timeout=30)
        if pubsub is not None:
            pubsub.close()
        publisher.stop()
        clients.close()
