"""The station lookup port: stations by code (``adapters/stations_repo.StationCache``)."""

from __future__ import annotations

from typing import Protocol

from skyhive.domain.stations import Station


class StationLookup(Protocol):
    def get(self, code: str) -> Station | None: ...

    def all(self) -> dict[str, Station]:
        """Every station by code."""
