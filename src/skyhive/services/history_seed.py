"""Simulated history written into the stores: ``skyhive simulate --history`` and the demo's
first start (generation: ``simulator/history.py``).

Everything goes through the stores' own writers: readings in buckets (``TelemetryHistory``,
idempotent), deliveries and alerts as whole records stored only where their id is free (a
record already there, billed or acknowledged since, is left as it is), so a second run over
the same window with the same seed writes nothing new. The month's invoices are made by the
billing run itself for every month of the window that has closed, dated when the scheduled
run would have made them. Drones' live state in Redis is left to the live stack: history
drones end on a pad, and the live simulator puts them on the map when it flies them. Redis
gets only what the stores' writers keep there anyway (the registry's mirror, the read
cache's invalidations) and the processor's record of the alerts still active at the end, so
that it goes on folding into them rather than opening second ones.

Generation runs in the calling thread and writing in another, one chunk behind, so the
embedded MongoDB works while the next chunk is made.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from skyhive.domain.billing import Period
from skyhive.domain.dispatch import DispatchPolicy
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.history import group_readings
from skyhive.domain.stations import bart_stations
from skyhive.ports.active_alerts import ActiveAlerts
from skyhive.ports.clock import Clock
from skyhive.ports.history import TelemetryHistory
from skyhive.ports.history_seed import (
    CustomerRoster,
    FinishedAlerts,
    FinishedDeliveries,
    FleetRoster,
    ReadingsLookup,
)
from skyhive.services.billing import SETTLE, BillingService
from skyhive.services.demo_customers import seed_demo_customers
from skyhive.services.rollups import DroneRollups, StreamedRollups
from skyhive.settings import Settings
from skyhive.simulator.history import (
    HistoryChunk,
    HistoryPlan,
    fleet_for,
    generate,
    starting_stations,
    window_ending,
)

log = logging.getLogger(__name__)

ORDERS_PER_DRONE_DAY = 20.0  # a weekday's orders per drone of the fleet, by default
MAX_CUSTOMERS = 1000


@dataclass(slots=True)
class HistorySummary:
    """What a run wrote (``new_*``: not there before: 0 on a second run of the same window)."""

    since: datetime
    until: datetime
    drones: int = 0
    drones_registered: int = 0
    customers_created: int = 0
    orders: int = 0  # placed and finished in the window: one delivery record each
    statuses: Counter[str] = field(default_factory=Counter)
    left_out: int = 0  # unfinished at the end of the window: not written
    readings: int = 0
    raw_readings: int = 0  # of ``readings``, those stored raw (the rest: older than retention)
    refused_readings: int = 0
    minutes: int = 0  # drone-minutes summed up as made (of readings older than retention)
    alerts: int = 0
    new_deliveries: int = 0
    new_alerts: int = 0
    invoices: int = 0
    rollups: dict[str, int] | None = None  # rebuilt, by name; None: not here (behind)
    seconds: float = 0.0
    rollup_seconds: float = 0.0  # of ``seconds``
    reached: datetime | None = None  # written up to here

    def lines(self) -> list[str]:
        s = self.statuses
        return [
            f"history {self.since:%Y-%m-%d %H:%M} → {self.until:%Y-%m-%d %H:%M} UTC, "
            f"{self.drones} drones ({self.drones_registered} newly registered)",
            f"orders {self.orders}: delivered {s['delivered']}, failed {s['failed']}, "
            f"cancelled {s['cancelled']} ({self.left_out} unfinished at the end, left out)",
            f"readings {self.readings} ({self.raw_readings} kept raw, the rest older than "
            f"retention, summed up as made in {self.minutes} drone-minutes; "
            f"{self.refused_readings} refused), alerts {self.alerts}",
            f"new records: {self.new_deliveries} deliveries, {self.new_alerts} alerts, "
            f"{self.invoices} invoices; rollups: {self._rollups()}",
            f"took {self.seconds:.1f} s"
            + (f" ({self.rollup_seconds:.1f} s of it rebuilding rollups)" if self.rollups else ""),
        ]

    def _rollups(self) -> str:
        if self.rollups is None:
            return "not rebuilt here"
        return ", ".join(f"{k} {v}" for k, v in self.rollups.items()) or "none wired"


class HistorySeeder:
    def __init__(
        self,
        settings: Settings,
        *,
        fleet: FleetRoster,
        customers: CustomerRoster,
        telemetry: TelemetryHistory,
        readings: ReadingsLookup,
        deliveries: FinishedDeliveries,
        alerts: FinishedAlerts,
        active_alerts: ActiveAlerts,
        billing: BillingService,
        rollups: DroneRollups,
        clock: Clock,
    ) -> None:
        self._s = settings
        self._rollups = rollups
        self._fleet = fleet
        self._customers = customers
        self._telemetry = telemetry
        self._readings = readings
        self._deliveries = deliveries
        self._alerts = alerts
        self._active = active_alerts
        self._billing = billing
        self._clock = clock

    def drones(self, count: int) -> list[DroneSpec]:
        """The ``count`` drones history is flown by: the registry's active ones, by id, and
        new ones named as the live simulator names its own if the registry has too few."""
        return fleet_for(count, self._fleet.list(limit=100_000), bart_stations())

    def has_history(self, drones: Sequence[DroneSpec]) -> bool:
        """Whether the stores hold activity already: a delivery, or a reading of a drone."""
        if self._deliveries.find(limit=1):
            return True
        return any(self._readings.history(d.drone_id, limit=1) for d in drones)

    def run(
        self,
        length: timedelta,
        drones: Sequence[DroneSpec],
        seed: int,
        reading_interval_s: float,
        docked_interval_s: float,
        orders_per_day: float | None = None,
        progress: Callable[[HistorySummary], object] | None = None,
        rollups: Callable[[datetime, datetime], dict[str, int] | None] | None = None,
    ) -> HistorySummary:
        """Generate and write the history of the ``length`` up to the current hour, bill its
        closed months, then rebuild its rollups with ``rollups`` (:func:`summarise`)."""
        started = time.monotonic()
        since, until = window_ending(self._clock.now(), length)
        summary = HistorySummary(since, until, drones=len(drones))
        summary.drones_registered = self._fleet.ensure_registered(drones)
        stations = bart_stations()
        plan = HistoryPlan(
            since=since,
            until=until,
            drones=tuple(zip(drones, starting_stations(drones, stations), strict=True)),
            stations=stations,
            customers=self._customer_ids(summary),
            seed=seed,
            orders_per_day=(
                orders_per_day if orders_per_day is not None else ORDERS_PER_DRONE_DAY * len(drones)
            ),
            alerts=self._s.alerts,
            pricing=self._s.pricing,
            policy=DispatchPolicy(reserve_pct=self._s.dispatch_reserve_pct),
            radius_km=self._s.dispatch_radius_km,
            reading_interval_s=reading_interval_s,
            docked_interval_s=docked_interval_s,
        )

        # Raw readings older than retention are not stored (MongoDB's TTL would remove them
        # at once): their rollups are summed up from the readings as they are made. Those
        # stored are summed up afterwards from the store, with the stations' hours, by
        # ``rollups`` (:func:`summarise`), which the demo runs behind its start.
        streamed = StreamedRollups(self._rollups)
        h = self._s.history
        keep_raw = until - timedelta(days=h.raw_days) if h.expire else None

        def written(chunk: HistoryChunk) -> None:
            self._write(chunk, summary, keep_raw)
            if keep_raw is not None:
                streamed.add(t for t in chunk.readings if t.ts < keep_raw)
                summary.minutes = streamed.minutes
            if progress is not None:
                progress(summary)

        _write_behind(generate(plan), written)
        streamed.close()
        summary.minutes = streamed.minutes
        summary.invoices = self._bill(since, until)
        if rollups is not None:
            rolling = time.monotonic()
            summary.rollups = rollups(since, until)
            summary.rollup_seconds = time.monotonic() - rolling
        summary.seconds = time.monotonic() - started
        return summary

    def _customer_ids(self, summary: HistorySummary) -> tuple[str, ...]:
        ids = [str(c["_id"]) for c in self._customers.find(limit=MAX_CUSTOMERS)]
        if not ids:  # a fresh store: the demo's customers order
            summary.customers_created = seed_demo_customers(self._customers, self._clock)
            ids = [str(c["_id"]) for c in self._customers.find(limit=MAX_CUSTOMERS)]
        return tuple(ids)

    def _write(
        self, chunk: HistoryChunk, summary: HistorySummary, keep_raw: datetime | None
    ) -> None:
        raw = [t for t in chunk.readings if keep_raw is None or t.ts >= keep_raw]
        summary.refused_readings += len(self._telemetry.store(group_readings(raw)))
        summary.raw_readings += len(raw)
        summary.new_deliveries += self._deliveries.insert_missing(chunk.deliveries)
        summary.new_alerts += self._alerts.insert_missing(chunk.alerts)
        if chunk.active_alerts:
            known = self._active.get_many(sorted({d for d, _, _ in chunk.active_alerts}))
            for drone, kind, active in chunk.active_alerts:
                if (drone, kind) not in known:
                    self._active.put(drone, kind, active)
        summary.readings += len(chunk.readings)
        summary.orders += len(chunk.deliveries)
        summary.statuses.update(d.status for d in chunk.deliveries)
        summary.alerts += len(chunk.alerts)
        summary.left_out += chunk.left_out
        summary.reached = chunk.reached

    def _bill(self, since: datetime, until: datetime) -> int:
        """Bill each month of the window that has closed, as the scheduled run would have
        just after it closed (idempotent: a month billed already adds nothing)."""
        now = self._clock.now()
        period, invoices = Period.of(since), 0
        while now >= period.end + SETTLE and period.start < until:
            invoices += self._billing.run(period, period.end + SETTLE).invoices_created
            period = Period.of(period.end)
        return invoices


class Rebuilds(Protocol):
    def rebuild(self, since: datetime, until: datetime) -> int: ...


def summarise(
    rollups: Rebuilds, station_rollups: Rebuilds, since: datetime, until: datetime
) -> dict[str, int]:
    """Rebuild the rollups of ``[since, until)`` from what is stored: the drones' minutes
    and hours of the raw readings kept (``services/rollups.py``; those older than retention
    were summed up as they were made) and the stations' hours (``services/
    station_rollups.py``)."""
    return {
        "rollups": int(rollups.rebuild(since, until)),
        "station_rollups": int(station_rollups.rebuild(since, until)),
    }


def _write_behind(chunks: Iterator[HistoryChunk], write: Callable[[HistoryChunk], None]) -> None:
    """``write`` every chunk in another thread while the next is generated; a write error
    stops generating and is raised here."""
    pending: queue.Queue[HistoryChunk | None] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def writer() -> None:
        while (chunk := pending.get()) is not None:
            if failed:
                continue  # drain, so the generator is never blocked
            try:
                write(chunk)
            except BaseException as exc:  # re-raised by the caller
                failed.append(exc)

    thread = threading.Thread(target=writer, name="history-writer", daemon=True)
    thread.start()
    try:
        for chunk in chunks:
            if failed:
                break
            pending.put(chunk)
    finally:
        pending.put(None)
        thread.join()
    if failed:
        raise failed[0]
