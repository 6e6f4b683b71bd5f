"""The station rollups' ports: the delivery records as traces (``adapters/delivery_traces.py``)
and the ``station_hours`` collection (``adapters/station_hours_repo.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from skyhive.domain.station_rollups import DeliveryTrace, StationHour


class DeliveryTraces(Protocol):
    def touched(self, since: datetime, until: datetime) -> Iterator[DeliveryTrace]:
        """Every delivery created or moved in ``[since, until)`` (others may come too)."""


class StationHoursStore(Protocol):
    def replace(self, since: datetime, until: datetime, hours: Sequence[StationHour]) -> int:
        """Make the records of the hours in ``[since, until)`` exactly ``hours``: each written
        whole, any other record of the window removed; returns how many were written."""

    def orders(self, since: datetime, until: datetime) -> dict[str, dict[datetime, float]]:
        """Orders per station and hour in ``[since, until)``, for the hours with a record."""

    def first_hours(self, station_ids: Iterable[str]) -> dict[str, datetime]:
        """Each station's first recorded hour (those with none are left out)."""
