"""Station rollups (``station_hours``): each pass recomputes whole hours from the delivery
records (``domain/station_rollups.py``) and writes them whole, so passes may overlap, repeat
or run in several archivers at once and still agree.

``refresh`` (the archiver's periodic pass) recomputes the current and previous hour and every
hour since its last pass, and on its first pass the last ``catchup_h`` hours, what a stopped
archiver missed. A step is dated by the process that wrote it and may arrive a little after
its hour ended: the previous hour is recomputed until an hour has passed. ``rebuild``
recomputes any window of history (`simulate --history` writes a month, then calls it)."""

from __future__ import annotations

import logging
from datetime import datetime

from skyhive.domain.station_rollups import (
    HOUR,
    StationRollupsConfig,
    hour_ceil,
    hour_floor,
    station_hours,
)
from skyhive.ports.clock import Clock
from skyhive.ports.station_hours import DeliveryTraces, StationHoursStore

log = logging.getLogger(__name__)


class StationRollups:
    def __init__(
        self,
        config: StationRollupsConfig,
        deliveries: DeliveryTraces,
        store: StationHoursStore,
        clock: Clock,
    ) -> None:
        self._config = config
        self._deliveries = deliveries
        self._store = store
        self._clock = clock
        self._next: datetime | None = None  # the first hour the next pass recomputes

    def refresh(self, now: datetime | None = None) -> int:
        """Recompute the hours touched since the last pass; returns the station hours written."""
        current = hour_floor(now or self._clock.now())
        since = self._next
        if since is None:
            since = current - self._config.catchup_h * HOUR
        written = self.rebuild(min(since, current - HOUR), current + HOUR)
        self._next = current
        return written

    def rebuild(self, since: datetime, until: datetime) -> int:
        """Recompute every hour in ``[since, until)`` (widened to whole hours); returns the
        station hours written (hours where nothing happened have no record)."""
        since, until = hour_floor(since), hour_ceil(until)
        figures = station_hours(self._deliveries.touched(since, until), since, until)
        written = self._store.replace(since, until, figures)
        log.debug("station hours %s..%s: %d written", since, until, written)
        return written
