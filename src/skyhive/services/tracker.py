"""Tracker: follows assigned deliveries to the end of their lifecycle.

- applies drone events from the bus (picked_up, delivered, failed);
- once a second watches every active delivery: in transit, ETA from live telemetry, and the
  silent-drone policy.

Policy for a drone that goes silent (no telemetry processed for a while) or reports a failure:
before pickup the delivery goes back to ``pending`` and is re-dispatched to another drone;
with the package on board it is ``failed`` (someone must recover the package).

A process of its own, apart from the dispatcher: this is steady bulk work over every flight in
progress, and sharing an interpreter (one GIL) with the dispatch loop would delay new orders.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from skyhive.adapters.deliveries_repo import TransitionRefused
from skyhive.domain.commands import DroneEvent
from skyhive.domain.dispatch import DEFAULT_CRUISE_MPS, eta_seconds, remaining_km
from skyhive.domain.geo import point_lat_lon
from skyhive.services.assignment_recorder import AssignmentRecorder
from skyhive.services.periodic import retry_until_ready, start_every
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

GROUP = "tracker"
# What watching an active delivery needs; not the timeline or the dispatch record.
WATCH_FIELDS = ["status", "drone_id", "destination", "pickup_location", "eta", "updated_at"]


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def delivered_fields(doc: dict[str, Any], at: datetime) -> dict[str, Any]:
    """What a delivery records when it is delivered: the price quoted at the order becomes
    the price billed, and the month it is billed in. ``delivery_s`` (order to drop) is kept
    as a number so an aggregation can average it: the embedded server cannot subtract a
    ``$set`` date."""
    created = doc.get("created_at")
    return {
        "price_final": doc.get("price_estimate"),
        "delivered_at": at,
        "delivery_s": (at - created).total_seconds() if isinstance(created, datetime) else None,
        "delivered_month": at.strftime("%Y-%m"),
        "eta": None,
    }


class DeliveryTracker:
    def __init__(self, settings: Settings, clients: Clients, consumer: str | None = None) -> None:
        self._s = settings
        self._c = clients
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._specs = SpecCache(clients.fleet)
        self.recorder = AssignmentRecorder(clients)

    def setup(self) -> None:
        _ = (self._c.db, self._c.redis_text, self._c.live, self._c.fleet, self._c.stations)
        self._c.bus.ensure_group(self._s.events_stream, GROUP)

    # --- drone events ---------------------------------------------------------------------

    def handle_events(self, count: int = 200, block_ms: int = 0) -> int:
        bus, stream = self._c.bus, self._s.events_stream
        msgs = bus.claim_stale(stream, GROUP, self.consumer, self._s.claim_idle_ms, count)
        msgs += bus.consume(stream, GROUP, self.consumer, count, block_ms) if not msgs else []
        if msgs:
            self.recorder.drain()  # an event may be about an assignment not yet recorded
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
                    delivered_fields(doc, now),
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

    # --- watching active deliveries -------------------------------------------------------

    def monitor(self) -> None:
        """One read of every active delivery and its drone, then the transitions and ETA
        updates they call for (ETAs in one bulk write)."""
        self._specs.refresh()
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
        spec = self._specs.get(drone_id)
        speed = spec.cruise_speed_mps if spec else DEFAULT_CRUISE_MPS
        eta = now + timedelta(seconds=eta_seconds(remaining, speed))
        old = doc.get("eta")
        if not isinstance(old, datetime) or abs((eta - old).total_seconds()) > 5:
            return eta
        return None


def run_tracker(settings: Settings, stop: threading.Event) -> None:
    clients = Clients(settings)
    tracker = DeliveryTracker(settings, clients)
    watcher: threading.Thread | None = None
    try:
        if not retry_until_ready("tracker", tracker.setup, stop):
            return
        watcher = start_every(1.0, tracker.monitor, stop, "monitor")
        log.info("tracker %s running", tracker.consumer)
        while not stop.is_set():
            try:
                tracker.handle_events(block_ms=500)
            except Exception:
                log.exception("handling drone events failed; retrying in 1s")
                stop.wait(1.0)
    finally:
        stop.set()  # also on an error: the watcher must end before its clients close
        if watcher is not None:
            watcher.join(timeout=30)
        clients.close()
