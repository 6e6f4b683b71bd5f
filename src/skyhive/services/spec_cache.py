"""Drone registry specs, cached in process: dispatching and tracking read them for hundreds of
drones a second and they change rarely (a PATCH reaches the cache within ``SPEC_TTL_S``)."""

from __future__ import annotations

from skyhive.domain.fleet import DroneSpec
from skyhive.ports.clock import Clock
from skyhive.ports.drone_specs import DroneSpecs

SPEC_TTL_S = 10.0
# A drone not in the registry is remembered as such this long: telemetry from unregistered
# drones must not cost a registry read in every batch.
ABSENT_TTL_S = 5.0


class SpecCache:
    def __init__(self, fleet: DroneSpecs, clock: Clock, absent_ttl_s: float = ABSENT_TTL_S) -> None:
        self._fleet = fleet
        self._clock = clock
        self._absent_ttl_s = absent_ttl_s
        self._specs: dict[str, tuple[float, DroneSpec | None]] = {}  # None: not registered

    def get_many(self, drone_ids: list[str]) -> dict[str, DroneSpec]:
        """Specs from the cache; only drones never seen (or found unregistered more than
        ``absent_ttl_s`` ago) are read on the way."""
        now = self._clock.monotonic()
        missing = [
            d
            for d in drone_ids
            if (hit := self._specs.get(d)) is None
            or (hit[1] is None and now - hit[0] > self._absent_ttl_s)
        ]
        if missing:
            self._load(missing)
        out = {}
        for d in drone_ids:
            spec = self._specs[d][1]
            if spec is not None:
                out[d] = spec
        return out

    def get(self, drone_id: str) -> DroneSpec | None:
        return self.get_many([drone_id]).get(drone_id)

    def refresh(self) -> None:
        """Load the specs of drones registered since, and re-read those older than
        ``SPEC_TTL_S``; run off the hot path, so it finds them cached."""
        now = self._clock.monotonic()
        stale = [d for d, (at, _) in list(self._specs.items()) if now - at > SPEC_TTL_S]
        stale += sorted(self._fleet.registered_ids() - self._specs.keys())
        for i in range(0, len(stale), 1000):
            self._load(stale[i : i + 1000])

    def _load(self, drone_ids: list[str]) -> None:
        now = self._clock.monotonic()
        fresh = self._fleet.specs(drone_ids)
        for d in drone_ids:
            self._specs[d] = (now, fresh.get(d))
