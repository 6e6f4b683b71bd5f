"""The analytics API's answers (``api/analytics.py``; rules in ``domain/analytics.py``).

Deliveries and alerts: the window's records are read from MongoDB, flattened to the
archive's rows (``domain/archive.py``) and handed, with the registry and the stations as
they are now (one copy per day of the window, as the archive keeps them), to the engine that
runs the KPI SQL (``domain/kpis.py``). Utilisation and energy: the drone rollups of the
window, joined with the registry. Nothing is cached: each answer is read when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from skyhive.domain import analytics as rules
from skyhive.domain.analytics import Span
from skyhive.domain.archive import PARTITION, alert_row, delivery_row, drone_row, station_row
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.kpis import (
    ALERTS,
    DELIVERY_TIMES,
    ON_TIME,
    OUTCOMES,
    STATION_HOURS,
    Kpi,
)
from skyhive.ports.analytics import AnalyticsRecords, KpiEngine
from skyhive.ports.clock import Clock
from skyhive.ports.stations import StationLookup

Rows = list[dict[str, Any]]
NO_ON_TIME = {"delivered": 0, "with_eta": 0, "on_time": 0, "on_time_rate": None}
NO_TIMES = {
    "deliveries": 0,
    **dict.fromkeys(("p50_s", "p90_s", "p95_s", "p99_s", "max_s", "mean_s")),
}


class UnknownStation(LookupError):
    """A ``station`` filter naming no station."""


def _dated(rows: Iterable[dict[str, Any]], day: date) -> Rows:
    return [r | {PARTITION: day} for r in rows]


class Analytics:
    def __init__(
        self,
        records: AnalyticsRecords,
        engine: KpiEngine,
        stations: StationLookup,
        clock: Clock,
    ) -> None:
        self._records = records
        self._engine = engine
        self._stations = stations
        self._clock = clock

    def window(
        self, since: datetime | None, until: datetime | None, station: str | None = None
    ) -> Span:
        """The window asked for (``rules.window``); an unknown station: UnknownStation."""
        span = rules.window(since, until, self._clock.now())
        if station is not None and station not in self._stations.all():
            raise UnknownStation(station)
        return span

    # --- from the deliveries and alerts, by the KPI SQL --------------------------------------

    def _registry(self, span: Span, drones: Sequence[DroneSpec]) -> dict[str, Rows]:
        """The registry and the stations, one copy per day of the span."""
        d = [drone_row(s) for s in drones]
        s = [station_row(x) for x in self._stations.all().values()]
        days = span.days()
        return {
            "drones": [r for day in days for r in _dated(d, day)],
            "stations": [r for day in days for r in _dated(s, day)],
        }

    def _on_deliveries(
        self, span: Span, station: str | None, kpis: Sequence[Kpi]
    ) -> dict[str, Rows]:
        found = self._records.deliveries(span.since, span.until)
        rows = [
            delivery_row(d) | {PARTITION: d.created_at.date()}
            for d in found
            if station is None or d.pickup_station == station
        ]
        return self._engine.run(kpis, {"deliveries": rows, **self._registry(span, [])})

    def stations(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Per pickup station: orders, pickups, pads, waiting before assignment, over the
        window and per hour (the bottlenecks: long waits, many pickups per pad)."""
        out = self._on_deliveries(span, station, (rules.STATION_TOTALS, STATION_HOURS))
        hours = rules.hour_rows(out[STATION_HOURS.name])
        totals = rules.station_totals(out[rules.STATION_TOTALS.name], hours)
        return {"stations": totals, "hours": hours}

    def on_time(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Delivered by the ETA given at assignment: all stations and each."""
        rows = self._on_deliveries(span, station, (ON_TIME,))[ON_TIME.name]
        overall, stations = rules.split_overall(rows, NO_ON_TIME)
        return {"overall": overall, "stations": stations}

    def delivery_times(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Order-to-delivery percentiles (nearest rank): all stations and each."""
        rows = self._on_deliveries(span, station, (DELIVERY_TIMES,))[DELIVERY_TIMES.name]
        overall, stations = rules.split_overall(rows, NO_TIMES)
        return {"overall": overall, "stations": stations}

    def outcomes(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """The window's orders by status now, and why those that failed or were cancelled
        did."""
        out = self._on_deliveries(span, station, (rules.STATUS_COUNTS, OUTCOMES))
        by_status = {r["status"]: r["deliveries"] for r in out[rules.STATUS_COUNTS.name]}
        return {
            "orders": sum(by_status.values()),
            "by_status": by_status,
            "reasons": out[OUTCOMES.name],
        }

    def alerts(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Alerts opened in the window by type and the drone's home station."""
        alerts = [
            alert_row(a) | {PARTITION: a.opened_at.date()}
            for a in self._records.alerts(span.since, span.until)
        ]
        tables = {"alerts": alerts, **self._registry(span, self._records.drones())}
        rows = self._engine.run((ALERTS,), tables)[ALERTS.name]
        rows = [r for r in rows if station is None or r["station"] == station]
        return {
            "total": sum(r["alerts"] for r in rows),
            "by_type": rules.alerts_by_type(rows),
            "items": rows,
        }

    # --- from the drone rollups ---------------------------------------------------------------

    def _periods(
        self, span: Span, station: str | None
    ) -> tuple[Span | None, Rows, Mapping[str, DroneSpec]]:
        """The rollups answering the span (whole minutes), of the drones based at
        ``station`` (all: None), and the registry by drone."""
        reads = rules.rollup_reads(span, self._clock.now())
        periods: Rows = []
        if reads.hours is not None:
            periods += self._records.periods("hour", reads.hours.since, reads.hours.until)
        for part in reads.minutes:
            periods += self._records.periods("minute", part.since, part.until)
        specs = {s.drone_id: s for s in self._records.drones()}
        if station is not None:
            home = {d for d, s in specs.items() if s.home_station == station}
            periods = [p for p in periods if p["drone_id"] in home]
        return reads.covered, periods, specs

    def utilisation(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Per drone and day, and the fleet's per day: seconds flying, idle, charging."""
        covered, periods, specs = self._periods(span, station)
        days = covered.days() if covered else []
        return {"covered": covered.as_dict() if covered else None} | rules.utilisation(
            periods, specs, days
        )

    def energy(self, span: Span, station: str | None = None) -> dict[str, Any]:
        """Wh per km flown by drone model."""
        covered, periods, specs = self._periods(span, station)
        return {
            "covered": covered.as_dict() if covered else None,
            "items": rules.energy_by_model(periods, specs),
        }
