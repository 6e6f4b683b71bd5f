"""The processor's view of the geofences: a :class:`GeofenceIndex` rebuilt only when the
zones changed.

Every reading is checked against the zones (1,000+ a second), and zones change a few times a
day: reading MongoDB per reading, or even per batch, would be waste. The cache asks Redis for
``geofences:version`` at most once a second and re-reads MongoDB only when it moved, so a
change reaches the processor within about a second. A full re-read every ``max_age_s`` covers
a counter lost with Redis and landing back on the cached value.
"""

from __future__ import annotations

import logging
import threading

from skyhive.domain.geofence import GeofenceIndex
from skyhive.ports.clock import Clock
from skyhive.ports.geofences import GeofenceSource

log = logging.getLogger(__name__)


class GeofenceCache:
    def __init__(
        self,
        repo: GeofenceSource,
        clock: Clock,
        check_every_s: float = 1.0,
        max_age_s: float = 300.0,
    ) -> None:
        self._repo = repo
        self._check_every_s = check_every_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._index = GeofenceIndex([])
        self._version: int | None = None  # None: never loaded
        self._loaded_at = 0.0
        self._next_check = -float("inf")
        self._failing = False

    @property
    def version(self) -> int | None:
        """The version the current index was read at; None before the first load."""
        return self._version

    def current(self) -> GeofenceIndex:
        """The latest zones. Never raises: while Redis or MongoDB fail, the last index read
        (empty before the first) is kept, and the read is retried a second later."""
        now = self._clock.monotonic()
        if now < self._next_check:
            return self._index
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + self._check_every_s
                self._refresh(now)
        return self._index

    def _refresh(self, now: float) -> None:
        try:
            version = self._repo.version()
            stale = now - self._loaded_at >= self._max_age_s
            if version != self._version or stale:
                self._index = GeofenceIndex(self._repo.all_enabled())
                self._version, self._loaded_at = version, now
        except Exception as exc:
            if not self._failing:
                log.warning("cannot refresh geofences, keeping the last ones: %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("geofences refreshed again (version %s)", self._version)
            self._failing = False
