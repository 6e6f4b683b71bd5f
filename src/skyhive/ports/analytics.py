"""The analytics ports: the window's records (MongoDB, ``adapters/analytics_source.py``) and
the engine that runs the KPI SQL over them (DuckDB in memory, ``adapters/analytics_sql.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from skyhive.domain.alerts import Alert
from skyhive.domain.deliveries import Delivery
from skyhive.domain.fleet import DroneSpec
from skyhive.domain.kpis import Kpi
from skyhive.domain.rollups import Level


class AnalyticsRecords(Protocol):
    def deliveries(self, since: datetime, until: datetime) -> list[Delivery]:
        """The deliveries ordered in [since, until)."""

    def alerts(self, since: datetime, until: datetime) -> list[Alert]:
        """The alerts opened in [since, until)."""

    def periods(self, level: Level, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Every drone's rollups of ``level`` that start in [since, until): ``drone_id``,
        ``start``, ``status_s``, ``distance_m``, ``flight_used_pct``."""

    def drones(self) -> list[DroneSpec]:
        """The whole fleet registry."""


class KpiEngine(Protocol):
    def run(
        self, kpis: Sequence[Kpi], tables: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each KPI's rows (JSON-safe values) over the archive's tables given as rows (each
        with its ``date``); a table not given is empty."""
