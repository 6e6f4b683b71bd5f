"""In-memory implementations of the delivery ports (records, dispatch queue, live fleet), so
the dispatcher's and the tracker's logic is tested without servers. They keep only what those
services ask of the ports; the adapters are tested against the real servers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from memory_ports import MemoryBus, MemoryGrounding

from skyhive.domain.deliveries import (
    ACTIVE,
    TERMINAL,
    Delivery,
    Flight,
    TimelineEntry,
    TransitionRefused,
    can_transition,
)
from skyhive.domain.dispatch import PendingOrder
from skyhive.domain.geo import haversine_m


class MemoryQueue:
    def __init__(self, bus: MemoryBus, live: MemoryLive) -> None:
        self.bus = bus
        self.live = live
        self.grounding = MemoryGrounding()
        self.status: dict[str, str] = {}
        self.summaries: dict[str, PendingOrder] = {}
        self.queued: list[str] = []
        self.active_ids: set[str] = set()
        self.claims: dict[str, str] = {}  # drone → delivery
        self.journaled: dict[str, dict[str, Any]] = {}

    def enqueue(self, d: Delivery) -> None:
        self.status[d.id] = "pending"
        self.summaries[d.id] = PendingOrder(
            station=d.pickup_station,
            lat=d.destination.lat,
            lon=d.destination.lon,
            kg=d.package.weight_kg,
            km=d.distance_km,
            accepted_at=d.created_at.timestamp(),
        )
        self.queued.append(d.id)

    def follow(self, delivery_id: str, status: str, drone_id: str | None) -> None:
        self.status[delivery_id] = status
        if status == "pending" and delivery_id not in self.queued:
            self.queued.append(delivery_id)
        elif status != "pending" and delivery_id in self.queued:
            self.queued.remove(delivery_id)
        if status in ACTIVE:
            self.active_ids.add(delivery_id)
        else:
            self.active_ids.discard(delivery_id)
        released = status == "pending" or status in TERMINAL
        if drone_id and released and self.claims.get(drone_id) == delivery_id:
            del self.claims[drone_id]

    def pending(self, limit: int) -> list[str]:
        return self.queued[:limit]

    def active(self) -> list[str]:
        return sorted(self.active_ids)

    def pending_orders(self, delivery_ids: list[str]) -> tuple[dict[str, PendingOrder], list[str]]:
        return {d: self.summaries[d] for d in delivery_ids if self.status.get(d) == "pending"}, []

    def fleet_view(
        self, drone_ids: Sequence[str]
    ) -> tuple[dict[str, tuple[float, str]], dict[str, str], dict[str, str]]:
        states = {
            d: (float(s["battery_pct"]), str(s["status"]))
            for d in drone_ids
            if (s := self.live.states.get(d)) is not None
        }
        claimed = {d: self.claims[d] for d in drone_ids if d in self.claims}
        grounded = self.grounding.of_many(drone_ids)
        return states, claimed, {d: ids[0] for d, ids in grounded.items()}

    def claim_assign(
        self, pairs: list[tuple[str, str, dict[str, Any], bytes]], commands_stream: str, maxlen: int
    ) -> set[str]:
        won = set()
        for delivery_id, drone, record, command in pairs:
            if self.status.get(delivery_id) == "pending" and drone not in self.claims:
                self.claims[drone] = delivery_id
                self.status[delivery_id] = "assigned"
                self.queued.remove(delivery_id)
                self.journaled[delivery_id] = orjson.loads(orjson.dumps(record))
                self.bus.publish(commands_stream, [(drone, command)])
                won.add(delivery_id)
        return won

    def journal(self, limit: int = 500) -> dict[str, dict[str, Any]]:
        return dict(list(self.journaled.items())[:limit])

    def claimed(self, drone_ids: list[str]) -> dict[str, str]:
        return {d: self.claims[d] for d in drone_ids if d in self.claims}

    def reconcile(self, delivery_id: str, status: str | None) -> None:
        if status is None:
            self.active_ids.discard(delivery_id)
        else:
            self.follow(delivery_id, status, None)


class MemoryRecords:
    def __init__(self, queue: MemoryQueue) -> None:
        self.queue = queue
        self.deliveries: dict[str, Delivery] = {}

    def insert(self, delivery: Delivery) -> tuple[Delivery, bool]:
        if delivery.id in self.deliveries:
            return self.deliveries[delivery.id], False
        self.deliveries[delivery.id] = delivery
        self.queue.enqueue(delivery)
        return delivery, True

    def get(self, delivery_id: str) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    def find(
        self,
        status: str | None = None,
        customer_id: str | None = None,
        drone_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Delivery]:
        found = [d for d in self.deliveries.values() if status in (None, d.status)]
        return sorted(found, key=lambda d: d.created_at, reverse=True)[:limit]

    def transition(
        self,
        delivery_id: str,
        new_status: str,
        at: datetime,
        note: str,
        fields: dict[str, Any] | None = None,
    ) -> Delivery:
        d = self.deliveries[delivery_id]
        if not can_transition(d.status, new_status):
            raise TransitionRefused(d.status, new_status)
        entry = TimelineEntry.model_validate({"status": new_status, "at": at, "note": note})
        changes = {
            **(fields or {}),
            "status": new_status,
            "timeline": [*d.timeline, entry],
            "updated_at": at,
            "version": d.version + 1,
        }
        after = Delivery.model_validate({**d.model_dump(), **changes})
        self.deliveries[delivery_id] = after
        self.queue.follow(delivery_id, new_status, d.drone_id)
        return after

    def flights(self, delivery_ids: list[str]) -> dict[str, Flight]:
        return {
            d.id: Flight(
                d.id,
                d.status,
                d.drone_id,
                d.pickup_location,
                d.destination,
                d.eta,
                d.updated_at,
                d.return_station,
                d.declaration is not None and d.declaration.drone_id == d.drone_id,
            )
            for i in delivery_ids
            if (d := self.deliveries.get(i)) is not None and d.updated_at is not None
        }

    def set_fields_many(self, fields_by_id: dict[str, dict[str, Any]]) -> None:
        for delivery_id, fields in fields_by_id.items():
            d = self.deliveries[delivery_id]
            self.deliveries[delivery_id] = Delivery.model_validate({**d.model_dump(), **fields})

    def requeue_pending(self) -> int:
        return 0

    def restore_orders(self, delivery_ids: list[str]) -> dict[str, PendingOrder]:
        return {}

    def record_journal(
        self, records: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[str, str | None]]:
        lost: dict[str, tuple[str, str | None]] = {}
        for delivery_id, record in records.items():
            d, drone = self.deliveries[delivery_id], str(record["drone_id"])
            if d.status == "pending":
                fields = {
                    **record["fields"],
                    "eta": datetime.fromisoformat(record["fields"]["eta"]),
                }
                self.transition(
                    delivery_id,
                    "assigned",
                    datetime.fromisoformat(record["at"]),
                    record["note"],
                    fields,
                )
            elif d.status != "assigned" or d.drone_id != drone:
                lost[delivery_id] = (drone, d.status)
                if self.queue.claims.get(drone) == delivery_id:
                    del self.queue.claims[drone]
            del self.queue.journaled[delivery_id]
        return lost


class MemoryLive:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def put(
        self, drone_id: str, lat: float, lon: float, battery: float, status: str, at: datetime
    ) -> None:
        self.states[drone_id] = {
            "drone_id": drone_id,
            "lat": lat,
            "lon": lon,
            "battery_pct": battery,
            "status": status,
            "updated_at": at.isoformat(),
        }

    def get(self, drone_id: str) -> dict[str, Any] | None:
        return self.states.get(drone_id)

    def get_many(self, drone_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        return [self.states.get(d) for d in drone_ids]

    def _near(self, lat: float, lon: float, radius_km: float) -> list[tuple[str, float]]:
        found = [
            (d, haversine_m(lat, lon, s["lat"], s["lon"]) / 1000.0) for d, s in self.states.items()
        ]
        return sorted((x for x in found if x[1] <= radius_km), key=lambda x: x[1])

    def nearby_many(
        self, points: Sequence[tuple[float, float]], radius_km: float, limit: int
    ) -> list[list[tuple[str, float]]]:
        return [self._near(lat, lon, radius_km)[:limit] for lat, lon in points]

    def count_near(
        self, points: Sequence[tuple[float, float]], radius_km: float, cap: int
    ) -> list[int]:
        return [min(len(self._near(lat, lon, radius_km)), cap) for lat, lon in points]
