"""The drone specs port: the fleet registry as dispatching, tracking and ordering read it
(``adapters/fleet_repo.FleetRepo``: MongoDB ``drones``, a Redis mirror of the ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from skyhive.domain.fleet import DroneSpec


class DroneSpecs(Protocol):
    def get(self, drone_id: str) -> DroneSpec | None: ...

    def specs(self, drone_ids: Sequence[str]) -> dict[str, DroneSpec]:
        """The registered among ``drone_ids``."""

    def registered_ids(self) -> set[str]: ...

    def max_payload_kg(self) -> float:
        """The heaviest package an active drone lifts (0 with no fleet)."""

    def sync_registered_set(self) -> None:
        """Rebuild the mirror of registered ids from the registry (Redis may be new)."""
