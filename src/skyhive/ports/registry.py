"""The fleet registry port, as ingest-side consumers see it: which drones are registered
(``adapters/fleet_repo.FleetRepo``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Registry(Protocol):
    def registered(self, drone_ids: Sequence[str]) -> dict[str, bool]:
        """Each id → whether the drone is in the registry (one round trip)."""
