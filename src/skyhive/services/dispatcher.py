"""Dispatcher: assigns pending deliveries to drones and drives the delivery lifecycle.

Every tick (and at once when an order arrives, via ``dispatch:wake``):
- apply drone events from the bus (picked_up, delivered, failed);
- relay queued commands (e.g. a cancelled delivery's recall) to the drones over MQTT;
- try to assign each pending delivery: candidates near the pickup station from Redis GEO,
  judged by payload and energy (``domain/dispatch.py``), best score first; the drone is
  claimed atomically (SET NX) and the delivery moved pending → assigned with a conditional
  update, so two dispatchers never double-book a drone or a delivery;
- once a second, watch active deliveries: in transit, ETA, and silent drones.

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
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from skyhive.adapters.deliveries_repo import WAKE, TransitionRefused
from skyhive.adapters.stations_repo import all_stations
from skyhive.domain.commands import DroneEvent, commands_topic, deliver_command
from skyhive.domain.dispatch import (
    Candidate,
    DispatchPolicy,
    Trip,
    Verdict,
    eta_seconds,
    judge,
    rank,
)
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.geo import haversine_m
from skyhive.domain.stations import Station
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

GROUP = "dispatcher"
SPEC_TTL_S = 10.0
CANDIDATE_COUNTS = (50, 250, 1000)
RETRY_WAITING_S = 1.0  # a delivery with no eligible drone is looked at again this often
Publish = Callable[[str, bytes], None]


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return haversine_m(lat1, lon1, lat2, lon2) / 1000.0


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class Dispatcher:
    def __init__(
        self, settings: Settings, clients: Clients, publish: Publish, consumer: str | None = None
    ) -> None:
        self._s = settings
        self._c = clients
        self._publish = publish
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._policy = DispatchPolicy(reserve_pct=settings.dispatch_reserve_pct)
        self._stations: dict[str, Station] = {}
        self._specs: dict[str, tuple[float, DroneSpec]] = {}
        self._waiting: dict[str, str] = {}
        self._next_try: dict[str, float] = {}
        self._last_monitor = 0.0
        self.assigned = 0

    def setup(self) -> None:
        for stream in (self._s.events_stream, self._s.commands_stream):
            self._c.bus.ensure_group(stream, GROUP)
        self._stations = {s.code: s for s in all_stations(self._c.db)}
        self._c.fleet.sync_registered_set()

    # --- the loop -------------------------------------------------------------------------

    def tick(self) -> None:
        self.handle_events()
        self.relay_commands()
        self.dispatch_pending()
        if time.monotonic() - self._last_monitor >= 1.0:
            self._last_monitor = time.monotonic()
            self.monitor()

    # --- assignment -----------------------------------------------------------------------

    def dispatch_pending(self, limit: int = 500, retry_all: bool = False) -> int:
        """Try the pending deliveries, oldest first: new ones at once, waiting ones once a
        second (``retry_all`` forces every one)."""
        done = 0
        now = time.monotonic()
        for delivery_id in self._c.deliveries.pending(limit):
            if not retry_all and self._next_try.get(delivery_id, 0.0) > now:
                continue
            if self.dispatch_one(delivery_id):
                done += 1
                self._next_try.pop(delivery_id, None)
            else:
                self._next_try[delivery_id] = now + RETRY_WAITING_S
        return done

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

    def return_station(self, lat: float, lon: float) -> Station:
        """The nearest station to (lat, lon) with a free pad (docked drones < pads)."""
        by_distance = sorted(self._stations.values(), key=lambda s: _km(lat, lon, s.lat, s.lon))
        for station in by_distance[:5]:
            docked = self._c.live.nearby(station.lat, station.lon, 0.15, station.pads + 1)
            if len(docked) < station.pads:
                return station
        return by_distance[0]

    def dispatch_one(self, delivery_id: str) -> bool:
        repo = self._c.deliveries
        doc = repo.get(delivery_id)
        if doc is None or doc["status"] != "pending":
            repo.reconcile(delivery_id, doc["status"] if doc else None)
            return False
        station = self._stations.get(str(doc["pickup_station"]))
        if station is None:
            self._stations = {s.code: s for s in all_stations(self._c.db)}
            station = self._stations.get(str(doc["pickup_station"]))
            if station is None:
                self._wait(delivery_id, f"pickup station {doc['pickup_station']} is unknown")
                return False
        dlon, dlat = doc["destination"]["coordinates"]
        back = self.return_station(dlat, dlon)
        weight = float(doc["package"]["weight_kg"])
        leg_km = float(doc.get("distance_km") or _km(station.lat, station.lon, dlat, dlon))
        back_km = _km(dlat, dlon, back.lat, back.lon)
        verdicts: list[Verdict] = []
        # Nearest first; look further out only while every drone so far is unusable.
        for count in CANDIDATE_COUNTS:
            hits = self._c.live.nearby(station.lat, station.lon, self._s.dispatch_radius_km, count)
            verdicts = self._judge_all(hits, weight, leg_km, back_km)
            for best in rank(verdicts):
                if repo.claim(best.drone_id, delivery_id):
                    return self._assign(doc, best, station, back, (dlat, dlon), len(verdicts))
                # else another dispatcher took that drone a moment ago: try the next best
            if len(hits) < count:
                break
        self._wait(delivery_id, self._why_waiting(verdicts))
        return False

    def _assign(
        self,
        doc: dict[str, Any],
        best: Verdict,
        station: Station,
        back: Station,
        dest: tuple[float, float],
        considered: int,
    ) -> bool:
        repo = self._c.deliveries
        delivery_id = str(doc["_id"])
        now = datetime.now(UTC)
        spec = self._specs[best.drone_id][1]
        trip_km = float(doc.get("distance_km") or 0)
        state = self._c.live.get(best.drone_id) or {}
        to_pickup = (
            _km(state["lat"], state["lon"], station.lat, station.lon)
            if state.get("lat") is not None
            else 0.0
        )
        eta = now + timedelta(seconds=eta_seconds(to_pickup + trip_km, spec.cruise_speed_mps))
        dispatch = {
            "drone_id": best.drone_id,
            "reason": best.reason,
            "score": round(best.score, 2),
            "needed_pct": round(best.needed_pct, 1),
            "candidates_considered": considered,
            "dispatcher": self.consumer,
            "assigned_at": now,
            "latency_ms": round((now - doc["created_at"]).total_seconds() * 1000, 1),
        }
        try:
            repo.transition(
                delivery_id,
                "assigned",
                now,
                f"assigned to {best.drone_id}: {best.reason}",
                {
                    "drone_id": best.drone_id,
                    "return_station": back.code,
                    "dispatch": dispatch,
                    "eta": eta,
                    "waiting_reason": None,
                },
                only_from=frozenset({"pending"}),
            )
        except TransitionRefused:
            repo.release(best.drone_id, delivery_id)
            return False
        cmd = deliver_command(delivery_id, station, dest, back, now)
        self._publish(commands_topic(best.drone_id), orjson.dumps(cmd))
        self._waiting.pop(delivery_id, None)
        self.assigned += 1
        log.info("delivery %s → %s (%s)", delivery_id, best.drone_id, best.reason)
        return True

    def _judge_all(
        self, hits: list[tuple[str, float]], weight: float, leg_km: float, back_km: float
    ) -> list[Verdict]:
        ids = [d for d, _ in hits]
        states = dict(zip(ids, self._c.live.get_many(ids), strict=True))
        specs = self._spec_lookup(ids)
        claimed = self._c.deliveries.claimed(ids)
        verdicts: list[Verdict] = []
        for drone_id, dist_km in hits:
            spec, state = specs.get(drone_id), states.get(drone_id)
            if spec is None or state is None:
                verdicts.append(Verdict(drone_id, False, "not in the fleet registry"))
                continue
            cand = Candidate(spec, float(state["battery_pct"] or 0), state["status"], dist_km)
            trip = Trip(dist_km, leg_km, back_km)
            verdicts.append(judge(cand, trip, weight, self._policy, drone_id in claimed))
        return verdicts

    @staticmethod
    def _why_waiting(verdicts: list[Verdict]) -> str:
        if not verdicts:
            return "no drone within range of the pickup station"
        reasons: dict[str, int] = {}
        for v in verdicts:
            key = v.reason.split(" (")[0] if v.reason.startswith("battery") else v.reason
            key = "battery too low" if key.startswith("battery") else key
            key = "payload too heavy" if key.startswith("payload") else key
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
        repo = self._c.deliveries
        now = datetime.now(UTC)
        for delivery_id in repo.active():
            doc = repo.get(delivery_id)
            if doc is None or doc["status"] not in ("assigned", "picked_up", "in_transit"):
                repo.reconcile(delivery_id, doc["status"] if doc else None)
                continue
            drone_id = str(doc.get("drone_id"))
            state = self._c.live.get(drone_id)
            try:
                self._watch(doc, drone_id, state, now)
            except TransitionRefused:
                continue

    def _watch(
        self, doc: dict[str, Any], drone_id: str, state: dict[str, Any] | None, now: datetime
    ) -> None:
        repo = self._c.deliveries
        delivery_id, status = str(doc["_id"]), str(doc["status"])
        seen = _parse_iso(state.get("updated_at")) if state else None
        since = doc["timeline"][-1]["at"]
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
            return
        if status != "assigned" and silent_s > self._s.dispatch_silent_loaded_s:
            repo.transition(
                delivery_id,
                "failed",
                now,
                f"{drone_id} silent for {silent_s:.0f} s with the package on board",
            )
            return
        if state is None or state.get("lat") is None:
            return
        if status == "picked_up" and state.get("status") == "in_flight":
            repo.transition(delivery_id, "in_transit", now, f"{drone_id} en route")
        self._update_eta(doc, drone_id, state, now)

    def _update_eta(
        self, doc: dict[str, Any], drone_id: str, state: dict[str, Any], now: datetime
    ) -> None:
        dlon, dlat = doc["destination"]["coordinates"]
        plon, plat = doc["pickup_location"]["coordinates"]
        here = (float(state["lat"]), float(state["lon"]))
        if doc["status"] == "assigned":
            remaining = _km(*here, plat, plon) + _km(plat, plon, dlat, dlon)
        else:
            remaining = _km(*here, dlat, dlon)
        spec = self._spec_lookup([drone_id]).get(drone_id)
        eta = now + timedelta(
            seconds=eta_seconds(remaining, spec.cruise_speed_mps if spec else 15.0)
        )
        old = doc.get("eta")
        if not isinstance(old, datetime) or abs((eta - old).total_seconds()) > 5:
            self._c.deliveries.set_fields(str(doc["_id"]), {"eta": eta})


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    from skyhive.adapters.mqtt_url import parse_mqtt_url
    from skyhive.services.mqtt_publisher import MqttPublisher

    clients = Clients(settings)
    host, port = parse_mqtt_url(settings.mqtt_url_or_default())
    publisher = MqttPublisher(host, port, client_id=f"skyhive-dispatcher-{os.getpid()}")
    dispatcher = Dispatcher(settings, clients, publisher.publish)
    pubsub = None
    try:
        publisher.start()
        while not stop.is_set():
            try:
                dispatcher.setup()
                break
            except Exception as exc:
                log.warning("dispatcher waiting for MongoDB/Redis: %s", exc)
                stop.wait(1.0)
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
        if pubsub is not None:
            pubsub.close()
        publisher.stop()
        clients.close()
