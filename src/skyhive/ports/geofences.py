"""The geofence source port: what the geofence cache reads (`adapters/geofences_repo.py`)."""

from __future__ import annotations

from typing import Protocol

from skyhive.domain.geofence import Geofence


class GeofenceSource(Protocol):
    def version(self) -> int:
        """A number that changes whenever any geofence changes."""

    def all_enabled(self) -> list[Geofence]: ...
