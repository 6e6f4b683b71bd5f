"""Tracker: follows assigned deliveries to the end of their lifecycle.

- applies drone events from the bus (picked_up, delivered, failed);
- once a second watches every active delivery: in transit, ETA from live telemetry, and the
  silent-drone policy.

Policy for a drone that goes silent (no telemetry processed for a while), is grounded by an
alert (``Alert.grounds``) or reports a failure: before pickup the delivery goes back to
``pending`` and is re-dispatched to another drone; with the package on board it is ``failed``
(someone must recover the package).

A process of its own, apart from the dispatcher: this is steady bulk work over every flight in
progress, and sharing an interpreter (one GIL) with the dispatch loop would delay new orders.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import orjson

from skyhive.domain.commands import DroneEvent
from skyhive.domain.deliveries import (
    ACTIVE,
    OFF_CORRIDOR,
    Flight,
    TransitionRefused,
    delivered_fields,
    loaded,
)
from skyhive.domain.dispatch import DEFAULT_CRUISE_MPS, eta_seconds, remaining_km
from skyhive.ports.bus import Bus
from skyhive.ports.clock import Clock
from skyhive.ports.delivery_records import DeliveryRecords
from skyhive.ports.dispatch_queue import DispatchQueue
from skyhive.ports.drone_specs import DroneSpecs
from skyhive.ports.grounding import Grounding
from skyhive.ports.live_fleet import LiveFleet
from skyhive.ports.stations import StationLookup
from skyhive.services.assignment_recorder import AssignmentRecorder
from skyhive.services.declarations import FlightDeclarer
from skyhive.services.spec_cache import SpecCache
from skyhive.settings import Settings

log = logging.getLogger(__name__)

GROUP = "tracker"


def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class DeliveryTracker:
    def __init__(
        self,
        settings: Settings,
        *,
        records: DeliveryRecords,
        queue: DispatchQueue,
        live: LiveFleet,
        grounding: Grounding,
        fleet: DroneSpecs,
        stations: StationLookup,
        bus: Bus,
        clock: Clock,
        consumer: str,
        declarer: FlightDeclarer | None = None,
    ) -> None:
        """``declarer``: declares the flights of new assignments (conformance off: None)."""
        self._s = settings
        self._declarer = declarer
        self._records = records
        self._queue = queue
        self._live = live
        self._grounding = grounding
        self._bus = bus
        self._clock = clock
        self.consumer = consumer
        self._specs = SpecCache(fleet, clock)
        self.recorder = AssignmentRecorder(
            records, queue, stations, bus, clock, settings.commands_stream
        )

    def setup(self) -> None:
        self._bus.ensure_group(self._s.events_stream, GROUP)

    # --- drone events ---------------------------------------------------------------------

    def handle_events(self, count: int = 200, block_ms: int = 0) -> int:
        bus, stream = self._bus, self._s.events_stream
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
        repo = self._records
        delivery = repo.get(ev.delivery_id)
        if delivery is None or delivery.drone_id != ev.drone_id:
            log.warning(
                "event %s from %s for delivery %s it does not hold; ignored",
                ev.event,
                ev.drone_id,
                ev.delivery_id,
            )
            return
        now = self._clock.now()
        status = delivery.status
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
                    delivered_fields(delivery, now),
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
        now = self._clock.now()
        ids = self._queue.active()
        flights = self._records.flights(ids)
        active = []
        for delivery_id in ids:
            flight = flights.get(delivery_id)
            if flight is None or flight.status not in ACTIVE:
                self._queue.reconcile(delivery_id, flight.status if flight else None)
            else:
                active.append(flight)
        drones = [str(f.drone_id) for f in active]
        grounded = self._grounding.of_many(drones)
        states = self._live.get_many(drones)
        if self._declarer is not None:
            self._declarer.declare(list(zip(active, states, strict=True)), self._cruise, now)
        etas: dict[str, dict[str, Any]] = {}
        for flight, drone_id, state in zip(active, drones, states, strict=True):
            try:
                if drone_id in grounded:
                    why = f"{drone_id} grounded by alert {grounded[drone_id][0]}"
                    self._give_up(flight, now, why)
                    continue
                eta = self._watch(flight, drone_id, state, now)
            except TransitionRefused:
                continue
            if eta is not None:
                etas[flight.id] = {"eta": eta}
        self._records.set_fields_many(etas)

    def _watch(
        self, flight: Flight, drone_id: str, state: dict[str, Any] | None, now: datetime
    ) -> datetime | None:
        """Apply the silent-drone policy and the in-transit step; returns a new ETA when it
        moved by more than a few seconds."""
        repo = self._records
        delivery_id, status = flight.id, flight.status
        seen = _parse_iso(state.get("updated_at")) if state else None
        since = flight.updated_at  # the time of the last transition
        last = max(seen, since) if seen else since
        silent_s = (now - last).total_seconds()
        limit_s = (
            self._s.dispatch_silent_assigned_s
            if status == "assigned"
            else self._s.dispatch_silent_loaded_s
        )
        if silent_s > limit_s:
            self._give_up(flight, now, f"{drone_id} silent for {silent_s:.0f} s")
            return None
        if state is None or state.get("lat") is None:
            return None
        if status == "picked_up" and state.get("status") == "in_flight":
            repo.transition(delivery_id, "in_transit", now, f"{drone_id} en route")
        return self._new_eta(flight, drone_id, state, now)

    def _give_up(self, flight: Flight, now: datetime, why: str) -> None:
        """The failure policy: before pickup back to ``pending`` for another drone, with
        the package on board ``failed``. A flight off its corridor (rare here) is judged by
        its timeline: the status it left."""
        before_pickup = flight.status == "assigned"
        if flight.status in OFF_CORRIDOR:
            record = self._records.get(flight.id)
            before_pickup = record is not None and not loaded([e.status for e in record.timeline])
        if before_pickup:
            note = f"{why} before pickup; re-dispatching"
            self._records.transition(flight.id, "pending", now, note, {"drone_id": None})
        else:
            self._records.transition(flight.id, "failed", now, f"{why} with the package on board")

    def _cruise(self, drone_id: str) -> float:
        spec = self._specs.get(drone_id)
        return spec.cruise_speed_mps if spec else DEFAULT_CRUISE_MPS

    def _new_eta(
        self, flight: Flight, drone_id: str, state: dict[str, Any], now: datetime
    ) -> datetime | None:
        remaining = remaining_km(
            flight.status,
            (float(state["lat"]), float(state["lon"])),
            (flight.pickup.lat, flight.pickup.lon),
            (flight.destination.lat, flight.destination.lon),
        )
        eta = now + timedelta(seconds=eta_seconds(remaining, self._cruise(drone_id)))
        old = flight.eta
        if old is None or abs((eta - old).total_seconds()) > 5:
            return eta
        return None
