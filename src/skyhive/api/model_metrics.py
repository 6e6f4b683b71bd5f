"""The stream models' series in ``/metrics``: the ``models`` role is another process, so its
counters are read from Redis at each scrape (``adapters/model_stats.py``), with the read
cache's short-timeout client: a slow Redis costs a scrape milliseconds, and the series are
then absent. Labels are the model and a fixed set of names: never a drone."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from skyhive.adapters.model_stats import RedisModelStats
from skyhive.wiring import Clients

log = logging.getLogger(__name__)

OUTCOMES = ("observed", "seen_before", "invalid")


class ModelsCollector:
    def __init__(self, clients: Clients) -> None:
        self._c = clients

    def collect(self) -> Iterator[Metric]:
        names = list(self._c.settings.models.enabled)
        try:
            stats = RedisModelStats(self._c.redis_cache).read(names)
        except Exception as exc:
            log.warning("stream model metrics unavailable: %s: %s", type(exc).__name__, exc)
            return
        readings = CounterMetricFamily(
            "skyhive_model_readings", "Telemetry readings a stream model read, by outcome: "
            "observed, seen_before (a replay or out of order: dropped), invalid (skipped).",
            labels=["model", "outcome"])  # fmt: skip
        findings = CounterMetricFamily(
            "skyhive_model_findings", "Findings of a stream model that a condition holds "
            "(each counts on, or opens, the drone's alert).", labels=["model"])  # fmt: skip
        changes = CounterMetricFamily(
            "skyhive_model_alert_changes", "Alerts a stream model's findings opened, counted "
            "on or resolved.", labels=["model"])  # fmt: skip
        values = GaugeMetricFamily(
            "skyhive_model_value", "A stream model's own figures (battery_health: drones, "
            "baselined, drifting; anomaly: drones, warm_drones), as of its last save.",
            labels=["model", "name"])  # fmt: skip
        for model, s in sorted(stats.items()):
            for outcome in OUTCOMES:
                readings.add_metric([model, outcome], s.counts.get(outcome, 0))
            findings.add_metric([model], s.counts.get("findings", 0))
            changes.add_metric([model], s.counts.get("alert_changes", 0))
            for name, value in sorted(s.values.items()):
                values.add_metric([model, name], value)
        yield from (readings, findings, changes, values)
