"""Drone registry specs, cached in process: dispatching and tracking read them for hundreds of
drones a second and they change rarely (a PATCH reaches the cache within ``SPEC_TTL_S``)."""

from __future__ import annotations

import time

from skyhive.adapters.fleet_repo import FleetRepo
from skyhive.domain.fleet import DroneSpec

SPEC_TTL_S = 10.0


class SpecCache:
    def __init__(self, fleet: FleetRepo) -> None:
        self._fleet = fleet
        self._specs: dict[str, tuple[float, DroneSpec]] = {}

    def get_many(self, drone_ids: list[str]) -> dict[str, DroneSpec]:
        """Specs from the cache; only drones never seen are read on the way."""
        missing = [d for d in drone_ids if d not in self._specs]
        if missing:
            self._load(missing)
        return {d: self._specs[d][1] for d in drone_ids if d in self._specs}

    def get(self, drone_id: str) -> DroneSpec | None:
        return self.get_many([drone_id]).get(drone_id)

    def refresh(self) -> None:
        """Load the specs of drones registered since, and re-read those older than
        ``SPEC_TTL_S``; run off the hot path, so it finds them cached."""
        now = time.monotonic()
        stale = [d for d, (at, _) in list(self._specs.items()) if now - at > SPEC_TTL_S]
        stale += sorted(self._fleet.registered_ids() - self._specs.keys())
        for i in range(0, len(stale), 1000):
            self._load(stale[i : i + 1000])

    def _load(self, drone_ids: list[str]) -> None:
        now = time.monotonic()
        fresh = self._fleet.specs(drone_ids)
        for d in drone_ids:
            if d in fresh:
                self._specs[d] = (now, fresh[d])
            else:
                self._specs.pop(d, None)
